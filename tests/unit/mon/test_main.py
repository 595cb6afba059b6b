"""`python -m mon` as a subprocess against fixture trees: both cues, delivery, exit codes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.cgtree import (
    POD_PATHS,
    POD_UID,
    build_v1,
    build_v2,
    cid,
    container_dir_name,
)
from tests.support.monproc import APP, PAUSE, REPO, SELF, Start, fake_proc, mon_env
from tests.support.monreceiver import closed_port_url, stats_receiver

MIB = 1 << 20
# Container-level files: the monitor (SELF) and the sandbox (PAUSE) used this much.
V1_OWN = {
    "cpuacct.usage": "200000000\n",
    "cpuacct.stat": "user 15\nsystem 5\n",
    "memory.usage_in_bytes": f"{10 * MIB}\n",
}
V1_PAUSE = {
    "cpuacct.usage": "50000000\n",
    "cpuacct.stat": "user 3\nsystem 2\n",
    "memory.usage_in_bytes": f"{1 * MIB}\n",
}
# v1 counts a container's OOM kill in the container's cgroup only, not in the pod's.
V1_APP = {
    "cpuacct.usage": "9000000000\n",
    "memory.max_usage_in_bytes": f"{300 * MIB}\n",
    "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
}


def _cpu_stat(usec: int) -> str:
    return f"usage_usec {usec}\nuser_usec {usec // 2}\nsystem_usec {usec - usec // 2}\n"


def _v2_pod(tmp_path: Path) -> Path:
    names = {
        n: container_dir_name("containerd", c) for n, c in (("a", APP), ("p", PAUSE), ("s", SELF))
    }
    return build_v2(
        tmp_path,
        POD_PATHS[("systemd", "burstable")],
        containers={names["a"]: True, names["p"]: True, names["s"]: True},
        container_files={
            names["s"]: {"cpu.stat": _cpu_stat(300_000), "memory.current": f"{12 * MIB}\n"},
            names["p"]: {"cpu.stat": _cpu_stat(200_000), "memory.current": f"{1 * MIB}\n"},
            names["a"]: {
                "cpu.stat": _cpu_stat(11_500_000),
                "memory.peak": f"{400 * MIB}\n",
                "memory.current": f"{100 * MIB}\n",
                "memory.events": "oom 0\noom_kill 0\n",
            },
        },
    )


def test_sigterm_wakes_the_monitor_which_reads_delivers_and_exits_0(
    tmp_path: Path, start: Start
) -> None:
    build_v1(
        tmp_path,
        POD_PATHS[("cgroupfs", "guaranteed")],
        containers={APP: 1, PAUSE: 1, SELF: 1},
        container_files={SELF: V1_OWN, PAUSE: V1_PAUSE, APP: V1_APP},
    )
    proc = fake_proc(tmp_path, SELF)
    (tmp_path / "token").write_text("t0k")
    with stats_receiver() as rec:
        mon = start(
            mon_env(
                tmp_path,
                OPTUNE_STATS_URL=rec.url,
                OPTUNE_STATS_TOKEN_FILE=str(tmp_path / "token"),
                OPTUNE_POLL_INTERVAL="5",
                OPTUNE_PROC_ROOT=str(proc),
            )
        )
        assert mon.waiting.wait(10), mon.lines
        sent = time.monotonic()
        mon.proc.send_signal(signal.SIGTERM)
        assert mon.proc.wait(timeout=5) == 0
        elapsed = time.monotonic() - sent
    # Half the poll interval: SIGTERM woke the monitor, it did not wait for its next poll.
    # (The latency itself, target 1 s, is measured by bench/bench_accuracy.py, not here.)
    assert elapsed < 2.5, elapsed
    stats = json.loads((tmp_path / "termination-log").read_text())
    assert stats["v"] == 2 and stats["cue"] == "SIGTERM"
    assert stats["cgroup"] == "v1"
    # Pod 12.5 s minus the monitor's 0.2 s minus the sandbox's 0.05 s.
    assert stats["cpu_time"] == pytest.approx(12.25)
    assert stats["pod_cpu_time"] == pytest.approx(12.5)
    assert stats["monitor_cpu_time"] == pytest.approx(0.2)
    assert stats["cpu_user"] == pytest.approx((1000 - 18) / 100)
    # Pod peak 500 MiB minus the smallest monitor + sandbox use (11 MiB).
    assert stats["max_memory"] == 524288000 - 11 * MIB
    assert stats["max_memory_source"] == "pod-peak-minus-monitor"
    assert stats["pod_max_memory"] == 524288000
    assert stats["monitor_max_memory"] == 11 * MIB
    assert stats["oom_kills"] == 1  # pod counter 0 + the app container's 1
    assert stats["containers"] == {
        APP: {"cpu_time": pytest.approx(9.0), "max_memory": 300 * MIB, "oom_kills": 1}
    }
    assert stats["monitor_max_rss"] > 0
    assert rec.bodies == [{"id": POD_UID, "stats": stats}]
    assert rec.headers[0]["Authorization"] == "Bearer t0k"
    log = mon.log()
    assert all(entry.get("pod_uid") == POD_UID for entry in log)
    assert "t0k" not in "".join(mon.lines)


def test_exits_by_itself_when_siblings_stop_v2(tmp_path: Path, start: Start) -> None:
    pod_dir = _v2_pod(tmp_path)
    env = mon_env(
        tmp_path, OPTUNE_PROC_ROOT=str(fake_proc(tmp_path, container_dir_name("containerd", SELF)))
    )
    mon = start(env)
    assert mon.waiting.wait(10), mon.lines
    time.sleep(0.3)  # several polls see the app running
    assert mon.proc.poll() is None, "left while the app container still ran"
    app = pod_dir / container_dir_name("containerd", APP)
    (app / "cgroup.events").write_text("populated 0\nfrozen 0\n")
    assert mon.proc.wait(timeout=5) == 0
    stats = json.loads((tmp_path / "termination-log").read_text())
    assert stats["cue"] == "siblings-exited"
    # Pod 12.5 s minus the monitor's 0.3 s and the sandbox's 0.2 s (cpu.stat usage_usec).
    assert stats["cpu_time"] == pytest.approx(12.0)
    assert stats["pod_cpu_time"] == pytest.approx(12.5)
    # Pod peak 500 MiB minus monitor (12 MiB) and sandbox (1 MiB); the app's own peak, 400 MiB,
    # is the lower bound, below that.
    assert stats["max_memory"] == 524288000 - 13 * MIB
    assert stats["containers"][APP] == {"cpu_time": 11.5, "max_memory": 400 * MIB, "oom_kills": 0}
    assert stats["oom_kills"] == 1
    assert stats["memory"]["kernel_stack"] == 327680


def test_pause_container_alone_does_not_keep_it_waiting_but_no_exit_before_app_seen(
    tmp_path: Path,
    start: Start,
) -> None:
    # Native sidecar start-up: only pause and the monitor exist; it must keep waiting.
    names = {n: container_dir_name("containerd", c) for n, c in (("p", PAUSE), ("s", SELF))}
    pod_dir = build_v2(
        tmp_path,
        POD_PATHS[("systemd", "burstable")],
        containers={names["p"]: True, names["s"]: True},
    )
    env = mon_env(tmp_path, OPTUNE_PROC_ROOT=str(fake_proc(tmp_path, names["s"])))
    mon = start(env)
    assert mon.waiting.wait(10)
    time.sleep(0.4)
    assert mon.proc.poll() is None
    app = pod_dir / container_dir_name("containerd", APP)
    app.mkdir()
    (app / "cgroup.events").write_text("populated 1\n")
    time.sleep(0.3)
    assert mon.proc.poll() is None
    (app / "cgroup.events").unlink()
    app.rmdir()  # the runtime removed the exited container's cgroup
    assert mon.proc.wait(timeout=5) == 0
    assert json.loads((tmp_path / "termination-log").read_text())["cue"] == "siblings-exited"


def test_dead_stats_target_still_writes_the_termination_message(
    tmp_path: Path, start: Start
) -> None:
    build_v2(tmp_path, POD_PATHS[("cgroupfs", "besteffort")])
    mon = start(mon_env(tmp_path, OPTUNE_STATS_URL=closed_port_url()), "--once")
    assert mon.proc.wait(timeout=15) == 0
    stats = json.loads((tmp_path / "termination-log").read_text())
    assert stats["cue"] == "once" and stats["pod_max_memory"] == 524288000
    # No container cgroup is the monitor's own: its share cannot be kept out, so no job figure.
    assert stats["max_memory"] is None and stats["cpu_time"] is None
    assert "own container cgroup" in stats["missing"]["cpu_time"]
    assert any(e["msg"] == "stats POST gave up" for e in mon.log())


def test_missing_pod_cgroup_still_reports_why_and_exits_0(tmp_path: Path, start: Start) -> None:
    build_v2(tmp_path, "kubepods")
    mon = start(mon_env(tmp_path), "--once")
    assert mon.proc.wait(timeout=10) == 0
    stats = json.loads((tmp_path / "termination-log").read_text())
    assert stats["cpu_time"] is None and stats["max_memory"] is None
    assert "pod cgroup not found" in stats["missing"]["cpu_time"]
    errors = [e for e in mon.log() if e["level"] == "ERROR"]
    assert errors and f"kubepods/burstable/pod{POD_UID}" in str(errors[0]["error"])


def test_config_error_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    env = mon_env(tmp_path, OPTUNE_POLL_INTERVAL="soon")
    del env["OPTUNE_POD_UID"]
    done = subprocess.run(
        [sys.executable, "-m", "mon"], cwd=REPO, env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert "OPTUNE_POD_UID is not set" in done.stderr
    assert "OPTUNE_POLL_INTERVAL='soon'" in done.stderr


def test_help_exits_0() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mon", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0
    assert "OPTUNE_POD_UID" in done.stdout


def test_undecodable_bytes_in_proc_files_do_not_cost_the_report(
    tmp_path: Path, start: Start
) -> None:
    build_v2(tmp_path, POD_PATHS[("systemd", "burstable")], containers={APP: True})
    proc = fake_proc(tmp_path, SELF)
    (proc / "self" / "mountinfo").write_bytes(b"2 1 254:1 /caf\xe9 /etc/hostname rw\n")
    (proc / "self" / "cgroup").write_bytes(b"0::/\xff\xfe\n")
    mon = start(mon_env(tmp_path, OPTUNE_PROC_ROOT=str(proc)), "--once")
    assert mon.proc.wait(timeout=30) == 0, mon.lines
    stats = json.loads((tmp_path / "termination-log").read_text())
    assert stats["cue"] == "once" and stats["pod_cpu_time"] == 12.5


def test_a_failure_report_names_the_reason(tmp_path: Path) -> None:
    from mon.__main__ import report_failure
    from mon.config import load_config

    config = load_config(mon_env(tmp_path))
    report_failure(config, "monitor failed: RuntimeError: boom")
    stats = json.loads((tmp_path / "termination-log").read_text())
    assert stats["cue"] == "deadline" and stats["cpu_time"] is None
    assert stats["missing"]["cpu_time"] == "monitor failed: RuntimeError: boom"


def test_two_job_containers_are_reported_each_and_together(tmp_path: Path, start: Start) -> None:
    other = cid("sidecar-job")
    build_v1(
        tmp_path,
        POD_PATHS[("cgroupfs", "burstable")],
        containers={APP: 1, other: 1, PAUSE: 1, SELF: 1},
        container_files={
            SELF: V1_OWN,
            PAUSE: V1_PAUSE,
            APP: V1_APP,
            other: {"cpuacct.usage": "3000000000\n", "memory.max_usage_in_bytes": f"{100 * MIB}\n"},
        },
    )
    mon = start(mon_env(tmp_path, OPTUNE_PROC_ROOT=str(fake_proc(tmp_path, SELF))), "--once")
    assert mon.proc.wait(timeout=30) == 0, mon.lines
    stats = json.loads((tmp_path / "termination-log").read_text())
    assert set(stats["containers"]) == {APP, other}
    assert stats["containers"][other]["cpu_time"] == pytest.approx(3.0)
    assert stats["cpu_time"] == pytest.approx(12.25)  # both job containers, neither subtracted


def test_the_monitor_needs_nothing_but_the_standard_library() -> None:
    # As the image runs it (python -S, no site-packages); typing, dataclasses and logging stay
    # out of its start-up, which they would double.
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import mon.__main__, mon.deliver; "
        "heavy = {'typing', 'dataclasses', 'inspect', 'logging'} & set(sys.modules); "
        "sys.exit(f'imported {sorted(heavy)}' if heavy else 0)"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(REPO)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
