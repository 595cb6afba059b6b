"""The servo in a thread against the API emulator and a recording backend: shared harness."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client import ApiClient

from servo.report.outbox import Outbox
from servo.run.app import Servo
from servo.system.config import Config, load_config
from tests.support.fakes.backend import RecordingBackend
from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.helpers import set_running, set_terminated

TOKEN = "backend-t0ken"
# The stats receiver on a free loopback port, never the default 0.0.0.0:8080.
LOCAL_RECEIVER = {
    "OPTUNE_STATS_PORT": "0",
    "OPTUNE_STATS_BIND": "127.0.0.1",
    "OPTUNE_METRICS_PORT": "0",
    "OPTUNE_METRICS_BIND": "127.0.0.1",
}


class RunningServo:
    def __init__(self, servo: Servo, stop: threading.Event, thread: threading.Thread) -> None:
        self.servo, self.stop_event, self.thread = servo, stop, thread

    def synced(self, timeout_s: float = 10) -> bool:
        # Everything is up (watches, receiver, metrics and probes) once run() says so; then
        # each scope lists once.
        deadline = time.monotonic() + timeout_s
        return self.servo.started.wait(timeout_s) and all(
            s.watch.synced.wait(max(0.0, deadline - time.monotonic())) for s in self.servo.scopes
        )

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "servo did not stop"


def run_in_thread(cfg: Config, api: ApiClient, *, outbox: Outbox | None) -> RunningServo:
    """The servo as `servo run` assembles it (its reporter with `outbox`), in a daemon thread;
    RunningServo.stop() ends it as SIGTERM would."""
    servo = Servo(cfg, api, outbox=outbox)
    stop = threading.Event()
    thread = threading.Thread(target=servo.run, args=(stop,), kwargs={"grace_s": 5}, daemon=True)
    thread.start()
    return RunningServo(servo, stop, thread)


@pytest.fixture
def emu() -> Iterator[KubeEmulator]:
    with KubeEmulator(bookmark_interval_s=0.2) as e:
        yield e


@pytest.fixture
def start_servo(emu: KubeEmulator, backend: RecordingBackend) -> Iterator[Any]:
    running: list[RunningServo] = []

    def start(**env: str) -> RunningServo:
        environ = {
            "OPTUNE_URL": backend.url_template(),
            "OPTUNE_ACCOUNT": "acme",
            "OPTUNE_AUTH_TOKEN": TOKEN,
            "POD_NAMESPACES": "default,batch",
            "OPTUNE_WATCH_TIMEOUT": "2",
            "OPTUNE_WATCH_IDLE_TIMEOUT": "3",
            "OPTUNE_WATCH_MAX_BACKOFF": "0.2",
            "OPTUNE_SEND_MAX_BACKOFF": "0.2",
            "OPTUNE_SEND_TIMEOUT": "2",
            **LOCAL_RECEIVER,
            **env,
        }
        cfg: Config = load_config({k: v for k, v in environ.items() if v != ""})
        # An outbox only when a test names its directory (OPTUNE_OUTBOX_DIR=...).
        outbox = Outbox(cfg.report.outbox_dir) if "OPTUNE_OUTBOX_DIR" in env else None
        r = run_in_thread(cfg, emu.api_client(), outbox=outbox)
        running.append(r)
        assert r.synced(), "servo never listed pods"
        return r

    yield start
    for r in running:
        if r.thread.is_alive():
            r.stop()


def run_job(emu: KubeEmulator, pod: dict[str, Any], *, exit_code: int = 0) -> dict[str, Any]:
    """Create a job pod and take it through Pending -> Running -> terminated, as kubelet does."""
    created = emu.create_pod(pod)
    ns, name = created["metadata"]["namespace"], created["metadata"]["name"]
    emu.update_pod(ns, name, set_running)
    emu.update_pod(
        ns,
        name,
        lambda p: set_terminated(
            p, exit_code=exit_code, reason="Completed" if exit_code == 0 else "Error"
        ),
    )
    return created


def measurements(backend: RecordingBackend) -> list[Any]:
    return backend.events("MEASUREMENT")


def wait_measured(backend: RecordingBackend, count: int, timeout_s: float = 15) -> list[Any]:
    assert backend.wait_for(lambda: len(measurements(backend)) >= count, timeout_s), (
        f"expected {count} measurements, got {len(measurements(backend))}"
    )
    return measurements(backend)
