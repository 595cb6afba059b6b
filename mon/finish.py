"""At the cue: the last samples, the pod totals, the job's own figures, the wire `Stats`.

The monitor's own container cgroup is read right before and right after the pod cgroup, so
the subtraction in `jobfig.job_cpu` brackets the pod reading. Nothing here raises for a file
that vanished or is half-written: the figure becomes null with its reason.
"""

from __future__ import annotations

import os
from pathlib import Path

from mon.cgroup_parse import CPU_FIGURES, Reading
from mon.cgroup_paths import PodCgroup, detect_version
from mon.cgroup_read import PodFigures, figures_unavailable, read_cpu, read_pod_figures
from mon.cue import CgroupSiblings
from mon.footprint import own_max_rss_bytes, own_rss_bytes
from mon.jobfig import JobFigures, job_cpu, job_peak, sum_readings
from mon.samples import PodSampler
from mon.stats import build_stats
from mon.wire import ContainerFigures, Cue, Stats

JOB_FIGURES = (*CPU_FIGURES, "max_memory", "monitor_cpu_time", "monitor_max_memory")


def _cpu_of(pod: PodCgroup, names: list[str], *, clk_tck: int) -> Reading | None:
    if not names:
        return None
    return sum_readings(read_cpu(pod.child(n), clk_tck=clk_tck) for n in names)


def pod_cpu_reading(figures: PodFigures) -> Reading:
    """PURE: the pod totals' CPU figures as a Reading (values and reasons)."""
    reading = Reading(missing={k: v for k, v in figures.missing.items() if k in CPU_FIGURES})
    for name in CPU_FIGURES:
        value = getattr(figures, name)
        if value is not None:
            reading.values[name] = value
    return reading


def job_figures(
    pod: PodCgroup, layout: CgroupSiblings, sampler: PodSampler, *, clk_tck: int
) -> tuple[PodFigures, JobFigures]:
    """Pod totals and the job's own figures, read now."""
    sampler.sample()
    roles = layout.by_role()
    before = _cpu_of(pod, roles["own"], clk_tck=clk_tck)
    figures = read_pod_figures(pod, sampled_max_memory=sampler.pod_max_bytes, clk_tck=clk_tck)
    after = _cpu_of(pod, roles["own"], clk_tck=clk_tck)
    job = JobFigures()
    job_cpu(
        pod=pod_cpu_reading(figures),
        monitor_before=before,
        monitor_after=after,
        sandbox=_cpu_of(pod, roles["sandbox"], clk_tck=clk_tck),
        out=job,
    )
    job_peak(
        pod_peak=figures.max_memory,
        pod_source=figures.max_memory_source,
        pod_reason=figures.missing.get("max_memory", ""),
        overhead_min=sampler.overhead_min,
        sandbox_min=sampler.sandbox_min,
        overhead_reason=sampler.overhead_reason,
        container_peaks=[c.max_memory for c in sampler.containers.values() if c.max_memory],
        out=job,
    )
    return figures, job


def total_oom_kills(
    version: str, pod_count: int | None, containers: dict[str, ContainerFigures]
) -> int | None:
    """PURE: v2's pod counter already counts its containers' kills; v1's counts only kills in
    the pod cgroup itself, so the job containers' own counters (last read) are added."""
    if version == "v2":
        return pod_count
    seen = [c["oom_kills"] for c in containers.values() if c["oom_kills"] is not None]
    if pod_count is None and not seen:
        return None
    return (pod_count or 0) + sum(seen)


def container_figures(sampler: PodSampler | None) -> dict[str, ContainerFigures]:
    if sampler is None:
        return {}
    return {
        key: {"cpu_time": c.cpu_time, "max_memory": c.max_memory, "oom_kills": c.oom_kills}
        for key, c in sampler.containers.items()
    }


def read_stats(
    *,
    cgroup_root: Path,
    why: str,
    cue: Cue,
    pod: PodCgroup | None = None,
    layout: CgroupSiblings | None = None,
    sampler: PodSampler | None = None,
) -> Stats:
    """Everything the monitor reports, or why each figure could not be had."""
    clk_tck = os.sysconf("SC_CLK_TCK")
    if pod is None or layout is None or sampler is None:
        figures = figures_unavailable(why)
        job = JobFigures(missing=dict.fromkeys(JOB_FIGURES, why))
    else:
        figures, job = job_figures(pod, layout, sampler, clk_tck=clk_tck)
    containers = container_figures(sampler)
    version = pod.version if pod else detect_version(cgroup_root)
    return build_stats(
        pod=figures,
        job=job,
        containers=containers,
        oom_kills=total_oom_kills(version, figures.oom_kills, containers),
        cgroup=version,
        cgroup_path=str(pod.path) if pod else "",
        cpus=os.cpu_count() or 1,
        monitor_rss=own_rss_bytes(),
        monitor_max_rss=own_max_rss_bytes(),
        cue=cue,
    )
