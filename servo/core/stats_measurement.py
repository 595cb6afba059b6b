"""PURE: the monitor's checked stats applied to a job's MEASUREMENT.

CPU seconds are bounded by what the pod's cores could spend in its run (the pod's timestamps),
then the figures become metrics, their sources and refusals annotations, and an OOM kill the
cgroup counted becomes the reason. Reading the stats off the wire is `monitor_stats`'.
"""

from __future__ import annotations

import dataclasses
import json

from msgspec.structs import replace

from servo.core.models import Measurement, Metric, PodFacts
from servo.core.monitor_stats import (
    BYTES,
    MAX_CPUS,
    MEMORY_PARTS,
    SECONDS,
    ContainerFigures,
    MonitorStats,
)

# API timestamps have one-second resolution: both ends of the pod's run may be a second off.
WALL_SLACK_S = 2.0
# The kubelet's code for a container killed by SIGKILL (what the OOM killer sends).
SIGKILL_EXIT = 137


def wall_s(facts: PodFacts) -> float | None:
    """How long the pod can have run, from its API timestamps (None when they are missing)."""
    starts = [t for t in (facts.created_s, facts.started_s) if t is not None]
    ends = [
        t for t in (facts.finished_s, facts.monitor_finished_s, facts.deleted_s) if t is not None
    ]
    if not starts or not ends:
        return None
    return max(0.0, max(ends) - min(starts)) + WALL_SLACK_S


def bounded(stats: MonitorStats, facts: PodFacts) -> MonitorStats:
    """The stats without CPU figures above what the pod's cores could spend in its run."""
    wall = wall_s(facts)
    if wall is None:
        return stats
    cores = stats.cpus or MAX_CPUS
    limit = cores * wall
    why = f"dropped: above {cores} cores x {wall:g} s of the pod's run"
    dropped = dict(stats.dropped)
    seconds = {}
    for key, value in stats.seconds.items():
        if value > limit:
            dropped[key] = why
        else:
            seconds[key] = value
    containers = {}
    for cid, c in stats.containers.items():
        if c.cpu_time_s is not None and c.cpu_time_s > limit:
            dropped[f"containers.{cid}.cpu_time"] = why
            c = ContainerFigures(None, c.max_memory_bytes, c.oom_kills)
        containers[cid] = c
    if len(dropped) == len(stats.dropped):
        return stats
    return dataclasses.replace(stats, seconds=seconds, containers=containers, dropped=dropped)


def stats_metrics(stats: MonitorStats) -> dict[str, Metric]:
    """Metrics from the stats: the job's own figures first, then the pod's and the monitor's."""
    out: dict[str, Metric] = {}
    for key in ("cpu_time", "max_memory", "cpu_user", "cpu_system"):
        if key in stats.seconds:
            out[key] = Metric(stats.seconds[key], "s")
        elif key in stats.bytes:
            out[key] = Metric(stats.bytes[key], "bytes")
    for key in SECONDS:
        if key not in out and key in stats.seconds:
            out[key] = Metric(stats.seconds[key], "s")
    for key in BYTES:
        if key not in out and key in stats.bytes:
            out[key] = Metric(stats.bytes[key], "bytes")
    for part in MEMORY_PARTS:
        if part in stats.memory_bytes:
            out[f"memory_{part}"] = Metric(stats.memory_bytes[part], "bytes")
    return out


def container_names(stats: MonitorStats, facts: PodFacts) -> dict[str, ContainerFigures]:
    """Per-container figures by container name (the pod's containerStatuses map runtime ids to
    names); an id the pod does not list keeps a short form of itself."""
    names = dict(facts.container_ids)
    return {names.get(cid, f"id:{cid[:12]}"): c for cid, c in stats.containers.items()}


def stats_annotations(stats: MonitorStats, facts: PodFacts | None = None) -> dict[str, str]:
    """Where the figures came from, and why any is missing."""
    out = {"stats_channel": stats.channel}
    for key, value in (
        ("cgroup", stats.cgroup),
        ("max_memory_source", stats.max_memory_source),
        ("pod_max_memory_source", stats.pod_max_memory_source),
    ):
        if value:
            out[key] = value
    missing = {**stats.missing, **stats.dropped}
    if missing:
        out["stats_missing"] = json.dumps(missing, sort_keys=True)
    if stats.oom_kills:
        out["oom_kills"] = str(stats.oom_kills)
    if stats.containers and facts is not None:
        out["containers"] = json.dumps(
            {
                name: {"cpu_time": c.cpu_time_s, "max_memory": c.max_memory_bytes}
                for name, c in container_names(stats, facts).items()
            },
            sort_keys=True,
        )
    return out


def oom_seen(stats: MonitorStats, facts: PodFacts) -> bool:
    """Did the cgroup's OOM counter see the job container killed? (SIGKILL exit and an OOM
    kill counted for its container, or for the pod when the monitor had no per-container
    figure.)"""
    if facts.exit_code != SIGKILL_EXIT:
        return False
    own = container_names(stats, facts).get(facts.container)
    kills = own.oom_kills if own is not None and own.oom_kills is not None else stats.oom_kills
    return bool(kills)


def with_stats(m: Measurement, stats: MonitorStats) -> Measurement:
    """The measurement with the monitor's figures added (a failure stays as it is)."""
    if m.failure is not None:
        return m
    stats = bounded(stats, m.job)
    annotations = {**m.annotations, **stats_annotations(stats, m.job)}
    if oom_seen(stats, m.job):
        annotations["reason"] = "OOMKilled"
        annotations["oom_killed"] = "true"
    return replace(m, metrics={**m.metrics, **stats_metrics(stats)}, annotations=annotations)


def without_stats(m: Measurement, why: str) -> Measurement:
    """The measurement of a monitored job whose stats never came, saying why."""
    if m.failure is not None:
        return m
    return replace(m, annotations={**m.annotations, "stats": f"none: {why}"})
