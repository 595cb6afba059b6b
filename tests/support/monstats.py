"""A full v2 stats object as the monitor builds it, for the monitor's delivery and wire tests."""

from __future__ import annotations

from mon.cgroup_read import PodFigures
from mon.jobfig import JobFigures
from mon.stats import build_stats
from mon.wire import ContainerFigures, Stats


def make_stats(
    *,
    missing: dict[str, str] | None = None,
    path: str = "/rsys/fs/cgroup/pod",
    containers: dict[str, ContainerFigures] | None = None,
) -> Stats:
    """A full v2 stats object: pod totals, job figures, one container."""
    figures = PodFigures(
        cpu_time=1.5,
        cpu_user=1.0,
        cpu_system=0.5,
        max_memory=1 << 30,
        max_memory_source="memory.peak",
        memory={"anon": 1, "file": 2, "kernel_stack": 3, "pagetables": 4},
        missing=missing or {},
        oom_kills=0,
    )
    job = JobFigures(
        cpu={"cpu_time": 1.25, "cpu_user": 0.9, "cpu_system": 0.35},
        max_memory=(1 << 30) - (8 << 20),
        max_memory_source="pod-peak-minus-monitor",
        monitor_cpu_time=0.25,
        monitor_max_memory=8 << 20,
    )
    one: dict[str, ContainerFigures] = {
        "a" * 64: {"cpu_time": 1.25, "max_memory": 1 << 29, "oom_kills": 0}
    }
    return build_stats(
        pod=figures,
        job=job,
        containers=one if containers is None else containers,
        cgroup="v2",
        cgroup_path=path,
        cpus=2,
        monitor_rss=20_000_000,
        monitor_max_rss=25_000_000,
        cue="SIGTERM",
    )
