"""PURE: pod totals, the job's own figures, the monitor's footprint and the cue -> `Stats`."""

from __future__ import annotations

from collections.abc import Mapping

from mon.cgroup_read import PodFigures
from mon.jobfig import JobFigures
from mon.wire import WIRE_VERSION, CgroupVersion, ContainerFigures, Cue, MemoryBreakdown, Stats


def build_stats(
    *,
    pod: PodFigures,
    job: JobFigures,
    containers: Mapping[str, ContainerFigures],
    cgroup: CgroupVersion,
    cgroup_path: str,
    cpus: int,
    monitor_rss: int | None,
    monitor_max_rss: int | None,
    cue: Cue,
    oom_kills: int | None = None,
) -> Stats:
    """Assemble the stats; `missing` names every null figure."""
    missing = {f"pod_{k}" if k in _POD_RENAMED else k: v for k, v in pod.missing.items()}
    missing.update(job.missing)
    if monitor_rss is None:
        missing["monitor_rss"] = "/proc/self/status has no VmRSS"
    memory: MemoryBreakdown = {}
    for name in ("anon", "file", "kernel_stack", "pagetables"):
        if name in pod.memory:
            memory[name] = pod.memory[name]
    stats: Stats = {
        "v": WIRE_VERSION,
        "cgroup": cgroup,
        "cgroup_path": cgroup_path,
        "cpus": cpus,
        "cpu_time": job.cpu.get("cpu_time"),
        "cpu_user": job.cpu.get("cpu_user"),
        "cpu_system": job.cpu.get("cpu_system"),
        "max_memory": job.max_memory,
        "max_memory_source": job.max_memory_source,
        "pod_cpu_time": pod.cpu_time,
        "pod_cpu_user": pod.cpu_user,
        "pod_cpu_system": pod.cpu_system,
        "pod_max_memory": pod.max_memory,
        "pod_max_memory_source": pod.max_memory_source,
        "memory": memory,
        "monitor_cpu_time": job.monitor_cpu_time,
        "monitor_max_memory": job.monitor_max_memory,
        "monitor_rss": monitor_rss,
        "monitor_max_rss": monitor_max_rss,
        "oom_kills": pod.oom_kills if oom_kills is None else oom_kills,
        "cue": cue,
    }
    if containers:
        stats["containers"] = dict(containers)
    if missing:
        stats["missing"] = missing
    return stats


# Pod-level reasons whose figure name is the job's in the wire (cpu_time -> pod_cpu_time).
_POD_RENAMED = frozenset({"cpu_time", "cpu_user", "cpu_system", "max_memory"})
