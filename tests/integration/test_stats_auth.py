"""Stats only from the pod's own monitor, over real HTTP against the real servo loop.

The monitor's credential is its projected service-account token (audience servo-stats),
checked by a TokenReview against the emulator and matched to the pod by the token's pod
claims. The termination message always wins over a POST; a POST sent before the job container
ended never decides the figures. None of the forged stats here may reach the backend.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.fakes.backend import RecordingBackend
from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.harness import RunningServo, wait_measured
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

FORGED = {**STATS, "cpu_time": 0.001, "max_memory": 1}


def body(pod: dict[str, Any], stats: dict[str, Any]) -> dict[str, Any]:
    return {"id": pod["metadata"]["uid"], "stats": stats}


def later(seconds: float) -> str:
    """An API timestamp `seconds` from now (the job ends after what the test did so far)."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def tracked(servo: RunningServo, pod: dict[str, Any]) -> bool:
    return servo.servo.scopes[0].tracker.job(pod["metadata"]["uid"]) is not None


def test_a_forged_early_post_never_decides_the_figures(
    emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    servo = start_servo(OPTUNE_STATS_WAIT="0.5")
    # The job container shares the pod's IP: an address says nothing about who sent it.
    pod = start_job(emu, monitored_job("early", pod_ip="127.0.0.1"))
    assert emu.wait_for(lambda: tracked(servo, pod), 5)
    assert post(servo, body(pod, FORGED), token=None).status_code == 403
    # Even with the monitor's own token, stats sent while the job runs are only held...
    r = post(servo, body(pod, FORGED), token=token_for(emu, pod))
    assert r.status_code == 202 and r.json() == {"result": "held"}
    # ...and dropped once the job's finishedAt shows they came before its end.
    finish_job(emu, "early", finished=later(30))
    [m] = wait_measured(backend, 1)
    assert "cpu_time" not in m.param["metrics"] and "max_memory" not in m.param["metrics"]
    assert m.param["annotations"]["stats"].startswith("none: no stats from the monitor")


def test_a_post_after_the_job_ended_with_its_finished_at_still_to_come_is_refused(
    emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    servo = start_servo(OPTUNE_STATS_WAIT="0.5")
    pod = start_job(emu, monitored_job("clock"))
    finish_job(emu, "clock", finished=later(30))
    assert emu.wait_for(lambda: awaiting(servo), 5)
    r = post(servo, body(pod, FORGED), token=token_for(emu, pod))
    assert r.status_code == 409 and "error" in r.json()
    [m] = wait_measured(backend, 1)
    assert "cpu_time" not in m.param["metrics"]


def test_another_pods_credential_is_refused(
    emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    servo = start_servo(OPTUNE_STATS_WAIT="20")
    victim = start_job(emu, monitored_job("victim"))
    other = start_job(emu, monitored_job("other"))
    finish_job(emu, "victim")
    assert emu.wait_for(lambda: awaiting(servo), 5)
    r = post(servo, body(victim, FORGED), token=token_for(emu, other))
    assert r.status_code == 403 and r.json() == {"error": "the token was not issued for this pod"}
    emu.update_pod("default", "victim", lambda p: end_monitor(p, json.dumps(STATS)))
    [m] = wait_measured(backend, 1)
    assert m.param["metrics"]["cpu_time"]["value"] == STATS["cpu_time"]


def test_tokens_for_another_audience_expired_or_unreviewable_are_refused(
    emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    servo = start_servo(OPTUNE_STATS_WAIT="20")
    pod = ended_job(emu, servo, "picky")
    # A token the pod holds for something else (the API server's own audience, say).
    r = post(servo, body(pod, FORGED), token=token_for(emu, pod, audience="https://kubernetes"))
    assert r.status_code == 403 and "audience" in r.json()["error"]
    expired = token_for(emu, pod)
    emu.tokens.expire(expired)
    r = post(servo, body(pod, FORGED), token=expired)
    assert r.status_code == 403 and "expired" in r.json()["error"]
    # The servo may not review tokens (RBAC): nothing is believed, the monitor may retry.
    emu.deny("create", None, resource="tokenreviews")
    r = post(servo, body(pod, FORGED), token=token_for(emu, pod))
    assert r.status_code == 503 and "error" in r.json()
    emu.update_pod("default", "picky", lambda p: end_monitor(p, json.dumps(STATS)))
    [m] = wait_measured(backend, 1)
    assert m.param["metrics"]["cpu_time"]["value"] == STATS["cpu_time"]
    assert m.param["annotations"]["stats_channel"] == "termination-message"


def test_the_termination_message_wins_over_an_earlier_post_and_a_replay_changes_nothing(
    emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    servo = start_servo(OPTUNE_STATS_WAIT="20")
    pod = ended_job(emu, servo, "winner")
    token = token_for(emu, pod)
    assert post(servo, body(pod, FORGED), token=token).status_code == 202
    emu.update_pod("default", "winner", lambda p: end_monitor(p, json.dumps(STATS)))
    [m] = wait_measured(backend, 1)
    assert m.param["metrics"]["cpu_time"]["value"] == STATS["cpu_time"]
    assert m.param["metrics"]["max_memory"]["value"] == STATS["max_memory"]
    assert m.param["annotations"]["stats_channel"] == "termination-message"
    # The same POST again (replayed by whoever saw it): the pod is measured, nothing moves.
    r = post(servo, body(pod, FORGED), token=token)
    assert r.status_code == 200 and r.json() == {"result": "already measured"}
    servo.stop()
    assert len(backend.events("MEASUREMENT")) == 1


def test_a_held_post_decides_when_the_wait_runs_out(
    emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    servo = start_servo(OPTUNE_STATS_WAIT="1")
    pod = ended_job(emu, servo, "late")
    assert post(servo, body(pod, STATS), token=token_for(emu, pod)).status_code == 202
    [m] = wait_measured(backend, 1)
    assert m.param["metrics"]["cpu_time"]["value"] == STATS["cpu_time"]
    assert m.param["annotations"]["stats_channel"] == "post"


def test_a_held_post_decides_when_the_monitors_message_is_unusable(
    emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    servo = start_servo(OPTUNE_STATS_WAIT="20")
    pod = ended_job(emu, servo, "garbled")
    assert post(servo, body(pod, STATS), token=token_for(emu, pod)).status_code == 202
    emu.update_pod("default", "garbled", lambda p: end_monitor(p, "Error: killed"))
    [m] = wait_measured(backend, 1)
    ann = m.param["annotations"]
    assert ann["stats_channel"] == "post" and ann["termination_message"].startswith("unusable")
