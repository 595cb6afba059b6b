"""The webhook's review and patch over real HTTPS: what it injects into a job pod (the patched pod
validated against the Kubernetes schemas), what it leaves alone, and how it answers reviews it
cannot use."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import jsonpatch
import kubernetes_validate
import pytest
import requests

from tests.support.fakes.backend import RecordingBackend
from tests.support.webhookkit import (
    NEW,
    NEWEST,
    OLD,
    Hook,
    admission_pod,
    containers_by_name,
    review,
    validate,
)

# -- injection ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", [NEW, NEWEST])
def test_job_pod_gets_a_native_sidecar_monitor_that_validates(
    start_hook: Callable[..., Hook], backend: RecordingBackend, version: str
) -> None:
    hook = start_hook(url=backend.url_template(), native=True)
    pod = admission_pod()
    _, ops = hook.admit(pod)
    out = jsonpatch.apply_patch(copy.deepcopy(pod), ops)

    validate(out, version)
    monitor = containers_by_name(out, "initContainers")["servo-monitor"]
    assert monitor["restartPolicy"] == "Always" and monitor["image"] == "mon:test"
    # Its credential is a projected token for the servo's audience, in no env value.
    assert "OPTUNE_STATS_TOKEN" not in {e["name"] for e in monitor["env"]}
    mounted = {m["name"]: m["mountPath"] for m in monitor["volumeMounts"]}
    token_volume = next(n for n, path in mounted.items() if path == "/var/run/secrets/servo")
    [projected] = [v["projected"] for v in out["spec"]["volumes"] if v["name"] == token_volume]
    assert projected["sources"][0]["serviceAccountToken"]["audience"] == "servo-stats"
    assert out["spec"]["containers"] == pod["spec"]["containers"]  # MEASURE: nothing else
    hook.admit(admission_pod())
    assert [r.event for r in backend.accepted] == ["WHATS_NEXT", "WHATS_NEXT"]
    assert backend.accepted[0].path == "/accounts/acme/applications/JOB-1/servo"


@pytest.mark.parametrize("version", [OLD, NEW])
def test_plain_monitor_for_old_clusters_validates(
    start_hook: Callable[..., Hook], backend: RecordingBackend, version: str
) -> None:
    hook = start_hook(url=backend.url_template(), native=False)
    pod = admission_pod()
    _, ops = hook.admit(pod)
    out = jsonpatch.apply_patch(copy.deepcopy(pod), ops)

    validate(out, version)
    assert "initContainers" not in out["spec"]
    assert list(containers_by_name(out, "containers"))[-1] == "servo-monitor"


def test_validation_is_strict_enough_to_catch_a_bad_patch() -> None:
    pod = admission_pod()
    pod["spec"]["containers"][0]["restartPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(pod, NEW)


def test_a_pod_with_the_monitor_is_not_injected_twice(
    start_hook: Callable[..., Hook], backend: RecordingBackend
) -> None:
    hook = start_hook(url=backend.url_template())
    pod = admission_pod()
    _, ops = hook.admit(pod)
    once = jsonpatch.apply_patch(copy.deepcopy(pod), ops)
    _, ops_again = hook.admit(once)

    assert ops and ops_again == []


def test_guard_finalizer_is_added_once_when_the_guard_is_on(
    start_hook: Callable[..., Hook], backend: RecordingBackend
) -> None:
    hook = start_hook(url=backend.url_template(), OPTUNE_FINALIZER_GUARD="true")
    pod = admission_pod()
    pod["metadata"]["finalizers"] = ["example.com/keep"]
    _, ops = hook.admit(pod)
    once = jsonpatch.apply_patch(copy.deepcopy(pod), ops)
    assert once["metadata"]["finalizers"] == ["example.com/keep", "servo.optune.io/measure"]
    validate(once, NEW)
    _, ops_again = hook.admit(once)
    assert ops_again == []
    bare = admission_pod()
    bare["metadata"].pop("finalizers", None)
    _, ops = hook.admit(bare)
    patched = jsonpatch.apply_patch(copy.deepcopy(bare), ops)
    assert patched["metadata"]["finalizers"] == ["servo.optune.io/measure"]
    off = start_hook(url=backend.url_template())
    _, ops = off.admit(admission_pod())
    assert not any(op["path"].startswith("/metadata/finalizers") for op in ops)


@pytest.mark.parametrize(
    ("pod", "namespace", "operation"),
    [
        (admission_pod(jobid=None), "default", "CREATE"),  # not a job
        (admission_pod(), "kube-system", "CREATE"),  # namespace not watched
        (admission_pod(), "default", "UPDATE"),
        (admission_pod(), "default", "DELETE"),
    ],
    ids=["non-job", "unwatched-namespace", "update", "delete"],
)
def test_no_patch_and_no_backend_call(
    start_hook: Callable[..., Hook],
    backend: RecordingBackend,
    pod: dict[str, Any],
    namespace: str,
    operation: str,
) -> None:
    hook = start_hook(url=backend.url_template())
    answer, ops = hook.admit(pod, namespace=namespace, operation=operation)

    assert ops == [] and "patch" not in answer["response"]
    assert "patchType" not in answer["response"]
    assert backend.received == []


def test_all_namespaces_watched_with_star(
    start_hook: Callable[..., Hook], backend: RecordingBackend
) -> None:
    hook = start_hook(url=backend.url_template(), POD_NAMESPACES="*")
    _, ops = hook.admit(admission_pod(), namespace="anything")

    assert ops


def test_dry_run_injects_but_asks_the_backend_nothing(
    start_hook: Callable[..., Hook], backend: RecordingBackend
) -> None:
    hook = start_hook(url=backend.url_template())
    _, ops = hook.admit(admission_pod(), dry_run=True)

    assert ops and backend.received == []


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"kind": "AdmissionReview"}', b'{"request": 3}', b"\xff"]
)
def test_a_body_that_is_no_review_at_all_is_a_400(
    start_hook: Callable[..., Hook], body: bytes
) -> None:
    hook = start_hook(exchange=False)
    resp = requests.post(hook.url, data=body, verify=str(hook.ca), timeout=10)

    assert resp.status_code == 400 and "error" in resp.json()


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "AdmissionReview", "request": {}},
        {"kind": "AdmissionReview", "request": {"uid": 7}},
    ],
)
def test_malformed_review_is_allowed_with_a_warning(
    start_hook: Callable[..., Hook], body: dict[str, Any]
) -> None:
    answer = start_hook(exchange=False).post(body)

    assert answer["kind"] == "AdmissionReview"
    assert answer["response"]["allowed"] is True and answer["response"]["uid"] == ""
    assert answer["response"]["warnings"] and "patch" not in answer["response"]


def test_review_without_an_object_echoes_its_uid(start_hook: Callable[..., Hook]) -> None:
    body = review(admission_pod())
    body["request"]["object"] = None
    answer = start_hook(exchange=False).post(body)

    assert answer["response"] == {"uid": body["request"]["uid"], "allowed": True}


@pytest.mark.parametrize("depth", [2_000, 100_000])
def test_deeply_nested_review_is_answered_with_its_uid_and_a_warning(
    start_hook: Callable[..., Hook], depth: int
) -> None:
    pod = admission_pod()
    pod["spec"]["containers"][0]["deep"] = "DEEP"
    body = review(pod)
    raw = json.dumps(body).replace('"DEEP"', "[" * depth + "]" * depth).encode()
    answer = start_hook(exchange=False).post(raw)

    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    assert answer["response"]["uid"] == body["request"]["uid"]
    assert answer["response"]["allowed"] is True and "patch" not in answer["response"]
    assert "too deeply" in answer["response"]["warnings"][0]
