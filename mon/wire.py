"""The wire contract between the monitor and the servo, and the 4096-byte fitting rule.

The same `Stats` object travels two ways: as the container's termination message (read by the
servo from `state.terminated.message`) and inside the POST body `{"id": <pod uid>, "stats": ...}`.
The servo keeps its own copy of these TypedDicts; bump `WIRE_VERSION` on any incompatible change.

Stats fields (units in the name or noted):
  v                  wire version, 1
  cgroup             "v1" or "v2"
  cgroup_path        the pod cgroup read (a v1 memory-controller path on v1); "" if none found
  cpu_time           total CPU seconds of the pod (v1 cpuacct.usage, v2 cpu.stat usage_usec)
  cpu_user           user CPU seconds (v1 cpuacct.stat user ticks / USER_HZ, v2 user_usec)
  cpu_system         system CPU seconds (v1 cpuacct.stat system, v2 system_usec)
  max_memory         pod peak in bytes, the monitor's own footprint included
  max_memory_source  "memory.peak" | "memory.max_usage_in_bytes" | "sampled" (largest
                     memory.current seen while waiting, on v2 kernels before 5.19)
  memory             breakdown in bytes at the end: anon, file, kernel_stack, pagetables; a
                     field the kernel does not report is absent and named in `missing`
                     (optional: dropped first when the message is too large)
  monitor_rss        the monitor's own resident set now, bytes
  monitor_max_rss    the monitor's own peak resident set, bytes
  missing            {figure: reason} for each figure that could not be read
                     (optional: dropped second when the message is too large)
  cue                "SIGTERM" | "siblings-exited" | "once"
A figure that could not be read is null and its name is a key of `missing`.
"""

from __future__ import annotations

import json
from typing import Literal, NotRequired, TypedDict

WIRE_VERSION = 1
# Kubernetes keeps at most 4096 bytes of a termination message and truncates the rest, which
# would leave broken JSON; we shrink the object ourselves instead.
TERMINATION_MESSAGE_MAX_BYTES = 4096

CgroupVersion = Literal["v1", "v2"]
MaxMemorySource = Literal["memory.peak", "memory.max_usage_in_bytes", "sampled"]
Cue = Literal["SIGTERM", "siblings-exited", "once"]


class MemoryBreakdown(TypedDict, total=False):
    anon: int
    file: int
    kernel_stack: int
    pagetables: int


class Stats(TypedDict):
    v: int
    cgroup: CgroupVersion
    cgroup_path: str
    cpu_time: float | None
    cpu_user: float | None
    cpu_system: float | None
    max_memory: int | None
    max_memory_source: MaxMemorySource | None
    memory: NotRequired[MemoryBreakdown]
    monitor_rss: int | None
    monitor_max_rss: int | None
    missing: NotRequired[dict[str, str]]
    cue: Cue


class StatsPost(TypedDict):
    """Body of the POST to the servo's stats receiver (the original monitor's shape)."""

    id: str
    stats: Stats


def encode_stats(stats: Stats) -> bytes:
    """Compact UTF-8 JSON, as written to the termination message."""
    return json.dumps(stats, separators=(",", ":"), sort_keys=True).encode()


def fit_termination_message(
    stats: Stats, *, limit_bytes: int = TERMINATION_MESSAGE_MAX_BYTES
) -> bytes:
    """Encode `stats` in at most `limit_bytes`, dropping optional parts until it fits.

    Order: the memory breakdown, then the missing-reasons, then the head of `cgroup_path`
    (its tail, which names the pod, is kept). The core figures are never dropped.
    """
    data = encode_stats(stats)
    if len(data) <= limit_bytes:
        return data
    slim = stats.copy()
    slim.pop("memory", None)
    data = encode_stats(slim)
    if len(data) <= limit_bytes:
        return data
    slim.pop("missing", None)
    data = encode_stats(slim)
    while len(data) > limit_bytes and slim["cgroup_path"]:
        path = slim["cgroup_path"]
        keep = max(0, len(path) - (len(data) - limit_bytes) - len("..."))
        slim["cgroup_path"] = "..." + path[len(path) - keep :] if keep else ""
        data = encode_stats(slim)
    return data
