"""PURE: the monitor's stats (termination message or POST body) -> checked figures.

The monitor (`mon/`) sends one JSON object, the same on both channels (wire v2: the job's own
figures, the pod totals, the monitor's cost; v1: pod totals only). The servo keeps its own
reading of it here (the two packages share no code). A field of the wrong type makes the stats
unusable (StatsError naming it); a figure out of physical bounds is dropped and named in
`stats_missing` with the reason, and the rest of the stats are still used.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from servo.core.figure_bounds import NOT_FINITE, OUT_OF_RANGE, figure_fault

WIRE_VERSIONS = (1, 2)
# The monitor's credential for POSTs: a projected service-account token for this audience,
# mounted at this path into the monitor container only (the webhook injects both).
STATS_AUDIENCE = "servo-stats"
STATS_TOKEN_DIR = "/var/run/secrets/servo"
STATS_TOKEN_PATH = STATS_TOKEN_DIR + "/token"
CHANNEL_MESSAGE = "termination-message"
CHANNEL_POST = "post"
MEMORY_PARTS = ("anon", "file", "kernel_stack", "pagetables")
# CPU seconds (job, pod, monitor) and byte figures of wire v2, as named on the wire.
SECONDS = (
    "cpu_time",
    "cpu_user",
    "cpu_system",
    "pod_cpu_time",
    "pod_cpu_user",
    "pod_cpu_system",
    "monitor_cpu_time",
)
BYTES = ("max_memory", "pod_max_memory", "monitor_max_memory", "monitor_rss", "monitor_max_rss")
# The job-only figures a v1 monitor cannot give: its cpu and peak are the whole pod's.
V1_AS_POD = {
    "cpu_time": "pod_cpu_time",
    "cpu_user": "pod_cpu_user",
    "cpu_system": "pod_cpu_system",
    "max_memory": "pod_max_memory",
}
# The byte figures wire v1 has (the pod_* and monitor_max_memory names are v2's).
V1_BYTES = ("max_memory", "monitor_rss", "monitor_max_rss")
V1_REASON = "monitor wire v1 reports pod totals only (monitor and sandbox included)"
# The monitor's CPU count is believed up to this many; more is a broken report.
MAX_CPUS = 1024
MAX_CONTAINERS = 16


class StatsError(ValueError):
    """Stats that cannot be used; the message says which field is wrong."""


@dataclass(frozen=True, slots=True)
class ContainerFigures:
    """One job container's own figures, as the monitor last read them."""

    cpu_time_s: float | None = None
    max_memory_bytes: int | None = None
    oom_kills: int | None = None


@dataclass(frozen=True, slots=True)
class MonitorStats:
    """The figures one monitor delivered for its pod; `dropped` are the servo's refusals."""

    channel: str
    version: int = 2
    cpus: int | None = None
    seconds: Mapping[str, float] = field(default_factory=dict)
    bytes: Mapping[str, int] = field(default_factory=dict)
    memory_bytes: Mapping[str, int] = field(default_factory=dict)
    oom_kills: int | None = None
    containers: Mapping[str, ContainerFigures] = field(default_factory=dict)
    max_memory_source: str = ""
    pod_max_memory_source: str = ""
    cgroup: str = ""
    cue: str = ""
    missing: Mapping[str, str] = field(default_factory=dict)
    dropped: Mapping[str, str] = field(default_factory=dict)

    @property
    def cpu_time_s(self) -> float | None:
        return self.seconds.get("cpu_time")

    @property
    def max_memory_bytes(self) -> int | None:
        return self.bytes.get("max_memory")


class _Reader:
    """Reads figures of one object, collecting the out-of-bounds ones in `dropped`."""

    def __init__(self, doc: Mapping[str, Any], prefix: str = "") -> None:
        self.doc, self.prefix = doc, prefix
        self.dropped: dict[str, str] = {}

    def seconds(self, key: str) -> float | None:
        value = self.doc.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise StatsError(
                f"{self.prefix}{key}: expected seconds as a number, got {type(value).__name__}"
            )
        fault = figure_fault(value)
        if not fault:
            return float(value)
        if fault == OUT_OF_RANGE:
            why = "dropped: out of range"
        elif fault == NOT_FINITE:
            why = "dropped: not a finite number"
        else:
            why = f"dropped: negative ({value:g} s)"
        self.dropped[self.prefix + key] = why
        return None

    def count(self, key: str, unit: str = "bytes") -> int | None:
        value = self.doc.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            got = repr(value)[:60]
            raise StatsError(f"{self.prefix}{key}: expected {unit} as an integer, got {got}")
        if not figure_fault(value):
            return value
        self.dropped[self.prefix + key] = (
            "dropped: negative" if value < 0 else ("dropped: not below 2^63")
        )
        return None

    def text(self, key: str) -> str:
        value = self.doc.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise StatsError(f"{self.prefix}{key}: expected a string, got {type(value).__name__}")
        return value[:200]


