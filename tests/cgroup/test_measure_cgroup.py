"""`servo measure` on real cgroups (root, cgroup v1 controllers writable; skipped otherwise).

Tolerances, cgroup v1: cpu_time within 5% of the child's own CPU (the cgroup also holds the
few ms between fork and exec and the exit that frees the array). max_memory at least the 100 MiB
touched and at most 1.2 x 100 MiB + 16 MiB: the child joins the cgroup before it execs, so the
interpreter's private pages (~6 MiB for `python -I -S`), page tables of the array (~0.2 MiB)
and any page cache it reads first are charged too; 16 MiB covers those with room.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.measurekit import (
    CGROUP_REASON,
    SLACK_BYTES,
    TOUCHED_BYTES,
    WORKLOAD_CMD,
    clean_env,
    leftover_cgroups,
    measure,
    only_param,
    value,
)


@pytest.mark.cgroup
@pytest.mark.skipif(CGROUP_REASON is not None, reason=CGROUP_REASON or "")
def test_cgroup_v1_figures_match_a_known_workload_and_the_cgroup_is_removed(
    tmp_path: Path,
) -> None:
    proc = measure(["--app-id", "burn", "--", *WORKLOAD_CMD], clean_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    truth_cpu_s = json.loads(proc.stdout)["cpu_s"]
    param = only_param(tmp_path)
    assert param["annotations"]["measured_by"] == "cgroup-v1"
    assert value(param, "cpu_time") == pytest.approx(truth_cpu_s, rel=0.05)
    # cpuacct.stat counts USER_HZ ticks: its split agrees with cpuacct.usage to a few ticks.
    assert value(param, "cpu_user") + value(param, "cpu_system") == pytest.approx(
        value(param, "cpu_time"), abs=0.1
    )
    peak = value(param, "max_memory")
    assert TOUCHED_BYTES <= peak <= TOUCHED_BYTES * 1.2 + SLACK_BYTES, peak
    assert leftover_cgroups() == []
    print(f"cgroup: cpu {value(param, 'cpu_time'):.3f} s vs {truth_cpu_s:.3f} s, peak {peak}")


@pytest.mark.cgroup
@pytest.mark.skipif(CGROUP_REASON is not None, reason=CGROUP_REASON or "")
def test_processes_that_outlive_the_command_are_moved_out_and_the_cgroup_removed(
    tmp_path: Path,
) -> None:
    script = "sleep 1 </dev/null >/dev/null 2>&1 & exit 0"
    proc = measure(["--", "sh", "-c", script], clean_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "1 process(es) outlived the command" in proc.stderr
    assert leftover_cgroups() == []
