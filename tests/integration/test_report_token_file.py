"""The backend token from a Secret volume over real HTTP: each POST carries the file's current
token, a rotation reaches the next POST after the check interval, and a broken file keeps the
last good one (the webhook's one-try sender shares the same file through the config)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from tenacity import wait_none

from servo.core.models import Event
from servo.report.reporter import Reporter
from servo.system.config import load_config
from servo.system.config_sections import ReportConfig
from servo.system.secretfile import CHECK_INTERVAL_S, SecretFile
from tests.support.fakes.backend import RecordingBackend
from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.helpers import job_pod, set_running, set_terminated
from tests.support.secretvolume import SecretVolume
from tests.support.servoproc import SERVO, clean_env


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def event(n: int) -> Event:
    return Event(id=f"uid-{n}:HELLO", event="HELLO", app_id="_global_", param={"account": "a"})


def test_each_post_carries_the_current_token_of_the_file(
    backend: RecordingBackend, tmp_path: Path
) -> None:
    volume = SecretVolume(tmp_path / "auth")
    volume.write("token-one\n")
    clock = Clock()
    secret = SecretFile(str(volume.path), variable="OPTUNE_AUTH_TOKEN_FILE", clock=clock)
    cfg = ReportConfig(
        url_template=backend.url_template(),
        account="acme",
        auth_token=None,
        auth_token_file=secret,
        timeout_s=2.0,
        deadline_s=5.0,
    )
    reporter = Reporter(cfg, wait=wait_none())
    reporter.send(event(1))
    reporter.send(event(2))  # the prepared request of this URL is reused: the header is not
    volume.write("token-two\n")
    clock.now += 1.0
    reporter.send(event(3))
    volume.remove_data()
    clock.now += 1.0
    reporter.send(event(4))
    got = [r.headers["Authorization"] for r in backend.received]
    assert got == ["Bearer token-one", "Bearer token-one", "Bearer token-two", "Bearer token-two"]


def test_the_loaded_config_sends_the_token_from_the_file(
    backend: RecordingBackend, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("from-a-file\n")
    cfg = load_config(
        {
            "OPTUNE_URL": backend.url_template(),
            "OPTUNE_ACCOUNT": "acme",
            "OPTUNE_AUTH_TOKEN_FILE": str(token),
        }
    )
    Reporter(cfg.report, wait=wait_none()).send(event(1))
    assert backend.received[0].headers["Authorization"] == "Bearer from-a-file"


def test_servo_run_sends_a_rotated_secret_after_the_kubelet_swaps_it(
    backend: RecordingBackend, tmp_path: Path
) -> None:
    volume = SecretVolume(tmp_path / "servo-auth")
    volume.write("before-rotation\n")
    with KubeEmulator() as emu:
        kubeconfig = emu.write_kubeconfig(tmp_path / "kubeconfig")
        proc = subprocess.Popen(
            [*SERVO, "run", "--kubeconfig", str(kubeconfig)],
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(
                OPTUNE_URL=backend.url_template(),
                OPTUNE_ACCOUNT="acme",
                OPTUNE_AUTH_TOKEN_FILE=str(volume.path),
                OPTUNE_STATS_PORT="0",
                OPTUNE_STATS_BIND="127.0.0.1",
            ),
        )
        try:
            assert backend.wait_for(lambda: bool(backend.events("HELLO")), 30)
            volume.write("after-rotation\n")
            time.sleep(CHECK_INTERVAL_S + 0.1)
            emu.create_pod(job_pod("rotated", jobid="ROT"))
            emu.update_pod("default", "rotated", set_running)
            emu.update_pod("default", "rotated", set_terminated)
            assert backend.wait_for(lambda: bool(backend.events("MEASUREMENT")), 15)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    [hello] = backend.events("HELLO")
    [measurement] = backend.events("MEASUREMENT")
    assert hello.headers["Authorization"] == "Bearer before-rotation"
    assert measurement.headers["Authorization"] == "Bearer after-rotation"
    assert "before-rotation" not in stderr and "after-rotation" not in stderr
