"""The collector and `servo report` against values no measurement can have: a figure outside
its physical bounds is dropped and named when posted, any row written straight into the file
leaves the API and the report answering (in strict JSON), and big bodies do not grow the file."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from servo.__main__ import main
from servo.collector.server import Collector
from servo.store.events import EventStore
from tests.support.collectorkit import (
    GARBAGE,
    HUGE,
    TOKEN,
    get_json,
    measurement,
    post,
    raw_insert,
    strict_loads,
)

MIB = 1024 * 1024


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "servo.db"


@pytest.fixture
def collector(db: Path) -> Iterator[Collector]:
    with EventStore(db) as store, Collector(store, frozenset({TOKEN}), port=0) as c:
        yield c


def report(db: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["report", "--db", str(db), "--format", fmt]) == 0
    return capsys.readouterr().out


def assert_all_answer(c: Collector, db: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    """/api/jobs, each job's history and every report format answer; the jobs."""
    jobs = get_json(c, "/api/jobs")
    for job in jobs:
        get_json(c, f"/api/jobs/{job['app_id']}")
    assert strict_loads(report(db, "json", capsys)) is not None
    assert report(db, "table", capsys).startswith("APP ID")
    assert report(db, "csv", capsys).startswith("app_id")
    return jobs


def with_metrics(uid: str, **metrics: Any) -> dict[str, Any]:
    body = measurement(uid)
    body["param"]["metrics"] = metrics
    return body


Capsys = pytest.CaptureFixture[str]


def test_a_4000_digit_duration_is_dropped_and_named(
    collector: Collector, db: Path, capsys: Capsys
) -> None:
    r = post(
        collector,
        with_metrics(
            "u1", duration={"value": HUGE, "unit": "s"}, cpu_time={"value": 3, "unit": "s"}
        ),
    )
    assert r.status_code == 200
    assert "metrics.duration" in r.json()["dropped"]
    [job] = assert_all_answer(collector, db, capsys)
    assert job["runs"] == 1 and "duration" not in job and job["cpu_time"]["max"] == 3
    [stored] = collector.store.events()
    assert "metrics.duration" in stored.body["param"]["dropped"]


@pytest.mark.parametrize(
    ("name", "metric"),
    [
        ("duration", {"value": 367 * 86400, "unit": "s"}),  # over a year
        ("duration", {"value": -1, "unit": "s"}),
        ("max_memory", {"value": 2**63, "unit": "bytes"}),
        ("max_memory", {"value": 1e300, "unit": "B"}),
        ("perf", {"value": 1e16, "unit": "1/s"}),
        ("duration", {"value": "10", "unit": "s"}),
        ("duration", {"value": True, "unit": "s"}),
        ("duration", {"value": 10, "unit": "s" * 17}),
        ("duration", 10),
    ],
)
def test_figures_outside_their_bounds_are_dropped(
    collector: Collector, name: str, metric: Any
) -> None:
    r = post(collector, with_metrics("u1", **{name: metric, "cpu_time": {"value": 1, "unit": "s"}}))
    assert r.status_code == 200 and list(r.json()["dropped"]) == [f"metrics.{name}"]
    [e] = collector.store.events()
    assert list(e.body["param"]["metrics"]) == ["cpu_time"]


def test_nan_and_infinity_in_a_body_are_dropped(collector: Collector) -> None:
    raw = json.dumps(measurement("u1")).replace('"value": 10', '"value": NaN').encode()
    r = post(collector, raw.replace(b'"exitcode": "0"', b'"exitcode": -Infinity'))
    assert r.status_code == 200
    assert set(r.json()["dropped"]) == {"metrics.duration", "annotations.exitcode"}


def test_annotations_are_short_strings(collector: Collector) -> None:
    body = measurement("u1", count=3, long="x" * 5000, nested={"a": "b"})
    body["param"]["annotations"].update({f"k{i}": "v" for i in range(80)})
    r = post(collector, body)
    assert r.status_code == 200
    dropped = r.json()["dropped"]
    assert {"annotations.count", "annotations.long", "annotations.nested"} <= set(dropped)
    [e] = collector.store.events()
    kept = e.body["param"]["annotations"]
    assert len(kept) == 64 and all(isinstance(v, str) for v in kept.values())
    assert kept["uid"] == "u1"


def test_any_stored_row_leaves_api_and_report_answering(
    collector: Collector, db: Path, capsys: Capsys
) -> None:
    post(collector, measurement("good", 7), app="GOOD")
    raw_insert(db, GARBAGE)
    jobs = assert_all_answer(collector, db, capsys)
    good = next(j for j in jobs if j["app_id"] == "GOOD")
    assert good["runs"] == 1 and good["duration"]["max"] == 7


def test_a_trend_that_overflows_is_no_trend(collector: Collector, db: Path, capsys: Capsys) -> None:
    durations = [5e-324] * 10 + [1e7] * 10  # both in bounds; their ratio is not finite
    rows = [
        {
            "body": json.dumps(measurement(f"t{i}", d)),
            "app_id": "TREND",
            "received_at": 1_700_000_000.0 + i,
        }
        for i, d in enumerate(durations)
    ]
    raw_insert(db, rows)
    [job] = assert_all_answer(collector, db, capsys)
    assert job["runs"] == 20 and job["trend_pct"] is None
    assert strict_loads(report(db, "json", capsys))[0]["trend_pct"] is None


@pytest.mark.parametrize("event", ["DIAG", "MEASUREMENT"])
def test_thirty_posts_of_a_mib_do_not_grow_the_file(
    collector: Collector, db: Path, event: str
) -> None:
    def size() -> int:
        return sum(os.path.getsize(p) for p in (db, f"{db}-wal") if os.path.exists(p))

    before = size()
    for i in range(30):
        body = measurement(f"u{i}", pad="x" * (MIB - 1000))
        body["event"] = event
        r = post(collector, body)
        assert r.status_code == (413 if event == "DIAG" else 200), r.text
    assert size() - before < MIB


def test_an_app_id_is_at_most_1024_characters(collector: Collector) -> None:
    assert post(collector, measurement("u1"), app="a" * 1024).status_code == 200
    r = post(collector, measurement("u2"), app="a" * 1025)
    assert r.status_code == 400 and "app id" in r.json()["error"]
    assert collector.store.count() == 1
