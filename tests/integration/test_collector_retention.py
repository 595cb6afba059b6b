"""Retention over real HTTP: events past the age, runs beyond the count per application and
bytes beyond the bounds are deleted, oldest first, as the collector stores (every few events,
not on each), and one application's flood leaves the others' history alone."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from servo.__main__ import build_parser
from servo.collector.cli import collector_from_args
from servo.collector.server import Collector
from servo.store.events import EventStore, StoredEvent
from servo.store.retention import Retention
from tests.support.collectorkit import TOKEN, clean_env, measurement, post

DAY = 86400.0


def start(tmp_path: Path, retention: Retention) -> Collector:
    store = EventStore(tmp_path / "servo.db", retention=retention)
    return Collector(store, [TOKEN], port=0).start()


@pytest.fixture
def stopper() -> Iterator[list[Collector]]:
    started: list[Collector] = []
    yield started
    for c in started:
        c.stop()
        c.store.close()


def test_runs_beyond_the_count_go_oldest_first_every_few_events(
    tmp_path: Path, stopper: list[Collector]
) -> None:
    c = start(tmp_path, Retention(max_runs=3, every_events=5))
    stopper.append(c)
    counts = []
    for i in range(11):
        assert post(c, measurement(f"u{i}", i + 1), app="A").status_code == 200
        counts.append(c.store.count())
    # the first event prunes (a restart applies the retention), then every fifth
    assert counts == [1, 2, 3, 4, 5, 3, 4, 5, 6, 7, 3]
    kept = [e.body["param"]["metrics"]["duration"]["value"] for e in c.store.events()]
    assert kept == [9, 10, 11]


def test_events_past_the_age_are_deleted(tmp_path: Path, stopper: list[Collector]) -> None:
    now = time.time()
    with EventStore(tmp_path / "servo.db") as seed:
        for n, age_days in enumerate([200, 100, 10]):
            seed.add(
                StoredEvent(
                    now - age_days * DAY,
                    "acme",
                    "A",
                    f"old{n}",
                    "MEASUREMENT",
                    measurement(f"old{n}"),
                )
            )
    c = start(tmp_path, Retention(max_age_s=90 * DAY))
    stopper.append(c)
    post(c, measurement("new"), app="A")
    assert sorted(e.event_id for e in c.store.events()) == ["new:MEASUREMENT", "old2"]


def test_bytes_per_app_and_per_file_are_bounded(tmp_path: Path, stopper: list[Collector]) -> None:
    c = start(tmp_path, Retention(max_app_bytes=20_000, max_db_bytes=50_000, every_events=1))
    stopper.append(c)
    pad = "x" * 4000
    for i in range(3):
        post(c, measurement(f"q{i}", pad=pad), app="QUIET")
    for i in range(40):
        post(c, measurement(f"f{i}", pad=pad), app="FLOOD")
    flood = [e for e in c.store.events() if e.app_id == "FLOOD"]
    assert 3 <= len(flood) <= 5 and flood[-1].event_id == "f39:MEASUREMENT"
    assert [e.app_id for e in c.store.events()].count("QUIET") == 3
    for i in range(10):  # many apps: the whole file's bound takes the oldest
        post(c, measurement(f"m{i}", pad=pad), app=f"M{i}")
    assert 10 <= c.store.count() <= 12
    assert "QUIET" not in {e.app_id for e in c.store.events()}


def test_settings_reach_the_store(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        ["collector", "--db", str(tmp_path / "c.db"), "--max-runs", "7"]
    )
    env = clean_env(COLLECTOR_RETENTION_DAYS="30", COLLECTOR_MAX_APP_BYTES="2097152")
    c = collector_from_args(args, env)
    try:
        assert c.store.retention == Retention(max_age_s=30 * DAY, max_runs=7, max_app_bytes=2097152)
    finally:
        c.store.close()
