"""PURE: the monitor's stats (termination message or POST body) -> checked figures -> metrics.

The monitor (`mon/`) sends one JSON object, the same on both channels; `mon/wire.py` documents
it. The servo keeps its own reading of it here (the two packages share no code): every field is
checked, anything malformed is an error naming the field, and a figure the monitor could not
read (null) is simply absent, with the monitor's reason kept for an annotation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from msgspec.structs import replace

from servo.models import Measurement, Metric

WIRE_VERSION = 1
CHANNEL_MESSAGE = "termination-message"
CHANNEL_POST = "post"
MEMORY_PARTS = ("anon", "file", "kernel_stack", "pagetables")


class StatsError(ValueError):
    """Stats that cannot be used; the message says which field is wrong."""


@dataclass(frozen=True, slots=True)
class MonitorStats:
    """The figures one monitor delivered for its pod."""

    channel: str
    cpu_time_s: float | None = None
    cpu_user_s: float | None = None
    cpu_system_s: float | None = None
    max_memory_bytes: int | None = None
    max_memory_source: str = ""
    memory_bytes: Mapping[str, int] = field(default_factory=dict)
    monitor_rss_bytes: int | None = None
    monitor_max_rss_bytes: int | None = None
    cgroup: str = ""
    cue: str = ""
    missing: Mapping[str, str] = field(default_factory=dict)


def _seconds(doc: Mapping[str, Any], key: str) -> float | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StatsError(f"{key}: expected seconds as a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise StatsError(f"{key}: expected a finite number >= 0, got {value!r}")
    return float(value)


def _bytes(doc: Mapping[str, Any], key: str) -> int | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StatsError(f"{key}: expected bytes as an integer >= 0, got {value!r}")
    return value


def _short_str(doc: Mapping[str, Any], key: str) -> str:
    value = doc.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise StatsError(f"{key}: expected a string, got {type(value).__name__}")
    return value[:200]


def parse_stats(doc: Any, channel: str) -> MonitorStats:
    """Check a stats object as the monitor sends it; raise StatsError naming the bad field."""
    if not isinstance(doc, Mapping):
        raise StatsError(f"stats: expected a JSON object, got {type(doc).__name__}")
    version = doc.get("v")
    if version != WIRE_VERSION:
        raise StatsError(f"v: unsupported stats version {version!r} (this servo reads 1)")
    memory = doc.get("memory")
    memory = {} if memory is None else memory
    if not isinstance(memory, Mapping):
        raise StatsError("memory: expected an object")
    parts = {k: v for k in MEMORY_PARTS if (v := _bytes(memory, k)) is not None}
    missing = doc.get("missing")
    missing = {} if missing is None else missing
    if not isinstance(missing, Mapping):
        raise StatsError("missing: expected an object")
    return MonitorStats(
        channel=channel,
        cpu_time_s=_seconds(doc, "cpu_time"),
        cpu_user_s=_seconds(doc, "cpu_user"),
        cpu_system_s=_seconds(doc, "cpu_system"),
        max_memory_bytes=_bytes(doc, "max_memory"),
        max_memory_source=_short_str(doc, "max_memory_source"),
        memory_bytes=parts,
        monitor_rss_bytes=_bytes(doc, "monitor_rss"),
        monitor_max_rss_bytes=_bytes(doc, "monitor_max_rss"),
        cgroup=_short_str(doc, "cgroup"),
        cue=_short_str(doc, "cue"),
        missing={str(k)[:40]: str(v)[:200] for k, v in list(missing.items())[:20]},
    )


def parse_termination_message(text: str) -> MonitorStats:
    """The monitor container's `state.terminated.message` -> stats."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise StatsError(f"termination message is not JSON: {text[:60]!r}") from e
    return parse_stats(doc, CHANNEL_MESSAGE)


def parse_post_body(body: bytes) -> tuple[str, MonitorStats]:
    """A receiver POST body `{"id": <pod uid>, "stats": {...}}` -> (uid, stats)."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise StatsError(f"body is not JSON: {e}") from e
    if not isinstance(doc, Mapping):
        raise StatsError("body: expected a JSON object with id and stats")
    uid = doc.get("id")
    if not isinstance(uid, str) or not uid or len(uid) > 64:
        raise StatsError("id: expected the pod uid as a string")
    return uid, parse_stats(doc.get("stats"), CHANNEL_POST)


def stats_metrics(stats: MonitorStats) -> dict[str, Metric]:
    """Metrics from the stats: the original's cpu_time and max_memory, then the new figures."""
    out: dict[str, Metric] = {}

    def put(name: str, value: float | None, unit: str) -> None:
        if value is not None:
            out[name] = Metric(value, unit)

    put("cpu_time", stats.cpu_time_s, "s")
    put("max_memory", stats.max_memory_bytes, "bytes")
    put("cpu_user", stats.cpu_user_s, "s")
    put("cpu_system", stats.cpu_system_s, "s")
    for part in MEMORY_PARTS:
        put(f"memory_{part}", stats.memory_bytes.get(part), "bytes")
    put("monitor_rss", stats.monitor_rss_bytes, "bytes")
    put("monitor_max_rss", stats.monitor_max_rss_bytes, "bytes")
    return out


def stats_annotations(stats: MonitorStats) -> dict[str, str]:
    """Where the figures came from, and why any is missing."""
    out = {"stats_channel": stats.channel}
    if stats.cgroup:
        out["cgroup"] = stats.cgroup
    if stats.max_memory_source:
        out["max_memory_source"] = stats.max_memory_source
    if stats.missing:
        out["stats_missing"] = json.dumps(dict(stats.missing), sort_keys=True)
    return out


def with_stats(m: Measurement, stats: MonitorStats) -> Measurement:
    """The measurement with the monitor's figures added (a failure stays as it is)."""
    if m.failure is not None:
        return m
    return replace(
        m,
        metrics={**m.metrics, **stats_metrics(stats)},
        annotations={**m.annotations, **stats_annotations(stats)},
    )


def without_stats(m: Measurement, why: str) -> Measurement:
    """The measurement of a monitored job whose stats never came, saying why."""
    if m.failure is not None:
        return m
    return replace(m, annotations={**m.annotations, "stats": f"none: {why}"})
