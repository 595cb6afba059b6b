"""Real cgroup v1 (as root): a known workload in a kubelet-shaped hierarchy, read by the monitor.

Tolerances: cpu_time within 5% of the workload's own getrusage for its time in the cgroup
(the kernel adds only the exit of the process: freeing its memory). max_memory at least the
touched size and at most 1.2 x touched + 16 MiB: the workload starts its interpreter before it
is moved in (v1 does not move existing charges), so only its new heap pages, page tables and
kernel objects add to the array; 16 MiB is generous for those.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mon.cgroup_paths import find_pod_cgroup
from mon.cgroup_read import read_pod_figures
from tests.mon.livecg import MIB, KubeletTree, run_workloads, unavailable_reason

REASON = unavailable_reason()
pytestmark = [pytest.mark.cgroup, pytest.mark.skipif(REASON is not None, reason=REASON or "")]

REPO = Path(__file__).resolve().parents[2]
TOUCHED = 100 * MIB
SLACK_BYTES = 16 * MIB


@pytest.fixture
def tree() -> object:
    with KubeletTree() as t:
        yield t


def test_figures_match_a_known_workload(tree: KubeletTree) -> None:
    (work,), children_cpu = run_workloads(tree, cpu_s=1.0, mem_bytes=TOUCHED)
    pod_usage_before = int(tree.read("cpuacct", "cpuacct.usage"))
    pod_peak_before = int(tree.read("memory", "memory.max_usage_in_bytes"))
    assert pod_usage_before > 0

    tree.remove_container()  # as the runtime does once the container exited
    # v1: the parent keeps the removed child's CPU usage and peak.
    assert int(tree.read("cpuacct", "cpuacct.usage")) >= pod_usage_before
    assert int(tree.read("memory", "memory.max_usage_in_bytes")) == pod_peak_before

    pod = find_pod_cgroup(cgroup_root=tree.sys_root / "fs" / "cgroup", pod_uid=tree.pod_uid)
    assert pod.version == "v1"
    f = read_pod_figures(pod, sampled_max_memory=None, clk_tck=os.sysconf("SC_CLK_TCK"))

    assert f.cpu_time is not None
    assert f.cpu_time == pytest.approx(work.cpu_s, rel=0.05)
    assert f.cpu_time <= children_cpu + 0.01  # never more than the whole processes used
    assert f.cpu_user is not None and f.cpu_system is not None
    # cpuacct.stat is tick-based (USER_HZ): its sum agrees with cpuacct.usage to a few ticks.
    assert f.cpu_user + f.cpu_system == pytest.approx(f.cpu_time, abs=0.1)

    assert f.max_memory is not None
    assert TOUCHED <= f.max_memory <= TOUCHED * 1.2 + SLACK_BYTES, f.max_memory
    assert f.max_memory_source == "memory.max_usage_in_bytes"
    assert set(f.missing) == {"memory.kernel_stack", "memory.pagetables"}


def test_several_processes_add_up(tree: KubeletTree) -> None:
    works, _ = run_workloads(tree, cpu_s=0.5, mem_bytes=50 * MIB, processes=3)
    tree.remove_container()
    pod = find_pod_cgroup(cgroup_root=tree.sys_root / "fs" / "cgroup", pod_uid=tree.pod_uid)
    f = read_pod_figures(pod, sampled_max_memory=None, clk_tck=os.sysconf("SC_CLK_TCK"))
    truth_cpu = sum(w.cpu_s for w in works)
    assert f.cpu_time == pytest.approx(truth_cpu, rel=0.05)
    # Concurrent peaks need not coincide exactly, so at least one array, at most all of them.
    assert f.max_memory is not None
    assert 50 * MIB <= f.max_memory <= 3 * 50 * MIB * 1.2 + SLACK_BYTES


def test_monitor_process_end_to_end(tree: KubeletTree, tmp_path: Path) -> None:
    (work,), _ = run_workloads(tree, cpu_s=0.5, mem_bytes=50 * MIB)
    tree.remove_container()
    log = tmp_path / "termination-log"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "OPTUNE_POD_UID": tree.pod_uid,
        "OPTUNE_SYS_ROOT": str(tree.sys_root),
        "OPTUNE_TERMINATION_LOG": str(log),
    }
    done = subprocess.run(
        [sys.executable, "-m", "mon", "--once"], cwd=REPO, env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    stats = json.loads(log.read_text())
    assert stats["cgroup"] == "v1"
    assert stats["cpu_time"] == pytest.approx(work.cpu_s, rel=0.05)
    assert 50 * MIB <= stats["max_memory"] <= 50 * MIB * 1.2 + SLACK_BYTES
    assert stats["memory"]["anon"] >= 0


def test_tree_is_removed_afterwards() -> None:
    t = KubeletTree().create()
    base = dict(t.base)
    run_workloads(t, cpu_s=0.05, mem_bytes=MIB)
    t.remove()
    assert not any(p.exists() for p in base.values())
    assert not t.sys_root.exists()
