"""PURE: the pod figures, the monitor's footprint and the cue -> the wire `Stats` object."""

from __future__ import annotations

from mon.cgroup_read import PodFigures
from mon.wire import WIRE_VERSION, CgroupVersion, Cue, MemoryBreakdown, Stats


def build_stats(
    *,
    figures: PodFigures,
    cgroup: CgroupVersion,
    cgroup_path: str,
    monitor_rss: int | None,
    monitor_max_rss: int | None,
    cue: Cue,
) -> Stats:
    """Assemble the stats; `missing` names every null figure, the footprint's included."""
    missing = dict(figures.missing)
    if monitor_rss is None:
        missing["monitor_rss"] = "psutil could not read this process"
    memory: MemoryBreakdown = {}
    for name in ("anon", "file", "kernel_stack", "pagetables"):
        if name in figures.memory:
            memory[name] = figures.memory[name]
    stats: Stats = {
        "v": WIRE_VERSION,
        "cgroup": cgroup,
        "cgroup_path": cgroup_path,
        "cpu_time": figures.cpu_time,
        "cpu_user": figures.cpu_user,
        "cpu_system": figures.cpu_system,
        "max_memory": figures.max_memory,
        "max_memory_source": figures.max_memory_source,
        "memory": memory,
        "monitor_rss": monitor_rss,
        "monitor_max_rss": monitor_max_rss,
        "missing": missing,
        "cue": cue,
    }
    return stats
