"""`servo report`: per-job summaries of the stored measurements as a table, JSON or CSV.

Formatting is pure (summaries in, text out); `report_text` reads the store.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from servo.core.summary import FIGURES, JobSummary, run_from_body, summarise
from servo.store.events import EventStore

FORMATS = ("table", "json", "csv")
_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_SPAN_S = 100 * 365.25 * 86400


def parse_since(text: str, now_s: float) -> float:
    """`--since`: a span back from now (`90m`, `24h`, `7d`, at most 100 years) or a date/time
    (`2026-11-01`, `2026-11-01T12:00`, local time unless an offset is given) -> epoch seconds."""
    m = _SINCE.match(text)
    if m and float(m[1]) * _UNIT_S[m[2]] <= MAX_SPAN_S:
        return now_s - float(m[1]) * _UNIT_S[m[2]]
    try:
        if not m:
            return datetime.fromisoformat(text.strip()).timestamp()
    except (ValueError, OverflowError, OSError):
        pass
    raise ValueError(
        f"--since {text[:40]!r}: expected a span like 90m, 24h, 7d (at most 100 years) or a date"
        " like 2026-11-01"
    )


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def human_seconds(s: float) -> str:
    if s < 60:
        return f"{s:.2f}s" if s < 10 else f"{s:.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


def _fmt(name: str, value: float) -> str:
    return human_bytes(value) if name == "max_memory" else human_seconds(value)


def _trend(pct: float | None) -> str:
    return "" if pct is None else f"{pct:+.0f}%"


def _when(at_s: float) -> str:
    return datetime.fromtimestamp(at_s).strftime("%Y-%m-%d %H:%M")


def as_rows(summaries: Sequence[JobSummary]) -> list[dict[str, Any]]:
    """Flat records (raw numbers, SI units) for JSON and CSV."""
    rows = []
    for s in summaries:
        row: dict[str, Any] = {
            "app_id": s.app_id,
            "runs": s.runs,
            "failures": s.failures,
            "last_run": datetime.fromtimestamp(s.last_run_s).isoformat(timespec="seconds"),
        }
        for name in FIGURES:
            sp = s.spreads.get(name)
            for stat in ("p50", "p95", "max"):
                row[f"{name}_{stat}"] = getattr(sp, stat) if sp else None
        row["trend_pct"] = None if s.trend_pct is None else round(s.trend_pct, 1)
        rows.append(row)
    return rows


def format_table(summaries: Sequence[JobSummary]) -> str:
    if not summaries:
        return "no measured jobs yet (try: servo measure -- sleep 1)\n"
    head = [
        "APP ID",
        "RUNS",
        "FAIL",
        "DURATION p50/p95/max",
        "CPU p50/p95/max",
        "PEAK MEM p50/p95/max",
        "LAST RUN",
        "TREND",
    ]
    lines = [head]
    for s in summaries:
        cells = [s.app_id, str(s.runs), str(s.failures)]
        for name in FIGURES:
            sp = s.spreads.get(name)
            cells.append("/".join(_fmt(name, v) for v in (sp.p50, sp.p95, sp.max)) if sp else "-")
        cells += [_when(s.last_run_s), _trend(s.trend_pct)]
        lines.append(cells)
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    return "".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n"
        for row in lines
    )


def format_report(summaries: Sequence[JobSummary], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(as_rows(summaries), indent=2, allow_nan=False) + "\n"
    if fmt == "csv":
        rows = as_rows(summaries)
        out = io.StringIO()
        fields = list(rows[0]) if rows else ["app_id", "runs", "failures", "last_run"]
        writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    return format_table(summaries)


def report_text(
    store: EventStore,
    *,
    fmt: str = "table",
    app_id: str | None = None,
    since: str | None = None,
    now_s: float | None = None,
) -> str:
    """Read the store and format the per-job summaries."""
    since_s = parse_since(since, time.time() if now_s is None else now_s) if since else None
    runs = [
        r
        for e in store.events(event="MEASUREMENT", app_id=app_id, since_s=since_s)
        if (r := run_from_body(e.app_id, e.received_at, e.body)) is not None
    ]
    return format_report(summarise(runs), fmt)