def _mapping(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise StatsError(f"{key}: expected an object")
    return value


def _cpus(doc: Mapping[str, Any]) -> int | None:
    value = doc.get("cpus")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise StatsError(f"cpus: expected an integer, got {type(value).__name__}")
    return min(max(value, 1), MAX_CPUS)


def _containers(doc: Mapping[str, Any], dropped: dict[str, str]) -> dict[str, ContainerFigures]:
    """Per-container figures by container id; a malformed entry costs that entry only."""
    out: dict[str, ContainerFigures] = {}
    for i, (cid, entry) in enumerate(_mapping(doc, "containers").items()):
        key = str(cid)[:80]
        if i >= MAX_CONTAINERS:
            dropped["containers"] = f"dropped: more than {MAX_CONTAINERS} containers"
            break
        if not isinstance(entry, Mapping):
            dropped[f"containers.{key}"] = "dropped: not an object"
            continue
        reader = _Reader(entry, f"containers.{key}.")
        try:
            figures = ContainerFigures(
                reader.seconds("cpu_time"), reader.count("max_memory"), reader.count("oom_kills")
            )
        except StatsError as e:
            dropped[f"containers.{key}"] = f"dropped: {e}"[:200]
            continue
        dropped.update(reader.dropped)
        out[key] = figures
    return out


def parse_stats(doc: Any, channel: str) -> MonitorStats:
    """Check a stats object as the monitor sends it; raise StatsError naming a bad field."""
    if not isinstance(doc, Mapping):
        raise StatsError(f"stats: expected a JSON object, got {type(doc).__name__}")
    version = doc.get("v")
    if isinstance(version, bool) or version not in WIRE_VERSIONS:
        raise StatsError(f"v: unsupported stats version {version!r} (this servo reads 1 and 2)")
    reader = _Reader(doc)
    seconds = {k: v for k in SECONDS if (v := reader.seconds(k)) is not None}
    counts = {k: v for k in BYTES if (v := reader.count(k)) is not None}
    memory = _Reader(_mapping(doc, "memory"), "memory.")
    parts = {k: v for k in MEMORY_PARTS if (v := memory.count(k)) is not None}
    missing = _mapping(doc, "missing")
    stats = MonitorStats(
        channel=channel,
        version=version,
        cpus=_cpus(doc),
        seconds=seconds,
        bytes=counts,
        memory_bytes=parts,
        oom_kills=reader.count("oom_kills", "a count"),
        containers=_containers(doc, reader.dropped),
        max_memory_source=reader.text("max_memory_source"),
        pod_max_memory_source=reader.text("pod_max_memory_source"),
        cgroup=reader.text("cgroup"),
        cue=reader.text("cue"),
        missing={str(k)[:40]: str(v)[:200] for k, v in list(missing.items())[:20]},
        dropped={**reader.dropped, **memory.dropped},
    )
    return _as_pod_totals(stats) if version == 1 else stats


def _as_pod_totals(stats: MonitorStats) -> MonitorStats:
    """v1 figures are the pod's: keep them under the pod_* names, and say why the job's
    own are missing."""
    seconds = {V1_AS_POD[k]: v for k, v in stats.seconds.items() if k in V1_AS_POD}
    counts = {V1_AS_POD.get(k, k): v for k, v in stats.bytes.items() if k in V1_BYTES}
    dropped = {V1_AS_POD.get(k, k): v for k, v in stats.dropped.items()}
    missing = {**stats.missing, "cpu_time": V1_REASON, "max_memory": V1_REASON}
    return dataclasses.replace(
        stats,
        seconds=seconds,
        bytes=counts,
        missing=missing,
        dropped=dropped,
        max_memory_source="",
        pod_max_memory_source=stats.max_memory_source,
    )


def _loads(text: str | bytes, what: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError as e:
        raise StatsError(f"{what} is nested too deeply to read") from e
    except (ValueError, UnicodeDecodeError) as e:
        raise StatsError(f"{what} is not JSON: {str(e)[:80]}") from e


def parse_termination_message(text: str) -> MonitorStats:
    """The monitor container's `state.terminated.message` -> stats."""
    return parse_stats(_loads(text, "termination message"), CHANNEL_MESSAGE)


def parse_post_body(body: bytes) -> tuple[str, MonitorStats]:
    """A receiver POST body `{"id": <pod uid>, "stats": {...}}` -> (uid, stats)."""
    doc = _loads(body, "body")
    if not isinstance(doc, Mapping):
        raise StatsError("body: expected a JSON object with id and stats")
    uid = doc.get("id")
    if not isinstance(uid, str) or not uid or len(uid) > 64:
        raise StatsError("id: expected the pod uid as a string")
    return uid, parse_stats(doc.get("stats"), CHANNEL_POST)
