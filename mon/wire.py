"""The wire contract between the monitor and the servo (version 2), and the 4096-byte rule.

The same `Stats` object travels two ways: as the container's termination message (read by the
servo from `state.terminated.message`) and inside the POST body `{"id": <pod uid>, "stats": ...}`.
The servo keeps its own copy of these TypedDicts; bump `WIRE_VERSION` on any incompatible change.
Field meanings, per cgroup version: mon/README.md. `cpu_*` and `max_memory` are the job's own
(the monitor's and the pod sandbox's share kept out); `pod_*` are the pod totals. A figure that
could not be read is null and its name is a key of `missing`.
"""

from __future__ import annotations

import json

WIRE_VERSION = 2
# Kubernetes keeps at most 4096 bytes of a termination message and truncates the rest, which
# would leave broken JSON; we shrink the object ourselves instead.
TERMINATION_MESSAGE_MAX_BYTES = 4096

# The types exist for mypy only: the monitor builds plain dicts, and importing typing at run time
# would cost it half a MiB of resident memory and milliseconds of start-up.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal, NotRequired, TypedDict

    CgroupVersion = Literal["v1", "v2"]
    PodMaxMemorySource = Literal["memory.peak", "memory.max_usage_in_bytes", "sampled"]
    # How the job's own peak was derived (mon/README.md: "Where each figure comes from").
    JobMaxMemorySource = Literal[
        "pod-peak-minus-monitor", "pod-peak-minus-sandbox", "container-peak", "sampled"
    ]
    Cue = Literal["SIGTERM", "siblings-exited", "deadline", "once"]

    class MemoryBreakdown(TypedDict, total=False):
        anon: int
        file: int
        kernel_stack: int
        pagetables: int

    class ContainerFigures(TypedDict):
        """One job container's own figures, the last reading taken while it ran."""

        cpu_time: float | None
        max_memory: int | None
        oom_kills: int | None

    class Stats(TypedDict):
        v: int
        cgroup: CgroupVersion
        cgroup_path: str
        cpus: int
        cpu_time: float | None
        cpu_user: float | None
        cpu_system: float | None
        max_memory: int | None
        max_memory_source: JobMaxMemorySource | None
        pod_cpu_time: float | None
        pod_cpu_user: float | None
        pod_cpu_system: float | None
        pod_max_memory: int | None
        pod_max_memory_source: PodMaxMemorySource | None
        memory: NotRequired[MemoryBreakdown]
        monitor_cpu_time: float | None
        monitor_max_memory: int | None
        monitor_rss: int | None
        monitor_max_rss: int | None
        oom_kills: int | None
        containers: NotRequired[dict[str, ContainerFigures]]
        missing: NotRequired[dict[str, str]]
        cue: Cue

    class StatsPost(TypedDict):
        """Body of the POST to the servo's stats receiver (the original monitor's shape)."""

        id: str
        stats: Stats
else:
    CgroupVersion = PodMaxMemorySource = JobMaxMemorySource = Cue = str
    MemoryBreakdown = ContainerFigures = Stats = StatsPost = dict


def encode_stats(stats: Stats) -> bytes:
    """Compact UTF-8 JSON, as written to the termination message."""
    return json.dumps(stats, separators=(",", ":"), sort_keys=True).encode()


def fit_termination_message(
    stats: Stats, *, limit_bytes: int = TERMINATION_MESSAGE_MAX_BYTES
) -> bytes:
    """Encode `stats` in at most `limit_bytes`, dropping optional parts until it fits.

    Order: the memory breakdown, then the per-container figures, then the missing-reasons,
    then the head of `cgroup_path` (its tail, which names the pod, is kept). The core figures
    are never dropped.
    """
    data = encode_stats(stats)
    slim = stats.copy()
    for optional in ("memory", "containers", "missing"):
        if len(data) <= limit_bytes:
            return data
        slim.pop(optional, None)  # type: ignore[misc]
        data = encode_stats(slim)
    while len(data) > limit_bytes and slim["cgroup_path"]:
        path = slim["cgroup_path"]
        keep = max(0, len(path) - (len(data) - limit_bytes) - len("..."))
        slim["cgroup_path"] = "..." + path[len(path) - keep :] if keep else ""
        data = encode_stats(slim)
    return data
