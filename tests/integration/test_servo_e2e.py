"""End to end: the real servo loop against the Kubernetes API emulator and a recording backend.

The servo talks to the emulator through the official kubernetes client over HTTP and reports
to a real HTTP server; tests assert on what the backend received.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from servo.run.app import Servo
from servo.system.config import load_config
from tests.support.fakes.backend import RecordingBackend
from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.harness import (
    LOCAL_RECEIVER,
    TOKEN,
    measurements,
    run_job,
    wait_measured,
)
from tests.support.helpers import job_pod


def test_finished_job_gives_exactly_one_measurement(
    emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    servo = start_servo()
    pod = run_job(emu, job_pod("train-1", jobid="JOB-42"), exit_code=3)
    [m] = wait_measured(backend, 1)
    assert m.path == "/accounts/acme/applications/JOB-42/servo"
    assert m.headers["Authorization"] == f"Bearer {TOKEN}"
    assert m.event_id == f"{pod['metadata']['uid']}:MEASUREMENT"
    metrics, ann = m.param["metrics"], m.param["annotations"]
    assert metrics["duration"] == {"value": 5722, "unit": "s"}
    assert metrics["perf"]["value"] == pytest.approx(1 / 5722)
    assert ann["exitcode"] == "3" and ann["reason"] == "Error"
    assert ann["namespace"] == "default" and ann["pod"] == "train-1"
    assert ann["uid"] == pod["metadata"]["uid"]
    # More events for the same pod (status churn, deletion) change nothing.
    emu.update_pod(
        "default", "train-1", lambda p: p["metadata"].setdefault("labels", {}).update(touched="yes")
    )
    emu.delete_pod("default", "train-1")
    servo.stop()
    assert len(measurements(backend)) == 1
    assert [r.event for r in backend.accepted][0] == "HELLO"
    assert backend.accepted[-1].event == "GOODBYE"
    assert backend.accepted[-1].param == {"account": "acme", "reason": "exit"}


def test_non_job_pods_and_other_namespaces_give_nothing(
    emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    servo = start_servo()
    run_job(emu, job_pod("plain", jobid=None))
    run_job(emu, job_pod("elsewhere", namespace="kube-system", jobid="JOB-X"))
    run_job(emu, job_pod("marker", namespace="batch", jobid="JOB-M"))
    [m] = wait_measured(backend, 1)
    assert m.param["annotations"]["pod"] == "marker"
    servo.stop()
    assert len(measurements(backend)) == 1


def test_all_namespaces_with_star(
    emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    servo = start_servo(POD_NAMESPACES="*")
    run_job(emu, job_pod("a", namespace="team-a", jobid="A"))
    run_job(emu, job_pod("b", namespace="team-b", jobid="B"))
    got = wait_measured(backend, 2)
    assert sorted(m.param["annotations"]["namespace"] for m in got) == ["team-a", "team-b"]
    assert any(
        r.path == "/api/v1/pods" and r.query.get("watch") in ("true", "1", "True")
        for r in emu.requests
    )
    servo.stop()


def test_an_app_id_path_outside_the_typed_fields_reads_the_whole_pod(
    emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    # The typed decode keeps no affinity: the servo must decode every pod whole for this path.
    run_job(emu, with_affinity(job_pod("listed", jobid=None), "TEAM-L"))
    servo = start_servo(OPTUNE_APP_ID="spec/affinity/nodeAffinity/team")
    run_job(emu, with_affinity(job_pod("watched", jobid=None), "TEAM-W"))
    run_job(emu, job_pod("no-affinity", jobid="JOB-N"))
    got = wait_measured(backend, 2)
    assert sorted(m.path.split("/")[4] for m in got) == ["TEAM-L", "TEAM-W"]
    servo.stop()
    assert len(measurements(backend)) == 2


def with_affinity(pod: dict[str, Any], team: str) -> dict[str, Any]:
    pod["spec"]["affinity"] = {"nodeAffinity": {"team": team}}
    return pod


def test_a_pod_with_an_odd_field_is_still_measured(
    emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    # Not what an API server sends, but a proxy or a hand-made object might: the field is
    # dropped, the event is not (refusing it would replay it forever).
    pod = job_pod("odd", jobid="JOB-O")
    pod["metadata"]["labels"] = {"count": 3}
    servo = start_servo()
    run_job(emu, pod, exit_code=0)
    [m] = wait_measured(backend, 1)
    assert m.path.endswith("/JOB-O/servo") and m.param["metrics"]["duration"]["value"] == 5722
    servo.stop()


def test_job_finished_before_the_servo_started_is_measured(
    emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    run_job(emu, job_pod("early", jobid="E"))
    start_servo()
    [m] = wait_measured(backend, 1)
    assert m.param["annotations"]["pod"] == "early"


def test_watch_uses_list_version_and_bookmarks(
    emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    emu.create_pod(job_pod("x", jobid="X"))
    listed_rv = emu.resource_version
    start_servo(POD_NAMESPACES="default")
    assert emu.wait_for(lambda: any(r.query.get("watch") for r in emu.requests))
    watch = next(r for r in emu.requests if r.query.get("watch"))
    assert watch.query["resourceVersion"] == listed_rv
    assert watch.query["allowWatchBookmarks"] in ("true", "True")
    assert int(watch.query["timeoutSeconds"]) == 2
    # After a timeoutSeconds end the servo re-watches from a bookmark or event version, not 0.
    assert emu.wait_for(lambda: sum(1 for r in emu.requests if r.query.get("watch")) >= 2, 10)
    rewatches = [r for r in emu.requests if r.query.get("watch")][1:]
    assert all(int(r.query["resourceVersion"]) >= int(listed_rv) for r in rewatches)
    lists = [
        r
        for r in emu.requests
        if r.method == "GET" and not r.query.get("watch") and r.path.endswith("/pods")
    ]
    assert len(lists) == 1, "a normal end of stream must not relist"


@pytest.mark.parametrize(
    "fault", ["drop", "drop_after", "expire", "expire_http", "split", "errors"]
)
def test_faults_still_give_exactly_one_measurement_per_job(
    emu: KubeEmulator, backend: RecordingBackend, start_servo: Any, fault: str
) -> None:
    servo = start_servo(POD_NAMESPACES="default")
    jobs = 6
    for i in range(jobs):
        if i == 2:
            if fault == "drop":
                emu.drop_watches()
            elif fault == "drop_after":
                emu.drop_watch_after(1)
                emu.drop_watches()
            elif fault == "expire":
                emu.compact()
                emu.expire_next_watch()
                emu.drop_watches()
            elif fault == "expire_http":
                emu.expire_next_watch(as_http=True)
                emu.drop_watches()
            elif fault == "split":
                emu.split_chunks = True
            elif fault == "errors":
                emu.fail_next(3, 500)
                emu.drop_watches()
        run_job(emu, job_pod(f"job-{i}", jobid=f"J{i}"))
    got = wait_measured(backend, jobs)
    servo.stop()
    pods = sorted(m.param["annotations"]["pod"] for m in measurements(backend))
    assert pods == sorted(f"job-{i}" for i in range(jobs))
    if fault.startswith("expire"):
        assert servo.servo.scopes[0].watch.stats.expired >= 1
        assert servo.servo.scopes[0].watch.stats.lists >= 2
    assert len(got) == jobs


def test_pod_deleted_before_it_ran(
    emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    start_servo()
    emu.create_pod(job_pod("never", jobid="N"))
    assert emu.wait_for(lambda: any(r.query.get("watch") for r in emu.requests))
    emu.delete_pod("default", "never", finalize=True)
    [m] = wait_measured(backend, 1)
    assert m.param["status"] == "failed"
    assert m.param["message"] == "job deleted before it ran"


def test_backend_503_twice_then_200_is_delivered_once(
    emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    start_servo()
    assert backend.wait_for(lambda: bool(backend.events("HELLO")))
    backend.fail_next(2, 503)
    run_job(emu, job_pod("retry", jobid="R"))
    wait_measured(backend, 1)
    tries = [r for r in backend.received if r.event == "MEASUREMENT"]
    assert len(tries) == 3 and len(measurements(backend)) == 1


def test_no_token_means_no_authorization_header(
    emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    start_servo(OPTUNE_AUTH_TOKEN="")
    run_job(emu, job_pod("anon", jobid="A"))
    [m] = wait_measured(backend, 1)
    assert all("Authorization" not in r.headers for r in backend.received)


def test_forbidden_namespace_is_logged_and_others_still_work(
    emu: KubeEmulator, backend: RecordingBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    emu.deny("list", "batch")
    cfg = load_config(
        {
            "OPTUNE_URL": backend.url_template(),
            "OPTUNE_ACCOUNT": "acme",
            "POD_NAMESPACES": "default,batch",
            "OPTUNE_WATCH_MAX_BACKOFF": "0.2",
            **LOCAL_RECEIVER,
        }
    )
    s = Servo(cfg, emu.api_client())
    stop = threading.Event()
    t = threading.Thread(target=s.run, args=(stop,), kwargs={"grace_s": 2}, daemon=True)
    t.start()
    try:
        run_job(emu, job_pod("ok", jobid="OK"))
        wait_measured(backend, 1)
        assert emu.wait_for(
            lambda: any(
                getattr(r, "status", None) == 403
                and getattr(r, "verb", None) == "list"
                and getattr(r, "namespace", None) == "batch"
                for r in caplog.records
            ),
            5,
        )
        [rec, *_] = [r for r in caplog.records if getattr(r, "status", None) == 403]
        assert rec.levelno == logging.ERROR and "RBAC" in rec.getMessage()
        assert "cannot list resource" in rec.__dict__["error"]
    finally:
        stop.set()
        t.join(timeout=30)


def test_unauthorized_is_logged(
    emu: KubeEmulator, backend: RecordingBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    cfg = load_config(
        {
            "OPTUNE_URL": backend.url_template(),
            "OPTUNE_ACCOUNT": "acme",
            "OPTUNE_WATCH_MAX_BACKOFF": "0.2",
            **LOCAL_RECEIVER,
        }
    )
    with KubeEmulator(token="right") as secured:
        s = Servo(cfg, secured.api_client(token="wrong"))
        stop = threading.Event()
        t = threading.Thread(target=s.run, args=(stop,), kwargs={"grace_s": 2}, daemon=True)
        t.start()
        try:
            assert secured.wait_for(
                lambda: any(getattr(r, "status", None) == 401 for r in caplog.records), 5
            )
            [rec, *_] = [r for r in caplog.records if getattr(r, "status", None) == 401]
            assert rec.levelno == logging.ERROR and "401" in rec.getMessage()
            assert rec.__dict__["namespace"] == "default"
        finally:
            stop.set()
            t.join(timeout=30)
