"""The monitor and the servo together: a real `python -m mon` process reads a fixture cgroup
tree and delivers its stats; the servo (in a thread, against the API emulator) sends one
MEASUREMENT that carries them. Both channels: POST to the receiver, and the termination
message that the kubelet would copy into the pod status.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cgtree import POD_PATHS, POD_UID, build_v2, cid, container_dir_name
from tests.support.fakes.backend import RecordingBackend
from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.harness import wait_measured
from tests.support.helpers import job_pod, set_running, set_terminated

REPO = Path(__file__).resolve().parents[2]


def monitored_pod() -> dict[str, Any]:
    pod = job_pod("trainer", jobid="TRAIN", uid=POD_UID)
    pod["spec"]["initContainers"] = [
        {"name": "servo-monitor", "image": "mon:1", "restartPolicy": "Always"}
    ]
    return pod


class Monitor:
    """A running monitor process and its log lines (JSON on stderr)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.waiting = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if '"waiting for cue"' in line:
                self.waiting.set()

    def stop(self) -> str:
        """SIGTERM, as the kubelet sends a native sidecar once the job container exited."""
        # Before its handler is in place a SIGTERM would just kill it; wait until it waits.
        assert self.waiting.wait(15), "".join(self.lines)
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=15) == 0, "".join(self.lines)
        self._reader.join(timeout=5)
        return "".join(self.lines)


@pytest.fixture
def monitors() -> Iterator[list[Monitor]]:
    """Monitors a test started; any left running (a failed test) are killed."""
    started: list[Monitor] = []
    yield started
    for mon in started:
        if mon.proc.poll() is None:
            mon.proc.kill()
            mon.proc.wait()


def start_monitor(tmp_path: Path, started: list[Monitor], **env: str) -> Monitor:
    build_v2(
        tmp_path,
        POD_PATHS[("systemd", "burstable")],
        containers={container_dir_name("containerd", cid("job")): True},
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "mon"],
        cwd=REPO,
        env={
            "PATH": os.environ.get("PATH", ""),
            "OPTUNE_POD_UID": POD_UID,
            "OPTUNE_SYS_ROOT": str(tmp_path),
            "OPTUNE_TERMINATION_LOG": str(tmp_path / "termination-log"),
            "OPTUNE_WATCH_SIBLINGS": "false",
            "OPTUNE_SIDECAR_STYLE": "native",
            **env,
        },
        stderr=subprocess.PIPE,
        text=True,
    )
    started.append(Monitor(proc))
    return started[-1]


def run_job(emu: KubeEmulator, message: str | None = None) -> None:
    create_job(emu)
    finish_job(emu, message)


def create_job(emu: KubeEmulator) -> dict[str, Any]:
    return emu.create_pod(monitored_pod())


def finish_job(emu: KubeEmulator, message: str | None = None) -> None:
    def running(p: dict[str, Any]) -> None:
        set_running(p)
        p["status"]["podIP"] = "10.244.1.7"  # not the test's address: the token must do

    def done(p: dict[str, Any]) -> None:
        set_terminated(p)
        p["status"]["podIP"] = "10.244.1.7"
        if message is not None:
            p["status"]["initContainerStatuses"] = [
                {
                    "name": "servo-monitor",
                    "state": {"terminated": {"exitCode": 0, "message": message}},
                }
            ]

    emu.update_pod("default", "trainer", running)
    emu.update_pod("default", "trainer", done)


@pytest.mark.parametrize("channel", ["post", "termination-message"])
def test_monitor_stats_reach_the_backend_in_the_measurement(
    tmp_path: Path,
    emu: KubeEmulator,
    backend: RecordingBackend,
    start_servo: Any,
    monitors: list[Monitor],
    channel: str,
) -> None:
    servo = start_servo(OPTUNE_STATS_WAIT="20", POD_NAMESPACES="default")
    receiver = servo.servo.receiver
    assert receiver is not None
    token = ""
    if channel == "post":
        # The monitor's projected service-account token, as the kubelet would mount it.
        token = emu.tokens.mint(create_job(emu), audience="servo-stats")
        (tmp_path / "token").write_text(token)
        mon = start_monitor(
            tmp_path,
            monitors,
            OPTUNE_STATS_URL=f"http://127.0.0.1:{receiver.port}/",
            OPTUNE_STATS_TOKEN_FILE=str(tmp_path / "token"),
        )
        finish_job(emu)
        assert emu.wait_for(lambda: bool(servo.servo.scopes[0].tracker.awaiting), 5)
        log = mon.stop()
        # The POST is only held; it decides once the monitor ended without a message.
        emu.update_pod(
            "default",
            "trainer",
            lambda p: p["status"].update(
                initContainerStatuses=[
                    {"name": "servo-monitor", "state": {"terminated": {"exitCode": 0}}}
                ]
            ),
        )
    else:
        mon = start_monitor(tmp_path, monitors)  # no receiver address: termination message only
        log = mon.stop()
        run_job(emu, message=(tmp_path / "termination-log").read_text())
    [m] = wait_measured(backend, 1)
    metrics, ann = m.param["metrics"], m.param["annotations"]
    # The pod totals: a wire-v1 monitor's figures are the pod's (the servo reports them as
    # pod_*), and a v2 monitor reports them as pod_* itself (this fixture tree has no monitor
    # container cgroup to subtract, so its job-only figures are missing).
    # The fixture tree's cpu.stat and memory.peak (tests/support/cgtree.py).
    assert metrics["pod_cpu_time"] == {"value": 12.5, "unit": "s"}
    assert metrics["pod_cpu_user"]["value"] == 10.0
    assert metrics["pod_max_memory"] == {"value": 524288000, "unit": "bytes"}
    assert metrics["memory_anon"]["value"] == 73400320
    assert metrics["monitor_max_rss"]["value"] > 0
    assert metrics["duration"]["value"] == 5722
    assert ann["stats_channel"] == channel and ann["cgroup"] == "v2"
    assert ann["pod_max_memory_source"] == "memory.peak"
    assert not token or token not in log
