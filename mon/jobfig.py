"""PURE: the job's own figures from the pod totals and what the monitor and the sandbox used.

CPU: the pod cgroup keeps the usage of its removed children, so at the end
    job = pod - monitor - sandbox.
The monitor's own container cgroup is read just before and just after the pod (its usage grows
between the reads); the midpoint is subtracted, wrong by at most half that gap (microseconds).
Peak memory: the pod's peak is the largest job + monitor + sandbox. Subtracting the smallest
monitor + sandbox use sampled gives an upper bound on the job's peak, tight when their use is
steady (subtracting their peak could go below the job's peak). Each job container's own
watermark, read while it ran, gives a lower bound. The figure is the larger of the two, never
above the pod's peak. When no job container was ever sampled alive, the pod's peak may date from
before the monitor existed (a job shorter than the monitor's start-up): then only the sandbox is
subtracted, and the figure can be high by the monitor's size, never low. Without the monitor's
own cgroup there is no figure at all: a watermark alone could be a poll old, so too low.
"""

from __future__ import annotations

from collections.abc import Iterable

from mon.cgroup_parse import CPU_FIGURES, Reading
from mon.wire import JobMaxMemorySource, PodMaxMemorySource

NO_OWN_CGROUP = "the monitor's own container cgroup was not identified, so it cannot be kept out"


class JobFigures:
    """The job's own figures, what was subtracted, and a reason for each null figure."""

    __slots__ = (
        "cpu",
        "max_memory",
        "max_memory_source",
        "monitor_cpu_time",
        "monitor_max_memory",
        "missing",
    )

    def __init__(
        self,
        *,
        cpu: dict[str, float | None] | None = None,
        max_memory: int | None = None,
        max_memory_source: JobMaxMemorySource | None = None,
        monitor_cpu_time: float | None = None,
        monitor_max_memory: int | None = None,
        missing: dict[str, str] | None = None,
    ) -> None:
        self.cpu: dict[str, float | None] = {} if cpu is None else cpu
        self.max_memory = max_memory
        self.max_memory_source = max_memory_source
        self.monitor_cpu_time = monitor_cpu_time
        self.monitor_max_memory = monitor_max_memory
        self.missing: dict[str, str] = {} if missing is None else missing


def sum_readings(readings: Iterable[Reading]) -> Reading:
    """Figure-wise sum (several sandbox cgroups); a figure missing in one is missing."""
    total = Reading()
    for reading in readings:
        total.missing.update(reading.missing)
        for name, value in reading.values.items():
            total.values[name] = total.values.get(name, 0) + value
    for name in total.missing:
        total.values.pop(name, None)
    return total


def job_cpu(
    *,
    pod: Reading,
    monitor_before: Reading | None,
    monitor_after: Reading | None,
    sandbox: Reading | None,
    out: JobFigures,
) -> None:
    """job = pod - midpoint(monitor before, after) - sandbox, per CPU figure, into `out`."""
    for name in CPU_FIGURES:
        out.cpu[name] = None
        total = pod.values.get(name)
        if total is None:
            out.missing[name] = pod.missing.get(name, "pod figure unreadable")
            continue
        if monitor_before is None or monitor_after is None:
            out.missing[name] = NO_OWN_CGROUP
            continue
        before, after = monitor_before.values.get(name), monitor_after.values.get(name)
        if before is None or after is None:
            reason = monitor_after.missing.get(name) or monitor_before.missing.get(name, "")
            out.missing[name] = f"monitor's own container cgroup: {reason}"
            continue
        spent = (before + after) / 2
        if name == "cpu_time":
            out.monitor_cpu_time = float(spent)
        others = 0.0 if sandbox is None else sandbox.values.get(name)
        if others is None:
            why = "" if sandbox is None else sandbox.missing.get(name, "")
            out.missing[name] = f"sandbox container cgroup: {why}"
            continue
        out.cpu[name] = max(0.0, float(total - spent - others))
    if out.monitor_cpu_time is None:
        out.missing["monitor_cpu_time"] = out.missing.get("cpu_time", NO_OWN_CGROUP)


def job_peak(
    *,
    pod_peak: int | None,
    pod_source: PodMaxMemorySource | None,
    pod_reason: str,
    overhead_min: int | None,
    sandbox_min: int | None,
    container_peaks: Iterable[int],
    out: JobFigures,
    overhead_reason: str = NO_OWN_CGROUP,
) -> None:
    """max(lower bound from container watermarks, pod peak - min overhead) <= pod peak."""
    out.monitor_max_memory = overhead_min
    if overhead_min is None:
        out.missing["monitor_max_memory"] = overhead_reason
        out.missing["max_memory"] = overhead_reason if pod_peak is not None else pod_reason
        return
    lower = max(container_peaks, default=None)
    source: JobMaxMemorySource = "pod-peak-minus-monitor"
    subtracted = overhead_min
    if lower is None:
        source, subtracted = "pod-peak-minus-sandbox", sandbox_min or 0
    upper = None if pod_peak is None else max(0, pod_peak - subtracted)
    value: int | None
    if upper is not None and (lower is None or upper >= lower):
        value = upper
        out.max_memory_source = "sampled" if pod_source == "sampled" else source
    elif lower is not None:
        value = lower
        out.max_memory_source = "container-peak"
    else:
        out.missing["max_memory"] = pod_reason if pod_peak is None else overhead_reason
        return
    out.max_memory = value if pod_peak is None else min(value, pod_peak)
