"""Real cgroups (as root): the real monitor inside a kubelet-shaped pod, against a known workload.

The job-only figures must match the workload's own account: cpu_time within 2% + 10 ms of its
getrusage (the kernel adds only the exit of its processes), the peak at least its private
resident peak and at most 5% + 4 MiB above. The pod totals hold the monitor's share on top.
v1: memory, cpuacct and pids controllers; v2: the real unified hierarchy (cpu.stat and
cgroup.events; it has no memory controller here, v2 memory is tested on fixture trees).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.livecg import (
    MIB,
    REPO,
    PodTree,
    run_pod,
    unavailable_reason,
    v2_unavailable_reason,
)

V1_REASON = unavailable_reason(("memory", "cpuacct", "pids"))
V2_REASON = v2_unavailable_reason()
v1 = pytest.mark.skipif(V1_REASON is not None, reason=V1_REASON or "")
v2 = pytest.mark.skipif(V2_REASON is not None, reason=V2_REASON or "")
pytestmark = [pytest.mark.cgroup]


def _cpu_close(read: object, truth: float) -> bool:
    return isinstance(read, float) and abs(read - truth) <= 0.02 * truth + 0.010


@v1
@pytest.mark.parametrize("style", ["native", "plain"])
def test_v1_job_only_cpu_and_peak(style: str) -> None:
    with PodTree("v1") as tree:
        run = run_pod(tree, cpu_s=0.5, mem_bytes=100 * MIB, style=style, poll_s=0.2)
    s, truth = run.stats, run.truth
    assert s["cue"] == ("SIGTERM" if style == "native" else "siblings-exited"), run.monitor_log
    assert _cpu_close(s["cpu_time"], truth.cpu_s), (s, truth)
    # The pod total holds the monitor's start-up and polling, which the job figure leaves out.
    assert isinstance(s["pod_cpu_time"], float) and isinstance(s["monitor_cpu_time"], float)
    assert s["monitor_cpu_time"] > 0
    assert s["pod_cpu_time"] == pytest.approx(s["cpu_time"] + s["monitor_cpu_time"], abs=0.01)
    peak = s["max_memory"]
    assert isinstance(peak, int)
    assert truth.private_bytes <= peak <= truth.private_bytes * 1.05 + 4 * MIB, (s, truth)
    assert isinstance(s["pod_max_memory"], int) and s["pod_max_memory"] > peak
    assert s["max_memory_source"] == "pod-peak-minus-monitor"
    assert s["oom_kills"] == 0
    [job] = s["containers"].values()  # type: ignore[union-attr]
    assert job["oom_kills"] == 0


@v1
def test_v1_several_processes_peak_together() -> None:
    with PodTree("v1") as tree:
        run = run_pod(tree, cpu_s=0.05, mem_bytes=50 * MIB, processes=3, poll_s=0.2)
    peak, truth = run.stats["max_memory"], run.truth.private_bytes
    assert isinstance(peak, int)
    assert truth <= peak <= truth * 1.05 + 4 * MIB, (run.stats, run.truth)


@v2
@pytest.mark.parametrize("style", ["native", "plain"])
def test_v2_job_only_cpu_and_exit_detection(style: str) -> None:
    with PodTree("v2") as tree:
        run = run_pod(tree, cpu_s=0.5, mem_bytes=MIB, style=style, poll_s=0.2)
    s = run.stats
    assert s["cgroup"] == "v2"
    # plain: cgroup.events of the job container (populated 0, then removed) ended the wait.
    assert s["cue"] == ("SIGTERM" if style == "native" else "siblings-exited"), run.monitor_log
    assert _cpu_close(s["cpu_time"], run.truth.cpu_s), (s, run.truth)
    assert isinstance(s["pod_cpu_time"], float) and s["pod_cpu_time"] > s["cpu_time"]  # type: ignore[operator]


@v1
def test_tree_is_removed_afterwards() -> None:
    tree = PodTree("v1").create()
    base = dict(tree.base)
    try:
        tree.start("sandbox", ["sleep", "3600"])
        raise RuntimeError("a failing test")
    except RuntimeError:
        pass
    finally:
        tree.remove()
    assert not any(p.exists() for p in base.values())
    assert not tree.sys_root.exists()


@v1
def test_bench_accuracy_quick_prints_its_table() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_accuracy", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "v1  native  cpu" in out and "v1  plain   mem" in out, out
    assert "monitor RSS |" in out and "monitor start-up CPU |" in out, out
