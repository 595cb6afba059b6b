"""Samples taken at every poll while the job runs: what is gone once the job has ended.

Runtimes remove a container's cgroup when it exits, so each job container's own figures are
read while it lives (the last reading is kept). The monitor's and the sandbox's memory use is
sampled too: its minimum is what the pod's peak is corrected by (`jobfig.job_peak`). On v2
kernels without memory.peak the pod's memory.current is sampled as a fallback peak.
"""

from __future__ import annotations

from mon.cgroup_paths import PodCgroup, container_id_from_name
from mon.cgroup_read import read_cpu, read_memory_current, read_oom_kills, read_watermark
from mon.cue import CgroupSiblings
from mon.jobfig import NO_OWN_CGROUP


class ContainerSample:
    """One job container's own figures, as last read while it ran."""

    __slots__ = ("cpu_time", "max_memory", "oom_kills")

    def __init__(self) -> None:
        self.cpu_time: float | None = None
        self.max_memory: int | None = None
        self.oom_kills: int | None = None


def _larger(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


class PodSampler:
    """Keeps the running figures: pod memory maximum, overhead minimum, job containers."""

    def __init__(self, pod: PodCgroup, layout: CgroupSiblings, *, clk_tck: int) -> None:
        self.pod = pod
        self.layout = layout
        self.clk_tck = clk_tck
        self.pod_max_bytes: int | None = None
        # Monitor + sandbox memory use: the smallest sum seen after the monitor's start-up.
        self.overhead_min: int | None = None
        # The sandbox's share of it alone: what a peak from before the monitor existed holds.
        self.sandbox_min: int | None = None
        # Why there is no overhead sample yet (the reason `monitor_max_memory` is null).
        self.overhead_reason = "not sampled"
        self.containers: dict[str, ContainerSample] = {}

    def sample(self) -> None:
        self.pod_max_bytes = _larger(self.pod_max_bytes, read_memory_current(self.pod))
        roles = self.layout.by_role()
        if not roles["own"]:
            self.overhead_reason = NO_OWN_CGROUP
            overhead = None
        else:
            overhead = self._overhead(roles["own"] + roles["sandbox"])
        if overhead is not None and (self.overhead_min is None or overhead < self.overhead_min):
            self.overhead_min = overhead
        sandbox = self._overhead(roles["sandbox"]) if overhead is not None else None
        if sandbox is not None and (self.sandbox_min is None or sandbox < self.sandbox_min):
            self.sandbox_min = sandbox
        for name in roles["job"]:
            self._sample_container(name)

    def _overhead(self, names: list[str]) -> int | None:
        total = 0
        for name in names:
            cg = self.pod.child(name)
            used = read_memory_current(cg)
            if used is None:
                file = "memory.current" if cg.version == "v2" else "memory.usage_in_bytes"
                self.overhead_reason = f"{file} of {name} unreadable (no memory controller?)"
                return None
            total += used
        return total

    def _sample_container(self, name: str) -> None:
        cg = self.pod.child(name)
        key = container_id_from_name(name) or name
        last = self.containers.setdefault(key, ContainerSample())
        cpu = read_cpu(cg, clk_tck=self.clk_tck, quiet=True).values.get("cpu_time")
        if cpu is not None:
            last.cpu_time = float(cpu)
        peak = _larger(read_watermark(cg), read_memory_current(cg))
        last.max_memory = _larger(last.max_memory, peak)
        oom = read_oom_kills(cg, quiet=True).values.get("oom_kills")
        if oom is not None:
            last.oom_kills = int(oom)
