"""PURE: what the collector keeps of an event body, and how any stored figure is read back.

A MEASUREMENT's metrics and annotations are checked field by field: a metric whose value is not
a finite number inside the bounds of its unit, or an annotation that is not a short string, is
dropped and named (the rest of the measurement is kept: a sender never retries a 4xx, so a
refusal would lose the whole run for one bad figure). The same bounds apply when a stored row
is read, so a row written by anything else can never reach a report as an impossible figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from servo.core.figure_bounds import MAX_BYTES

# Seconds of one run: a year is far beyond any batch job and far below float trouble.
MAX_SECONDS = 366 * 86400.0
# CPU seconds of one run: that year on 1,024 cores (a parallel job's CPU time is many times
# its duration; the servo bounds it by the pod's own cores x wall time before sending).
MAX_CPU_SECONDS = 1024 * MAX_SECONDS
# Any other unit (a rate such as "1/s", a count): finite and at most this far from zero.
MAX_OTHER = 1e15
SECOND_UNITS = frozenset({"s"})
BYTE_UNITS = frozenset({"B", "bytes"})
MAX_METRICS = 64
MAX_NAME_CHARS = 64
MAX_UNIT_CHARS = 16
MAX_ANNOTATIONS = 64
MAX_ANNOTATION_KEY_CHARS = 128
MAX_ANNOTATION_CHARS = 4096
MAX_MESSAGE_CHARS = 4096


def bounds_of(unit: str, name: str = "") -> tuple[float, int | float]:
    """The physical range of a value in `unit` (a CPU figure's name widens seconds)."""
    if unit in SECOND_UNITS:
        return 0.0, MAX_CPU_SECONDS if "cpu" in name else MAX_SECONDS
    if unit in BYTE_UNITS:
        return 0, MAX_BYTES
    return -MAX_OTHER, MAX_OTHER


def bounded_number(x: Any, lo: float, hi: float) -> float | None:
    """x as a float when it is a JSON number within lo..hi; None otherwise.

    An int is compared before it is converted: float() of a 4,000-digit integer overflows.
    """
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    if isinstance(x, int):
        return float(x) if lo <= x <= hi else None
    return x if math.isfinite(x) and lo <= x <= hi else None


def metric_value(metric: Any, unit: str | None = None, *, name: str = "") -> float | None:
    """The value of a stored metric `{"value", "unit"}` within the bounds of `unit` (default:
    the metric's own unit), or None."""
    if not isinstance(metric, Mapping):
        return None
    if unit is None:
        own = metric.get("unit")
        unit = own if isinstance(own, str) else ""
    return bounded_number(metric.get("value"), *bounds_of(unit, name))


def _check_metric(name: Any, metric: Any) -> tuple[dict[str, Any] | None, str]:
    """(the metric to keep, or None with why it is dropped)."""
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_CHARS:
        return None, f"a metric name is a string of 1 to {MAX_NAME_CHARS} characters"
    if not isinstance(metric, Mapping):
        return None, "expected an object {value, unit}"
    unit = metric.get("unit", "")
    if not isinstance(unit, str) or len(unit) > MAX_UNIT_CHARS:
        return None, f"unit: expected a string of at most {MAX_UNIT_CHARS} characters"
    lo, hi = bounds_of(unit, name)
    value = bounded_number(metric.get("value"), lo, hi)
    if value is None:
        return None, f"value: expected a finite number in {lo:g}..{hi:g} for unit {unit!r}"
    return {"value": metric["value"], "unit": unit}, ""


def _check_metrics(metrics: Any, dropped: dict[str, str]) -> dict[str, Any]:
    if not isinstance(metrics, Mapping):
        dropped["metrics"] = "expected an object of name -> {value, unit}"
        return {}
    kept: dict[str, Any] = {}
    for name, metric in metrics.items():
        label = f"metrics.{str(name)[:MAX_NAME_CHARS]}"
        if len(kept) >= MAX_METRICS:
            dropped[label] = f"more than {MAX_METRICS} metrics"
            continue
        good, why = _check_metric(name, metric)
        if good is None:
            dropped[label] = why
        else:
            kept[name] = good
    return kept


def _check_annotations(annotations: Any, dropped: dict[str, str]) -> dict[str, str]:
    if not isinstance(annotations, Mapping):
        dropped["annotations"] = "expected an object of string -> string"
        return {}
    kept: dict[str, str] = {}
    for key, value in annotations.items():
        label = f"annotations.{str(key)[:MAX_ANNOTATION_KEY_CHARS]}"
        if len(kept) >= MAX_ANNOTATIONS:
            dropped[label] = f"more than {MAX_ANNOTATIONS} annotations"
        elif not isinstance(key, str) or not 0 < len(key) <= MAX_ANNOTATION_KEY_CHARS:
            dropped[label] = f"a key is a string of 1 to {MAX_ANNOTATION_KEY_CHARS} characters"
        elif not isinstance(value, str) or len(value) > MAX_ANNOTATION_CHARS:
            dropped[label] = f"expected a string of at most {MAX_ANNOTATION_CHARS} characters"
        else:
            kept[key] = value
    return kept


def checked_measurement(param: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """A MEASUREMENT param -> (what to store, {field: why it was dropped})."""
    dropped: dict[str, str] = {}
    if not isinstance(param, Mapping):
        return {}, {"param": "expected an object with metrics and annotations"}
    out = dict(param)
    if "metrics" in param:
        out["metrics"] = _check_metrics(param["metrics"], dropped)
    if "annotations" in param:
        out["annotations"] = _check_annotations(param["annotations"], dropped)
    message = param.get("message")
    if message is not None and (not isinstance(message, str) or len(message) > MAX_MESSAGE_CHARS):
        del out["message"]
        dropped["message"] = f"expected a string of at most {MAX_MESSAGE_CHARS} characters"
    if "dropped" in out or dropped:
        out["dropped"] = dropped
    return out, dropped
