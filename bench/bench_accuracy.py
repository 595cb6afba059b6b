"""Accuracy and cost of the monitor on real cgroup v1 (root needed).

Runs known workloads (CPU-bound 0.5-5 s, memory 50-500 MiB, several processes) in a kubelet-
shaped cgroup hierarchy, reads it the way the monitor does, and prints the error against ground
truth: each workload's own getrusage for its time in the cgroup, and the bytes it touched. Then
measures the monitor's own idle CPU and RSS while it waits, and its start-up time.

    python bench/bench_accuracy.py [--idle-seconds 60] [--quick]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402

from mon.cgroup_paths import find_pod_cgroup  # noqa: E402
from mon.cgroup_read import read_pod_figures  # noqa: E402
from tests.mon.livecg import MIB, KubeletTree, run_workloads, unavailable_reason  # noqa: E402

# (label, cpu seconds per process, MiB per process, processes)
WORKLOADS = [
    ("cpu 0.5 s", 0.5, 1, 1),
    ("cpu 1 s", 1.0, 1, 1),
    ("cpu 2 s", 2.0, 1, 1),
    ("cpu 5 s", 5.0, 1, 1),
    ("mem 50 MiB", 0.1, 50, 1),
    ("mem 100 MiB", 0.1, 100, 1),
    ("mem 250 MiB", 0.1, 250, 1),
    ("mem 500 MiB", 0.1, 500, 1),
    ("4 procs 0.5 s 50 MiB", 0.5, 50, 4),
    ("2 procs 1 s 200 MiB", 1.0, 200, 2),
]
QUICK = {"cpu 0.5 s", "cpu 1 s", "mem 100 MiB", "4 procs 0.5 s 50 MiB"}


def measure(cpu_s: float, mem_mib: int, processes: int) -> tuple[float, float, float, float]:
    """-> (true cpu s, read cpu s, touched bytes, read max_memory bytes)."""
    with KubeletTree() as tree:
        works, _ = run_workloads(tree, cpu_s=cpu_s, mem_bytes=mem_mib * MIB, processes=processes)
        tree.remove_container()
        pod = find_pod_cgroup(cgroup_root=tree.sys_root / "fs" / "cgroup", pod_uid=tree.pod_uid)
        f = read_pod_figures(pod, sampled_max_memory=None, clk_tck=os.sysconf("SC_CLK_TCK"))
    truth_cpu = sum(w.cpu_s for w in works)
    touched = float(sum(w.touched_bytes for w in works))
    return truth_cpu, f.cpu_time or float("nan"), touched, float(f.max_memory or float("nan"))


def idle_cost(seconds: float) -> tuple[float, float, int, int]:
    """The waiting monitor over `seconds`: (CPU s used, % of one core, RSS, polls)."""
    with KubeletTree() as tree:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "OPTUNE_POD_UID": tree.pod_uid,
            "OPTUNE_SYS_ROOT": str(tree.sys_root),
            "OPTUNE_TERMINATION_LOG": str(tree.sys_root / "termination-log"),
            "OPTUNE_POLL_INTERVAL": "1",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "mon"],
            cwd=REPO,
            env=env,
            stderr=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        try:
            time.sleep(2.0)  # start-up done
            ps = psutil.Process(proc.pid)
            t0 = ps.cpu_times()
            time.sleep(seconds)
            t1 = ps.cpu_times()
            rss = ps.memory_info().rss
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    used = (t1.user - t0.user) + (t1.system - t0.system)
    return used, used / seconds * 100, rss, int(seconds)


def startup_s(runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "mon", "--help"], cwd=REPO, capture_output=True, check=True
        )
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true", help="a few workloads only")
    args = parser.parse_args(argv)
    reason = unavailable_reason()
    if reason is not None:
        print(f"bench_accuracy cannot run here: {reason}")
        return 0

    print(f"{'workload':<24} {'cpu true s':>10} {'cpu read s':>10} {'cpu err %':>9} {'ms':>6} "
          f"{'mem MiB':>8} {'peak MiB':>9} {'mem err %':>9}")  # fmt: skip
    for label, cpu_s, mem_mib, procs in WORKLOADS:
        if args.quick and label not in QUICK:
            continue
        truth_cpu, cpu, touched, peak = measure(cpu_s, mem_mib, procs)
        cpu_err = (cpu - truth_cpu) / truth_cpu * 100
        cpu_err_ms = (cpu - truth_cpu) * 1000
        mem_err = (peak - touched) / touched * 100
        print(
            f"{label:<24} {truth_cpu:>10.3f} {cpu:>10.3f} {cpu_err:>+9.2f} {cpu_err_ms:>+6.0f}"
            f" {touched / MIB:>8.0f} {peak / MIB:>9.1f} {mem_err:>+9.2f}"
        )
    print()
    used, pct, rss, polls = idle_cost(args.idle_seconds)
    print(f"monitor idle over {args.idle_seconds:.0f} s ({polls} polls at 1 s): "
          f"CPU {used * 1000:.1f} ms ({pct:.3f}% of a core), RSS {rss / MIB:.1f} MiB")  # fmt: skip
    print(f"start-up of `python -m mon --help` (median of 5): {startup_s() * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
