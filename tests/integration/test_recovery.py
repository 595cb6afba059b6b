"""Nothing lost, nothing doubled, with the servo in a thread: the outbox through a backend
outage and across restarts, the reported annotation, and the finalizer guard."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from servo.core.models import Event
from servo.core.pods import GUARD_FINALIZER, REPORTED_ANNOTATION
from servo.report.outbox import Outbox
from tests.support.fakes.backend import RecordingBackend
from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.harness import measurements, run_job, wait_measured
from tests.support.helpers import job_pod, pending_ids, set_running, set_terminated

FAST = {
    "OPTUNE_SEND_DEADLINE": "0.3",
    "OPTUNE_SEND_MAX_BACKOFF": "0.1",
    "POD_NAMESPACES": "default",
}


def outbox_env(tmp_path: Path) -> dict[str, str]:
    return {**FAST, "OPTUNE_OUTBOX_DIR": str(tmp_path / "outbox")}


def uids(backend: RecordingBackend) -> list[str]:
    return [m.param["annotations"]["uid"] for m in measurements(backend)]


def test_outage_longer_than_the_retries_postpones_then_delivers_once(
    tmp_path: Path, emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    servo = start_servo(**outbox_env(tmp_path))
    assert backend.wait_for(lambda: bool(backend.events("HELLO")))
    backend.fail_next(20, 503)  # several retry series' worth
    pod = run_job(emu, job_pod("slow-backend", jobid="S"))
    wait_measured(backend, 1, timeout_s=30)
    reporter = servo.servo.reporter
    assert emu.wait_for(lambda: reporter.counts.sent >= 2)  # HELLO and the MEASUREMENT
    assert reporter.counts.postponed >= 1
    assert uids(backend) == [pod["metadata"]["uid"]]
    assert emu.wait_for(lambda: reporter.outbox is not None and reporter.outbox.depth() == 0)
    servo.stop()


def test_a_pod_delivered_but_not_annotated_before_a_crash_is_annotated_not_resent(
    tmp_path: Path, emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    # The run before sent the MEASUREMENT (its tombstone is in the outbox) and died before the
    # pod's reported annotation: the next start marks the pod, and sends nothing again.
    pod = run_job(emu, job_pod("crashed-before-mark", jobid="C"))
    event_id = f"{pod['metadata']['uid']}:MEASUREMENT"
    box = Outbox(tmp_path / "outbox")
    assert box.put(
        Event(
            event_id,
            "MEASUREMENT",
            "C",
            {"annotations": {"namespace": "default", "pod": "crashed-before-mark"}},
        ),
        time.time() - 5,
    )
    box.delivered(event_id, time.time() - 4)
    box.close()
    servo = start_servo(**outbox_env(tmp_path))

    def annotations() -> dict[str, str]:
        meta = (emu.get_pod("default", "crashed-before-mark") or {}).get("metadata", {})
        return dict(meta.get("annotations") or {})

    assert emu.wait_for(lambda: REPORTED_ANNOTATION in annotations())
    assert annotations()[REPORTED_ANNOTATION] == event_id
    servo.stop()
    assert measurements(backend) == []


def test_delivered_pod_is_annotated_and_a_restart_skips_it(
    tmp_path: Path, emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    first = start_servo(**outbox_env(tmp_path))
    a = run_job(emu, job_pod("job-a", jobid="A"))
    [m] = wait_measured(backend, 1)

    def annotations() -> dict[str, str]:
        return dict(
            (emu.get_pod("default", "job-a") or {}).get("metadata", {}).get("annotations") or {}
        )

    assert emu.wait_for(lambda: REPORTED_ANNOTATION in annotations())
    assert annotations()[REPORTED_ANNOTATION] == m.event_id
    first.stop()
    # While no servo runs, job B finishes.
    b = run_job(emu, job_pod("job-b", jobid="B"))
    second = start_servo(**outbox_env(tmp_path))
    wait_measured(backend, 2)
    second.stop()
    assert sorted(uids(backend)) == sorted([a["metadata"]["uid"], b["metadata"]["uid"]])


def test_events_left_in_the_outbox_are_sent_by_the_next_start(
    tmp_path: Path, emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    first = start_servo(**outbox_env(tmp_path))
    assert backend.wait_for(lambda: bool(backend.events("HELLO")))
    backend.fail_next(10_000, 503)  # down
    pod = run_job(emu, job_pod("stranded", jobid="X"))
    box = first.servo.reporter.outbox
    assert emu.wait_for(
        lambda: box is not None and any(":MEASUREMENT" in i for i in pending_ids(box))
    )
    first.stop()
    left = pending_ids(Outbox(tmp_path / "outbox"))
    assert f"{pod['metadata']['uid']}:MEASUREMENT" in left
    backend.fail_next(0)  # up again
    backend.clear()
    second = start_servo(**outbox_env(tmp_path))
    wait_measured(backend, 1)
    second.stop()
    assert uids(backend) == [pod["metadata"]["uid"]]
    assert pending_ids(Outbox(tmp_path / "outbox")) == set()


def guarded_job(name: str) -> dict[str, Any]:
    pod = job_pod(name, jobid=name.upper())
    pod["metadata"]["finalizers"] = ["batch.kubernetes.io/job-tracking", GUARD_FINALIZER]
    return pod


def finalizers(emu: KubeEmulator, name: str) -> list[str] | None:
    pod = emu.get_pod("default", name)
    return None if pod is None else list(pod["metadata"].get("finalizers") or [])


def test_guard_finalizer_is_removed_once_measured_and_others_kept(
    tmp_path: Path, emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    start_servo(**outbox_env(tmp_path), OPTUNE_FINALIZER_GUARD="true")
    run_job(emu, guarded_job("guarded"))
    wait_measured(backend, 1)
    assert emu.wait_for(lambda: finalizers(emu, "guarded") == ["batch.kubernetes.io/job-tracking"])


def test_guarded_pod_deleted_before_it_ran_is_measured_then_released(
    tmp_path: Path, emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    start_servo(**outbox_env(tmp_path), OPTUNE_FINALIZER_GUARD="true")
    emu.create_pod(guarded_job("early-delete"))
    emu.delete_pod("default", "early-delete")  # stays: finalizers
    [m] = wait_measured(backend, 1)
    assert m.param["message"] == "job deleted before it ran"
    assert emu.wait_for(
        lambda: finalizers(emu, "early-delete") == ["batch.kubernetes.io/job-tracking"]
    )


def test_guard_while_the_servo_was_down_keeps_the_pod_until_measured(
    tmp_path: Path, emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    # Finished and deleted while no servo ran: only the finalizer keeps it for measuring.
    pod = run_job(emu, guarded_job("offline"))
    emu.delete_pod("default", "offline", finalize=False)
    emu.update_pod(
        "default", "offline", lambda p: p["metadata"].update(finalizers=[GUARD_FINALIZER])
    )  # the Job controller let go of its own
    start_servo(**outbox_env(tmp_path), OPTUNE_FINALIZER_GUARD="true")
    [m] = wait_measured(backend, 1)
    assert m.param["annotations"]["uid"] == pod["metadata"]["uid"]
    assert m.param["metrics"]["duration"]["value"] == 5722
    assert emu.wait_for(lambda: emu.get_pod("default", "offline") is None)


def test_safety_valve_releases_a_pod_stuck_in_deletion(
    tmp_path: Path, emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    start_servo(**outbox_env(tmp_path), OPTUNE_FINALIZER_GUARD="true", OPTUNE_FINALIZER_MAX_AGE="1")
    emu.create_pod(guarded_job("stuck"))
    emu.update_pod("default", "stuck", set_running)
    emu.delete_pod("default", "stuck")  # running, and the kubelet never reports its end
    assert emu.wait_for(lambda: GUARD_FINALIZER not in (finalizers(emu, "stuck") or []), 10)
    emu.update_pod("default", "stuck", set_terminated)  # the end comes after all
    wait_measured(backend, 1)
