"""The store's files: the database and its -wal and -shm are created 0600 (a looser file is
tightened), never through a symlink planted in their place, and the collector says so and
exits 2 rather than write through one."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from servo.store.events import EventStore, StoredEvent
from tests.support.collectorkit import clean_env, measurement, run_servo

SUFFIXES = ("", "-wal", "-shm")


def mode(p: Path | str) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def add_one(store: EventStore) -> None:
    store.add(StoredEvent(1.7e9, "acme", "A", "u1", "MEASUREMENT", measurement("u1")))


def test_files_are_created_0600_even_with_a_loose_umask(tmp_path: Path) -> None:
    db = tmp_path / "servo.db"
    old = os.umask(0)
    try:
        with EventStore(db) as store:
            add_one(store)
            for suffix in SUFFIXES:
                assert mode(f"{db}{suffix}") == 0o600, suffix
    finally:
        os.umask(old)


def test_a_loose_existing_file_is_tightened(tmp_path: Path) -> None:
    db = tmp_path / "servo.db"
    with EventStore(db) as store:
        add_one(store)
    db.chmod(0o644)
    with EventStore(db) as store:
        assert mode(db) == 0o600 and store.count() == 1


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_planted_symlink_is_never_followed(tmp_path: Path, suffix: str) -> None:
    db = tmp_path / "servo.db"
    target = tmp_path / "victim"
    target.write_text("keep me")
    os.symlink(target, f"{db}{suffix}")

    with pytest.raises(OSError):
        EventStore(db)
    assert target.read_text() == "keep me" and mode(target) == 0o644 & ~current_umask()


def current_umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def test_the_collector_exits_2_naming_the_file(tmp_path: Path) -> None:
    db = tmp_path / "servo.db"
    os.symlink(tmp_path / "elsewhere", db)
    proc = run_servo("collector", "--port", "0", "--db", str(db), env=clean_env())
    assert proc.returncode == 2 and str(db) in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "elsewhere").exists()
