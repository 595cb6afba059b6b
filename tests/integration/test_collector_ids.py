"""Event ids over real HTTP: a duplicate is the same id for the same account, app id and event
type, nothing wider; and a file of the older schema (ids unique across everything) is migrated
when opened, keeping its rows."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from servo.collector.server import Collector
from servo.store.events import EventStore
from tests.support.collectorkit import TOKEN, get_json, measurement, post

OLD_SCHEMA = """
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at REAL    NOT NULL,
    account     TEXT    NOT NULL,
    app_id      TEXT    NOT NULL,
    event_id    TEXT    NOT NULL UNIQUE,
    event       TEXT    NOT NULL,
    pod_uid     TEXT,
    body        TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_app ON events (app_id, event, received_at);
"""


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    with EventStore(tmp_path / "servo.db") as store, Collector(store, [TOKEN], port=0) as c:
        yield c


def test_a_diag_with_the_measurement_id_does_not_hide_the_measurement(
    collector: Collector,
) -> None:
    diag = {"id": "u1:MEASUREMENT", "event": "DIAG", "param": {"message": "first"}}
    assert post(collector, diag).status_code == 200
    assert post(collector, measurement("u1", 42)).status_code == 200

    [job] = get_json(collector, "/api/jobs")
    assert job["runs"] == 1 and job["duration"]["max"] == 42
    assert sorted(e.event for e in collector.store.events()) == ["DIAG", "MEASUREMENT"]


def test_same_id_in_two_accounts_or_two_apps_is_stored_twice(collector: Collector) -> None:
    body = measurement("same-uid")
    for account, app in [("acme", "A"), ("other", "A"), ("acme", "B")]:
        path = f"/accounts/{account}/applications/{{app}}/servo"
        assert post(collector, body, app=app, path=path).status_code == 200
    assert post(collector, body, app="A").status_code == 200  # a true duplicate

    stored = [(e.account, e.app_id) for e in collector.store.events()]
    assert sorted(stored) == [("acme", "A"), ("acme", "B"), ("other", "A")]


def test_an_older_file_is_migrated_keeping_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(OLD_SCHEMA)
        for n, event in enumerate(["HELLO", "MEASUREMENT", "DIAG"]):
            body = measurement("u1", 5) if event == "MEASUREMENT" else {"event": event}
            conn.execute(
                "INSERT INTO events (received_at, account, app_id, event_id, event,"
                " pod_uid, body) VALUES (?, 'acme', 'APP', ?, ?, NULL, ?)",
                (1_700_000_000 + n, f"old-{n}", event, json.dumps(body)),
            )
    conn.close()

    with EventStore(db) as store, Collector(store, [TOKEN], port=0) as c:
        assert [(e.event_id, e.event) for e in store.events()] == [
            ("old-0", "HELLO"),
            ("old-1", "MEASUREMENT"),
            ("old-2", "DIAG"),
        ]
        # the old rows keep their duplicate check, and the new scoping applies
        assert post(c, {"id": "old-0", "event": "HELLO", "param": {}}).status_code == 200
        assert post(c, {"id": "old-0", "event": "DIAG", "param": {}}).status_code == 200
        assert [e.event_id for e in store.events()].count("old-0") == 2
        [job] = get_json(c, "/api/jobs")
        assert job["runs"] == 1 and job["duration"]["max"] == 5
    with EventStore(db) as again:  # opening a migrated file changes nothing
        assert again.count() == 4
