from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from servo.core.models import Event, PodFacts, PodRef
from servo.core.patches import release_patch, reported_patch, valve_due
from servo.report.outbox import OUTBOX_FILE, Outbox
from tests.support.helpers import pending_ids


def ev(i: int, name: str = "MEASUREMENT") -> Event:
    return Event(id=f"u{i}:{name}", event=name, app_id=f"A{i}", param={"n": i})


def test_put_is_idempotent_and_survives_reopening(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    assert box.put(ev(1), now_s=100) is True
    assert box.put(ev(1), now_s=101) is False  # same id: nothing added
    box.put(ev(2), now_s=102)
    box.close()
    again = Outbox(tmp_path)  # a restart
    assert again.depth() == 2 and again.oldest_created() == 100
    [first, second] = again.due(now_s=200, limit=10)
    assert first.event == ev(1) and second.event.param == {"n": 2}


def test_due_skips_in_flight_and_postponed(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    for i in range(5):
        box.put(ev(i), now_s=10 + i)
    box.postpone("u0:MEASUREMENT", next_at_s=100, error="HTTP 503")
    got = [p.event.id for p in box.due(now_s=50, limit=2, skip={"u1:MEASUREMENT"})]
    assert got == ["u2:MEASUREMENT", "u3:MEASUREMENT"]
    [later] = [p for p in box.due(now_s=100, limit=10) if p.event.id == "u0:MEASUREMENT"]
    assert later.attempts == 1


def test_delivered_and_dropped_leave(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    box.put(ev(1), now_s=1)
    box.put(ev(2), now_s=2)
    box.delivered("u1:MEASUREMENT", now_s=3)
    box.drop("u2:MEASUREMENT")
    assert box.depth() == 0 and box.oldest_created() is None
    assert box.due(now_s=10, limit=10) == [] and pending_ids(box) == set()


def test_a_delivered_event_put_again_is_not_sent_again_until_pruned(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    box.put(ev(1), now_s=0)
    box.delivered("u1:MEASUREMENT", now_s=10)
    assert box.put(ev(1), now_s=20) is False  # a restart measured the pod again
    assert box.depth() == 0 and box.due(now_s=30, limit=10) == []
    assert box.prune(now_s=10 + 3600, keep_s=7200) == 0
    assert box.prune(now_s=10 + 7201, keep_s=7200) == 1
    assert box.put(ev(1), now_s=8000) is True  # forgotten after the tombstone period


def test_older_than(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    box.put(ev(1), now_s=1)
    box.put(ev(2), now_s=50)
    assert [p.event.id for p in box.older_than(10)] == ["u1:MEASUREMENT"]


def test_the_pod_of_an_event_comes_back_from_the_outbox(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    pod = PodRef("n", "p", "u")
    box.put(Event("u:MEASUREMENT", "MEASUREMENT", "A", {"annotations": {}}, pod), now_s=1)
    box.put(Event("i:HELLO", "HELLO", "_global_", {"account": "a"}), now_s=2)
    [measured, hello] = box.due(now_s=10, limit=10)
    assert measured.event.pod == pod and hello.event.pod is None
    [old] = box.older_than(1.5)
    assert old.event.pod == pod


OLD_SCHEMA = """
CREATE TABLE outbox (
    event_id TEXT PRIMARY KEY, event TEXT NOT NULL, app_id TEXT NOT NULL, param TEXT NOT NULL,
    created_at REAL NOT NULL, next_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT, delivered_at REAL
);
"""


def test_rows_from_before_the_pod_column_name_their_pod_in_the_base_annotations(
    tmp_path: Path,
) -> None:
    db = sqlite3.connect(tmp_path / OUTBOX_FILE)
    db.executescript(OLD_SCHEMA)
    rows = [
        ("x", "MEASUREMENT", {"annotations": {"namespace": "n", "pod": "p", "uid": "u"}}),
        ("h", "HELLO", {"account": "a"}),
        ("y", "MEASUREMENT", None),
    ]
    for i, (event_id, name, param) in enumerate(rows):
        db.execute(
            "INSERT INTO outbox (event_id, event, app_id, param, created_at, next_at)"
            " VALUES (?, ?, 'A', ?, ?, ?)",
            (event_id, name, json.dumps(param), i, i),
        )
    db.commit()
    db.close()
    box = Outbox(tmp_path)
    got = {p.event.id: p.event.pod for p in box.due(now_s=10, limit=10)}
    assert got == {"x": PodRef("n", "p", "u"), "h": None, "y": None}
    # New rows in the old file keep their pod.
    box.put(Event("z", "MEASUREMENT", "A", {}, PodRef("n", "q", "v")), now_s=20)
    [z] = [p for p in box.due(now_s=30, limit=10) if p.event.id == "z"]
    assert z.event.pod == PodRef("n", "q", "v")


def test_guard_patches() -> None:
    ops = release_patch("u1", ("a", "servo.optune.io/measure", "b"))
    assert ops[0] == {"op": "test", "path": "/metadata/uid", "value": "u1"}
    assert ops[1]["value"] == ["a", "servo.optune.io/measure", "b"]
    assert ops[2] == {"op": "replace", "path": "/metadata/finalizers", "value": ["a", "b"]}
    assert reported_patch("u1", "u1:MEASUREMENT") == {
        "metadata": {"uid": "u1", "annotations": {"servo.optune.io/reported": "u1:MEASUREMENT"}}
    }
    facts = PodFacts(
        uid="u",
        namespace="n",
        name="p",
        app_id="A",
        finalizers=("servo.optune.io/measure",),
        deleted_s=100.0,
    )
    assert not valve_due(facts, now_s=699, max_age_s=600)
    assert valve_due(facts, now_s=700, max_age_s=600)
    assert not valve_due(
        PodFacts(uid="u", namespace="n", name="p", app_id="A", deleted_s=1), now_s=1e9, max_age_s=1
    )
