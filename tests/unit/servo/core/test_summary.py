from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from servo.collector.text_report import format_report, format_table, human_bytes, parse_since
from servo.core.summary import Run, percentile, run_from_body, summarise, trend_pct


def body(
    duration: float | None = 10, *, exitcode: str = "0", failed: bool = False, **metrics: float
) -> dict[str, Any]:
    if failed:
        return {
            "event": "MEASUREMENT",
            "param": {
                "status": "failed",
                "message": "job deleted before it ran",
                "annotations": {},
            },
        }
    m = {k: {"value": v, "unit": "x"} for k, v in metrics.items()}
    if duration is not None:
        m["duration"] = {"value": duration, "unit": "s"}
    return {"event": "MEASUREMENT", "param": {"metrics": m, "annotations": {"exitcode": exitcode}}}


def test_run_from_body_never_shows_a_huge_exit_code() -> None:
    doc = body(5)
    doc["param"]["annotations"]["exitcode"] = 10**4000
    run = run_from_body("A", 1.0, doc)
    assert run is not None and run.exitcode == "" and not run.failed


def test_trend_that_overflows_is_none() -> None:
    assert trend_pct([5e-324] * 10 + [1e7] * 10) is None


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (body(5), (False, {"duration": 5.0})),
        (body(5, exitcode="2"), (True, {"duration": 5.0})),
        (body(failed=True), (True, {})),
        (body(None, cpu_time=1.5, max_memory=1024), (False, {"cpu_time": 1.5, "max_memory": 1024})),
        (body(float("nan")), (False, {})),
        (body(True), (False, {})),  # type: ignore[arg-type]
        (body(10**4000), (False, {})),  # float() of it overflows
        (body(-1), (False, {})),
        (body(None, cpu_time=2000 * 366 * 86400, max_memory=2**63), (False, {})),
        (body(None, cpu_time=-0.5, max_memory=-1), (False, {})),
    ],
)
def test_run_from_body(doc: dict[str, Any], expected: tuple[bool, dict[str, float]]) -> None:
    run = run_from_body("A", 1.0, doc)
    assert run is not None and (run.failed, dict(run.figures)) == expected


@pytest.mark.parametrize(
    "doc",
    [
        {},
        {"event": "HELLO"},
        {"event": "MEASUREMENT", "param": 3},
        {"event": "MEASUREMENT", "param": {"metrics": [1]}},
    ],
)
def test_not_runs_or_odd_bodies(doc: dict[str, Any]) -> None:
    run = run_from_body("A", 1.0, doc)
    assert run is None or run.figures == {}


def test_percentiles_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 100)) == (
        50,
        95,
        100,
    )
    assert percentile([7.0], 95) == 7


def test_trend_compares_last_ten_with_ten_before() -> None:
    assert trend_pct([10.0] * 10) is None
    assert trend_pct([10.0] * 10 + [15.0] * 10) == pytest.approx(50)
    assert trend_pct([1.0] * 5 + [10.0] * 10 + [5.0] * 10) == pytest.approx(-50)
    assert trend_pct([0.0] * 10 + [1.0] * 10) is None


def runs(app: str, durations: list[float], failed_at: int | None = None) -> list[Run]:
    return [
        Run(
            app,
            float(i),
            i == failed_at,
            "1" if i == failed_at else "0",
            {"duration": d, "max_memory": 2**20 * d},
        )
        for i, d in enumerate(durations)
    ]


def test_summarise_per_app() -> None:
    [a, b] = summarise(runs("b", [3, 1, 2], failed_at=1) + runs("a", [10]))
    assert (a.app_id, a.runs, a.failures, a.trend_pct) == ("a", 1, 0, None)
    assert (b.runs, b.failures, b.last_run_s) == (3, 1, 2.0)
    assert (b.spreads["duration"].p50, b.spreads["duration"].max) == (2, 3)
    assert "cpu_time" not in b.spreads


def test_table_json_csv() -> None:
    summaries = summarise(runs("job-a", [90, 100, 5000]))
    table = format_table(summaries)
    assert table.splitlines()[1].split()[:3] == ["job-a", "3", "0"]
    assert "1m40s" in table and "4.9 GiB" in table
    [row] = json.loads(format_report(summaries, "json"))
    assert row["duration_p95"] == 5000 and row["max_memory_max"] == 5000 * 2**20
    [rec] = list(csv.DictReader(io.StringIO(format_report(summaries, "csv"))))
    assert rec["app_id"] == "job-a" and float(rec["duration_p50"]) == 100
    assert "no measured jobs" in format_table([])


def test_since_and_bytes() -> None:
    assert parse_since("2h", now_s=10_000) == 10_000 - 7200
    assert parse_since("1.5d", now_s=200_000) == 200_000 - 129_600
    assert parse_since("2026-11-01T00:00:00+00:00", now_s=0) == 1_793_491_200
    with pytest.raises(ValueError, match="--since"):
        parse_since("yesterday", now_s=0)
    assert human_bytes(512) == "512 B" and human_bytes(3 * 2**30) == "3.0 GiB"


@pytest.mark.parametrize("text", ["101y", "36600d", "9" * 400 + "d"])
def test_since_beyond_any_history_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="--since"):
        parse_since(text, now_s=1e9)
