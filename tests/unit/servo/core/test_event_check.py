from __future__ import annotations

from typing import Any

import pytest

from servo.core.event_check import (
    MAX_CPU_SECONDS,
    MAX_SECONDS,
    bounded_number,
    checked_measurement,
    metric_value,
)


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        (5, 5.0),
        (0.5, 0.5),
        (10**4000, None),
        (-(10**4000), None),
        (float("nan"), None),
        (float("inf"), None),
        (True, None),
        ("5", None),
        (None, None),
        (11, None),
        (-0.1, None),
    ],
)
def test_bounded_number(x: Any, expected: float | None) -> None:
    assert bounded_number(x, 0, 10) == expected


def test_cpu_seconds_may_exceed_a_year_of_wall_time() -> None:
    # 64 cores for 6 days: more seconds than a year, as CPU time, never as a duration.
    six_days_64_cores = {"value": 64 * 6 * 86400.0, "unit": "s"}
    assert metric_value(six_days_64_cores, name="cpu_time") == 64 * 6 * 86400.0
    assert metric_value(six_days_64_cores, name="duration") is None
    kept, dropped = checked_measurement({"metrics": {"pod_cpu_time": six_days_64_cores}})
    assert "pod_cpu_time" in kept["metrics"] and dropped == {}
    assert metric_value({"value": MAX_CPU_SECONDS * 2, "unit": "s"}, name="cpu_time") is None


@pytest.mark.parametrize(
    ("metric", "unit", "expected"),
    [
        ({"value": MAX_SECONDS, "unit": "s"}, None, MAX_SECONDS),
        ({"value": MAX_SECONDS + 1, "unit": "s"}, None, None),
        ({"value": 2**63 - 1, "unit": "bytes"}, None, float(2**63 - 1)),
        ({"value": 2**63, "unit": "B"}, None, None),
        ({"value": float(2**63), "unit": "B"}, None, None),
        ({"value": -3, "unit": "1/s"}, None, -3.0),
        ({"value": -3, "unit": "1/s"}, "s", None),  # the figure's own unit wins
        ({"value": 1}, None, 1.0),
        ([1], None, None),
    ],
)
def test_metric_value(metric: Any, unit: str | None, expected: float | None) -> None:
    assert metric_value(metric, unit) == expected


def test_checked_measurement_keeps_good_fields_and_names_the_rest() -> None:
    param = {
        "metrics": {
            "duration": {"value": 5, "unit": "s"},
            "max_memory": {"value": -1, "unit": "B"},
            "x" * 65: {"value": 1, "unit": "s"},
        },
        "annotations": {"pod": "p", "n": 1, "": "empty"},
        "message": "m" * 5000,
        "status": "ok",
        "dropped": {"forged": "by the sender"},
    }
    kept, dropped = checked_measurement(param)
    assert kept["metrics"] == {"duration": {"value": 5, "unit": "s"}}
    assert kept["annotations"] == {"pod": "p"}
    assert "message" not in kept and kept["status"] == "ok"
    assert set(dropped) == {
        "metrics.max_memory",
        f"metrics.{'x' * 64}",
        "annotations.n",
        "annotations.",
        "message",
    }
    assert kept["dropped"] == dropped


@pytest.mark.parametrize("param", [None, [], "x", {"metrics": [], "annotations": "x"}])
def test_checked_measurement_of_a_wrong_shape(param: Any) -> None:
    kept, dropped = checked_measurement(param)
    assert dropped and not kept.get("metrics") and not kept.get("annotations")


def test_checked_measurement_of_a_clean_param_adds_nothing() -> None:
    param = {"metrics": {"duration": {"value": 5, "unit": "s"}}, "annotations": {"pod": "p"}}
    assert checked_measurement(param) == (param, {})
