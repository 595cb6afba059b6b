"""The job's own figures from pod totals and the monitor's and sandbox's share (pure)."""

from __future__ import annotations

import pytest

from mon.cgroup_parse import Reading
from mon.footprint import rss_from_status
from mon.jobfig import NO_OWN_CGROUP, JobFigures, job_cpu, job_peak, sum_readings
from mon.logs import format_line
from mon.record import Record

MIB = 1 << 20


def _cpu(total: float, user: float, system: float) -> Reading:
    return Reading(values={"cpu_time": total, "cpu_user": user, "cpu_system": system})


def test_cpu_is_pod_minus_monitor_midpoint_minus_sandbox() -> None:
    out = JobFigures()
    job_cpu(
        pod=_cpu(10.0, 8.0, 2.0),
        monitor_before=_cpu(0.10, 0.08, 0.02),
        monitor_after=_cpu(0.12, 0.09, 0.03),
        sandbox=_cpu(0.01, 0.0, 0.01),
        out=out,
    )
    assert out.cpu["cpu_time"] == pytest.approx(10.0 - 0.11 - 0.01)
    assert out.cpu["cpu_user"] == pytest.approx(8.0 - 0.085)
    assert out.cpu["cpu_system"] == pytest.approx(2.0 - 0.025 - 0.01)
    assert out.monitor_cpu_time == pytest.approx(0.11)
    assert out.missing == {}


def test_cpu_never_negative_and_null_without_the_own_cgroup() -> None:
    out = JobFigures()
    job_cpu(
        pod=_cpu(0.1, 0.1, 0.0),
        monitor_before=_cpu(0.2, 0.2, 0.0),
        monitor_after=_cpu(0.2, 0.2, 0.0),
        sandbox=None,
        out=out,
    )
    assert out.cpu["cpu_time"] == 0.0
    unknown = JobFigures()
    job_cpu(pod=_cpu(1, 1, 0), monitor_before=None, monitor_after=None, sandbox=None, out=unknown)
    assert unknown.cpu == {"cpu_time": None, "cpu_user": None, "cpu_system": None}
    assert unknown.missing["cpu_time"] == NO_OWN_CGROUP
    assert unknown.missing["monitor_cpu_time"] == NO_OWN_CGROUP


def test_cpu_says_why_a_pod_or_monitor_figure_is_missing() -> None:
    out = JobFigures()
    pod = Reading(values={"cpu_time": 5.0}, missing={"cpu_user": "cpuacct.stat: no user field"})
    monitor = Reading(values={"cpu_time": 0.1}, missing={"cpu_system": "gone"})
    job_cpu(pod=pod, monitor_before=monitor, monitor_after=monitor, sandbox=None, out=out)
    assert out.cpu["cpu_time"] == pytest.approx(4.9)
    assert out.missing["cpu_user"] == "cpuacct.stat: no user field"
    assert out.missing["cpu_system"] == "pod figure unreadable"


def _peak(**kw: object) -> JobFigures:
    out = JobFigures()
    args: dict[str, object] = {
        "pod_source": "memory.peak",
        "pod_reason": "",
        "container_peaks": [],
        "sandbox_min": MIB // 2,
    }
    args.update(kw)
    job_peak(out=out, **args)  # type: ignore[arg-type]
    return out


def test_peak_is_pod_peak_minus_the_smallest_overhead() -> None:
    out = _peak(pod_peak=300 * MIB, overhead_min=12 * MIB, container_peaks=[250 * MIB])
    assert out.max_memory == 288 * MIB
    assert out.max_memory_source == "pod-peak-minus-monitor"
    assert out.monitor_max_memory == 12 * MIB


def test_a_container_watermark_above_the_upper_bound_wins() -> None:
    # The overhead's minimum was sampled while the job was smaller than its own watermark says.
    out = _peak(pod_peak=300 * MIB, overhead_min=80 * MIB, container_peaks=[250 * MIB, 10])
    assert out.max_memory == 250 * MIB and out.max_memory_source == "container-peak"


def test_peak_is_never_above_the_pod_peak() -> None:
    out = _peak(pod_peak=100 * MIB, overhead_min=MIB, container_peaks=[120 * MIB])
    assert out.max_memory == 100 * MIB and out.max_memory_source == "container-peak"


def test_no_peak_without_the_own_cgroup_even_with_a_watermark() -> None:
    # The watermark can be a poll old: alone it could be below the job's peak.
    out = _peak(pod_peak=300 * MIB, overhead_min=None, container_peaks=[100 * MIB])
    assert out.max_memory is None and out.max_memory_source is None
    assert out.missing["max_memory"] == NO_OWN_CGROUP
    assert out.missing["monitor_max_memory"] == NO_OWN_CGROUP


def test_a_job_never_seen_alive_keeps_the_monitor_in_rather_than_read_low() -> None:
    # It may have peaked before the monitor existed: only the sandbox is subtracted.
    out = _peak(pod_peak=201 * MIB, overhead_min=12 * MIB, container_peaks=[])
    assert out.max_memory == 201 * MIB - MIB // 2
    assert out.max_memory_source == "pod-peak-minus-sandbox"


def test_sampled_pod_peak_and_nothing_at_all() -> None:
    sampled = _peak(
        pod_peak=50 * MIB, pod_source="sampled", overhead_min=MIB, container_peaks=[40 * MIB]
    )
    assert sampled.max_memory == 49 * MIB and sampled.max_memory_source == "sampled"
    none = _peak(pod_peak=None, pod_reason="memory.peak: file not found", overhead_min=MIB)
    assert none.max_memory is None and none.max_memory_source is None
    assert none.missing["max_memory"] == "memory.peak: file not found"


def test_sum_readings_drops_a_figure_missing_in_any() -> None:
    total = sum_readings(
        [_cpu(1, 1, 0), Reading(values={"cpu_time": 2}, missing={"cpu_user": "x"})]
    )
    assert total.values == {"cpu_time": 3, "cpu_system": 0}
    assert total.missing == {"cpu_user": "x"}


def test_rss_from_status() -> None:
    assert rss_from_status("Name:\tpython\nVmRSS:\t   11744 kB\n") == 11744 * 1024
    assert rss_from_status("VmRSS:\tlots kB\n") is None
    assert rss_from_status(f"VmRSS:\t{1 << 60} kB\n") is None
    assert rss_from_status("") is None


def test_log_lines() -> None:
    line = format_line(level=20, name="mon", msg="pod read", fields={"a": 1}, fmt="json", now=0.5)
    assert line == (
        '{"time":"1970-01-01T00:00:00.500+00:00","level":"INFO","logger":"mon",'
        '"msg":"pod read","a":1}'
    )
    text = format_line(level=30, name="mon", msg="m", fields={"k": "v"}, fmt="text", now=0)
    assert text.endswith("WARNING mon: m k=v")


class Point(Record):
    x: int
    y: int = 2


def test_record_is_a_small_named_tuple() -> None:
    assert Point(1) == Point(x=1, y=2) and Point(1).y == 2
    assert repr(Point(1, 3)) == "Point(x=1, y=3)"
    with pytest.raises(AttributeError):
        Point(1).x = 5
    with pytest.raises(TypeError):
        Point()
    with pytest.raises(TypeError):
        Point(1, z=3)
