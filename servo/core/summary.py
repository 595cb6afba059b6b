"""PURE: stored MEASUREMENT events -> per-job summaries and histories for `servo report` and the
collector's page.

A run is one MEASUREMENT; a failure is a run with status "failed" (it never ran) or a non-zero
exit code. Figures (duration, cpu_time, max_memory) are summarised over the runs that have them:
p50 and p95 by nearest rank, and max. The trend compares the mean duration of the last 10 runs
with the mean of the 10 before them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from servo.core.event_check import MAX_MESSAGE_CHARS, metric_value

FIGURES = ("duration", "cpu_time", "max_memory")
TREND_WINDOW = 10


@dataclass(frozen=True, slots=True)
class Run:
    """One measured run of a job, as stored."""

    app_id: str
    at_s: float
    failed: bool
    exitcode: str
    figures: Mapping[str, float]
    pod: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True)
class Spread:
    p50: float
    p95: float
    max: float


@dataclass(frozen=True, slots=True)
class JobSummary:
    app_id: str
    runs: int
    failures: int
    last_run_s: float
    spreads: Mapping[str, Spread] = field(default_factory=dict)
    # Mean duration of the last 10 runs relative to the 10 before, in percent; None when
    # there is nothing before them to compare with.
    trend_pct: float | None = None


# The unit whose bounds each figure must be within, whatever unit a stored row claims.
FIGURE_UNITS = {"duration": "s", "cpu_time": "s", "max_memory": "B"}


def _text(x: Any) -> str:
    """A stored string as shown, bounded; a small integer as its digits; else empty."""
    if isinstance(x, str):
        return x[:MAX_MESSAGE_CHARS]
    if isinstance(x, int) and not isinstance(x, bool) and abs(x) < 10**18:
        return str(x)
    return ""


def run_from_body(app_id: str, at_s: float, body: Mapping[str, Any]) -> Run | None:
    """A stored event body -> Run; None for anything that is not a MEASUREMENT body."""
    if body.get("event") != "MEASUREMENT":
        return None
    param = body.get("param")
    if not isinstance(param, Mapping):
        return None
    annotations = param.get("annotations")
    annotations = annotations if isinstance(annotations, Mapping) else {}
    metrics = param.get("metrics")
    metrics = metrics if isinstance(metrics, Mapping) else {}
    figures: dict[str, float] = {}
    for name in FIGURES:
        value = metric_value(metrics.get(name), FIGURE_UNITS[name], name=name)
        if value is not None:
            figures[name] = value
    exitcode = _text(annotations.get("exitcode", ""))
    failed = param.get("status") == "failed" or exitcode not in ("", "0")
    return Run(
        app_id=app_id,
        at_s=at_s,
        failed=failed,
        exitcode=exitcode,
        figures=figures,
        pod=_text(annotations.get("pod", "")),
        message=_text(param.get("message", "")),
    )


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values (not empty)."""
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def spread(values: Iterable[float]) -> Spread | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return Spread(percentile(ordered, 50), percentile(ordered, 95), ordered[-1])


def trend_pct(durations: Sequence[float]) -> float | None:
    """Mean of the last TREND_WINDOW durations against the TREND_WINDOW before, in percent."""
    recent = durations[-TREND_WINDOW:]
    before = durations[-2 * TREND_WINDOW : -TREND_WINDOW]
    if not recent or not before:
        return None
    base = sum(before) / len(before)
    if base == 0:
        return None
    pct = (sum(recent) / len(recent) - base) / base * 100
    # A tiny base makes the ratio overflow: no trend rather than an infinity nobody can show.
    return pct if math.isfinite(pct) else None


def summarise(runs: Iterable[Run]) -> list[JobSummary]:
    """One summary per app id, ordered by app id; runs may come in any order."""
    by_app: dict[str, list[Run]] = {}
    for run in runs:
        by_app.setdefault(run.app_id, []).append(run)
    out = []
    for app_id in sorted(by_app):
        history = sorted(by_app[app_id], key=lambda r: r.at_s)
        spreads = {
            name: s
            for name in FIGURES
            if (s := spread(r.figures[name] for r in history if name in r.figures)) is not None
        }
        durations = [r.figures["duration"] for r in history if "duration" in r.figures]
        out.append(
            JobSummary(
                app_id=app_id,
                runs=len(history),
                failures=sum(r.failed for r in history),
                last_run_s=history[-1].at_s,
                spreads=spreads,
                trend_pct=trend_pct(durations),
            )
        )
    return out
