"""The servo's side of the monitor, over real HTTP: the stats receiver and the stats wait.

A monitored job pod (a `servo-monitor` container) runs in the API emulator; stats arrive as the
monitor's termination message or by POST to the servo's receiver with the monitor's projected
service-account token (minted by the emulator), and the backend must get one MEASUREMENT
carrying them. Who may POST, and when a POST counts, is tests/integration/test_stats_auth.py;
the monitored job and the monitor's side are tests/support/statskit.py.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import requests

from tests.support.fakes.backend import RecordingBackend
from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.harness import wait_measured
from tests.support.statskit import (
    STATS,
    awaiting,
    end_monitor,
    ended_job,
    finish_job,
    monitored_job,
    post,
    start_job,
    token_for,
)


def test_posted_stats_are_held_and_used_when_the_monitor_leaves_no_message(
    emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    servo = start_servo(OPTUNE_STATS_WAIT="20")
    pod = ended_job(emu, servo, "posted")
    token = token_for(emu, pod)
    r = post(servo, {"id": pod["metadata"]["uid"], "stats": STATS}, token=token)
    assert r.status_code == 202 and r.json() == {"result": "held"}
    assert backend.events("MEASUREMENT") == []  # the termination message may still come
    emu.update_pod("default", "posted", lambda p: end_monitor(p, ""))
    [m] = wait_measured(backend, 1)
    metrics = m.param["metrics"]
    assert metrics["cpu_time"] == {"value": 3.25, "unit": "s"}
    assert metrics["max_memory"] == {"value": 104_857_600, "unit": "bytes"}
    assert metrics["pod_cpu_time"]["value"] == 3.4 and metrics["memory_anon"]["value"] > 0
    ann = m.param["annotations"]
    assert ann["stats_channel"] == "post" and ann["cgroup"] == "v1"
    assert json.loads(ann["stats_missing"]) == STATS["missing"]
    # A second delivery (the monitor retried) changes nothing.
    r = post(servo, {"id": pod["metadata"]["uid"], "stats": STATS}, token=token)
    assert r.status_code == 200 and r.json() == {"result": "already measured"}
    servo.stop()
    assert len(backend.events("MEASUREMENT")) == 1


def test_termination_message_carries_the_stats(
    emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    start_servo(OPTUNE_STATS_WAIT="20")
    start_job(emu, monitored_job("msg"))
    finish_job(emu, "msg", monitor_message=json.dumps(STATS))
    [m] = wait_measured(backend, 1)
    assert m.param["metrics"]["cpu_time"]["value"] == 3.25
    assert m.param["annotations"]["stats_channel"] == "termination-message"


def test_no_stats_in_time_means_a_measurement_without_them(
    emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    start_servo(OPTUNE_STATS_WAIT="0.5")
    start_job(emu, monitored_job("silent"))
    finish_job(emu, "silent")
    [m] = wait_measured(backend, 1, timeout_s=10)
    assert "cpu_time" not in m.param["metrics"] and "duration" in m.param["metrics"]
    assert m.param["annotations"]["stats"] == "none: no stats from the monitor within 0.5 s"


@pytest.mark.parametrize(
    ("make", "status"),
    [
        (lambda uid: post_args({"id": uid, "stats": STATS}, token="wrong"), 403),
        (lambda uid: post_args({"id": uid, "stats": STATS}, token=None), 403),
        (lambda uid: post_args({"id": uid, "stats": {**STATS, "v": 9}}), 400),
        (lambda uid: post_args(b"[" * 8000 + b"]" * 8000), 400),
        (lambda uid: post_args({"id": "0000-unknown", "stats": STATS}), 404),
        (lambda uid: post_args(b"{not json"), 400),
        (lambda uid: post_args({"id": uid, "stats": {**STATS, "cpu_time": "lots"}}), 400),
        (lambda uid: post_args({"id": uid, "stats": STATS}, content_type="text/plain"), 415),
        (lambda uid: post_args(b"x" * 20_000), 413),
    ],
    ids=[
        "wrong-token",
        "no-token",
        "unknown-version",
        "deep-json",
        "unknown-uid",
        "not-json",
        "bad-field",
        "not-json-type",
        "oversized",
    ],
)
def test_forged_or_broken_stats_are_refused(
    emu: KubeEmulator, backend: RecordingBackend, start_servo: Any, make: Any, status: int
) -> None:
    servo = start_servo(OPTUNE_STATS_WAIT="20")
    pod = ended_job(emu, servo, "victim", pod_ip="127.0.0.1")
    uid = pod["metadata"]["uid"]
    args = make(uid)
    args.setdefault("token", token_for(emu, pod))
    r = post(servo, args.pop("body"), **args)
    assert r.status_code == status
    assert "error" in r.json()
    # Refused stats never complete a measurement; the job still waits for real ones.
    assert uid in servo.servo.scopes[0].tracker.awaiting
    emu.update_pod("default", "victim", lambda p: end_monitor(p, json.dumps(STATS)))
    [m] = wait_measured(backend, 1)
    assert m.param["metrics"]["cpu_time"]["value"] == 3.25


def post_args(body: Any, **kw: Any) -> dict[str, Any]:
    return {"body": body, **kw}


def test_receiver_answers_get_and_unknown_paths(start_servo: Any) -> None:
    servo = start_servo()
    receiver = servo.servo.receiver
    assert receiver is not None
    base = f"http://127.0.0.1:{receiver.port}"
    assert requests.get(base + "/", timeout=5).status_code == 405
    assert requests.post(base + "/nope", json={}, timeout=5).status_code == 404


def test_shutdown_sends_waiting_jobs_without_stats_rather_than_lose_them(
    emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    servo = start_servo(OPTUNE_STATS_WAIT="600")
    start_job(emu, monitored_job("at-stop"))
    finish_job(emu, "at-stop")
    assert emu.wait_for(lambda: awaiting(servo), 5)
    servo.stop()
    [m] = backend.events("MEASUREMENT")
    assert m.param["annotations"]["stats"] == (
        "none: the servo stopped before the monitor's stats came"
    )
    assert backend.accepted[-1].event == "GOODBYE"


def test_tokens_never_reach_the_logs(
    emu: KubeEmulator,
    backend: RecordingBackend,
    start_servo: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    servo = start_servo(OPTUNE_STATS_WAIT="20", OPTUNE_DEBUG="2")
    pod = ended_job(emu, servo, "secretive")
    uid, token = pod["metadata"]["uid"], token_for(emu, pod)
    assert post(servo, {"id": uid, "stats": STATS}, token="forged-" + token).status_code == 403
    assert post(servo, {"id": uid, "stats": STATS}, token=token).status_code == 202
    emu.update_pod("default", "secretive", lambda p: end_monitor(p, ""))
    wait_measured(backend, 1)
    servo.stop()
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert logged and "backend-t0ken" not in logged and token not in logged
