"""The TLS files and the outbox are created 0600 and never through a planted link."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest

from servo.core.models import Event
from servo.report.outbox import Outbox
from servo.system.safefile import open_own_dir
from servo.webhook.tls import generate_ca, write_pair

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_tls_files_are_0600_and_a_planted_link_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    tls = tmp_path / "tls"
    tls.mkdir()
    (tls / "ca.key").symlink_to(victim)
    (tls / "ca.crt").write_bytes(b"old")
    (tls / "ca.crt").chmod(0o644)

    crt, key = write_pair(generate_ca("test", now=NOW), tls, "ca")

    assert victim.read_bytes() == b"precious"
    assert not key.is_symlink() and key.read_bytes().startswith(b"-----BEGIN")
    assert (mode(crt), mode(key)) == (0o600, 0o600)
    assert sorted(p.name for p in tls.iterdir()) == ["ca.crt", "ca.key"]  # no temporary left


def test_tls_directory_that_is_a_link_or_someone_elses_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "tls").symlink_to(elsewhere)
    with pytest.raises(OSError):
        write_pair(generate_ca("test", now=NOW), tmp_path / "tls", "ca")
    assert list(elsewhere.iterdir()) == []
    if os.geteuid() == 0:  # only root can give a directory away
        theirs = tmp_path / "theirs"
        theirs.mkdir()
        os.chown(theirs, 65534, 65534)
        with pytest.raises(PermissionError, match="belongs to uid 65534"):
            open_own_dir(theirs)


def test_a_new_tls_directory_is_0700(tmp_path: Path) -> None:
    write_pair(generate_ca("test", now=NOW), tmp_path / "new" / "tls", "ca", with_key=False)
    assert mode(tmp_path / "new" / "tls") == 0o700
    assert [p.name for p in (tmp_path / "new" / "tls").iterdir()] == ["ca.crt"]


def test_outbox_and_its_wal_and_shm_files_are_0600(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    box.put(Event(id="e1", event="MEASUREMENT", app_id="a", param={}), 1.0)
    names = {p.name: mode(p) for p in tmp_path.iterdir()}
    box.close()

    assert names["outbox.db"] == 0o600 and names["outbox.db-wal"] == 0o600
    assert names["outbox.db-shm"] == 0o600


def test_an_old_world_readable_outbox_is_made_0600(tmp_path: Path) -> None:
    Outbox(tmp_path).close()
    for p in tmp_path.iterdir():
        p.chmod(0o644)
    Outbox(tmp_path).close()
    assert {mode(p) for p in tmp_path.iterdir()} == {0o600}


@pytest.mark.parametrize("name", ["outbox.db", "outbox.db-wal", "outbox.db-shm"])
def test_an_outbox_file_that_is_a_link_is_refused(tmp_path: Path, name: str) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"")
    box_dir = tmp_path / "box"
    box_dir.mkdir()
    (box_dir / name).symlink_to(victim)
    with pytest.raises(OSError):
        Outbox(box_dir)
    assert victim.read_bytes() == b""
