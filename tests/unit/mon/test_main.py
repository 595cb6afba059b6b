"""`python -m mon` as a subprocess against fixture trees: both cues, delivery, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.unit.mon.cgtree import (
    POD_PATHS,
    POD_UID,
    build_v1,
    build_v2,
    cid,
    container_dir_name,
)
from tests.unit.mon.receiver import closed_port_url, stats_receiver

REPO = Path(__file__).resolve().parents[3]
APP, PAUSE, SELF = cid("app"), cid("pause"), cid("monitor")


@dataclass
class Monitor:
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    waiting: threading.Event = field(default_factory=threading.Event)

    def log(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.lines if line.startswith("{")]


def _fake_proc(tmp_path: Path, own: str) -> Path:
    """A /proc with self/cgroup naming our container and a mountinfo naming the sandbox."""
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    rel = POD_PATHS[("systemd", "burstable")]
    (proc / "self" / "cgroup").write_text(f"0::/{rel}/{own}\n")
    (proc / "self" / "mountinfo").write_text(
        f"2 1 254:1 /var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/{PAUSE}/hostname "
        "/etc/hostname rw - ext4 /dev/vda1 rw\n"
    )
    return proc


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "OPTUNE_POD_UID": POD_UID,
        "OPTUNE_SYS_ROOT": str(tmp_path),
        "OPTUNE_TERMINATION_LOG": str(tmp_path / "termination-log"),
        "OPTUNE_POLL_INTERVAL": "0.05",
    }
    env.update(extra)
    return env


Start = Callable[..., Monitor]


@pytest.fixture
def start() -> Iterator[Start]:
    started: list[Monitor] = []

    def run(env: Mapping[str, str], *args: str) -> Monitor:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mon", *args],
            cwd=REPO,
            env=dict(env),
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        mon = Monitor(proc)

        def read() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                mon.lines.append(line)
                if '"waiting for cue"' in line:
                    mon.waiting.set()

        threading.Thread(target=read, daemon=True).start()
        started.append(mon)
        return mon

    yield run
    for mon in started:
        if mon.proc.poll() is None:
            mon.proc.kill()
            mon.proc.wait()


def _v2_pod(tmp_path: Path) -> Path:
    names = {
        n: container_dir_name("containerd", c) for n, c in (("a", APP), ("p", PAUSE), ("s", SELF))
    }
    return build_v2(
        tmp_path,
        POD_PATHS[("systemd", "burstable")],
        containers={names["a"]: True, names["p"]: True, names["s"]: True},
    )


def test_sigterm_wakes_the_monitor_which_reads_delivers_and_exits_0(
    tmp_path: Path, start: Start
) -> None:
    build_v1(tmp_path, POD_PATHS[("cgroupfs", "guaranteed")], containers={APP: 1})
    with stats_receiver() as rec:
        mon = start(_env(tmp_path, OPTUNE_STATS_URL=rec.url, OPTUNE_STATS_TOKEN="t0k",
                         OPTUNE_POLL_INTERVAL="5"))  # fmt: skip
        assert mon.waiting.wait(10), mon.lines
        sent = time.monotonic()
        mon.proc.send_signal(signal.SIGTERM)
        assert mon.proc.wait(timeout=5) == 0
        elapsed = time.monotonic() - sent
    # Half the poll interval: SIGTERM woke the monitor, it did not wait for its next poll.
    # (The latency itself, target 1 s, is measured by bench/bench_accuracy.py, not here.)
    assert elapsed < 2.5, elapsed
    stats = json.loads((tmp_path / "termination-log").read_text())
    assert stats["cue"] == "SIGTERM"
    assert stats["cgroup"] == "v1"
    assert stats["cpu_time"] == pytest.approx(12.5)
    assert stats["max_memory"] == 524288000
    assert stats["monitor_max_rss"] > 0
    assert rec.bodies == [{"id": POD_UID, "stats": stats}]
    assert rec.headers[0]["Authorization"] == "Bearer t0k"
    log = mon.log()
    assert all(entry.get("pod_uid") == POD_UID for entry in log)
    assert "t0k" not in "".join(mon.lines)


def test_exits_by_itself_when_siblings_stop_v2(tmp_path: Path, start: Start) -> None:
    pod_dir = _v2_pod(tmp_path)
    env = _env(
        tmp_path, OPTUNE_PROC_ROOT=str(_fake_proc(tmp_path, container_dir_name("containerd", SELF)))
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
    assert stats["cpu_time"] == pytest.approx(12.5)
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
    env = _env(tmp_path, OPTUNE_PROC_ROOT=str(_fake_proc(tmp_path, names["s"])))
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
    mon = start(_env(tmp_path, OPTUNE_STATS_URL=closed_port_url()), "--once")
    assert mon.proc.wait(timeout=15) == 0
    stats = json.loads((tmp_path / "termination-log").read_text())
    assert stats["cue"] == "once" and stats["max_memory"] == 524288000
    assert any(e["msg"] == "stats POST gave up" for e in mon.log())


def test_missing_pod_cgroup_still_reports_why_and_exits_0(tmp_path: Path, start: Start) -> None:
    build_v2(tmp_path, "kubepods")
    mon = start(_env(tmp_path), "--once")
    assert mon.proc.wait(timeout=10) == 0
    stats = json.loads((tmp_path / "termination-log").read_text())
    assert stats["cpu_time"] is None and stats["max_memory"] is None
    assert "pod cgroup not found" in stats["missing"]["cpu_time"]
    errors = [e for e in mon.log() if e["level"] == "ERROR"]
    assert errors and f"kubepods/burstable/pod{POD_UID}" in str(errors[0]["error"])


def test_config_error_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    env = _env(tmp_path, OPTUNE_POLL_INTERVAL="soon")
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
