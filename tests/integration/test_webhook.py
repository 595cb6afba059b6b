"""The webhook over real HTTPS: AdmissionReviews as the API server sends them, patches applied with
jsonpatch to the original pod and validated against the Kubernetes schemas, the WHATS_NEXT
exchange against the bundled collector and the recording backend."""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import os
import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonpatch
import kubernetes_validate
import pytest
import requests

from servo.collector import Collector
from servo.config import load_config
from servo.mutate import MonitorSpec, Ranges
from servo.store import EventStore
from servo.tls import (
    CertPair,
    CertReloader,
    generate_ca,
    generate_serving_cert,
    server_context,
    write_pair,
)
from servo.webhook import (
    Admitter,
    Exchange,
    ReporterSender,
    decode_patch,
    load_webhook_config,
    use_native_sidecar,
)
from servo.webhook_cli import server_version
from servo.webhook_server import WebhookServer
from tests.fakes.backend import RecordingBackend
from tests.fakes.kubeapi import KubeEmulator
from tests.helpers import job_pod

# Oldest release the examples support, and the newest schema kubernetes-validate ships
# (1.33 is the release where native sidecars became stable).
OLD, NEW = "1.28.0", "1.33.0"
NEWEST = kubernetes_validate.utils.latest_version()
JOB_USER = {
    "username": "system:serviceaccount:kube-system:job-controller",
    "uid": "3e4d5b1a-8a51-4d64-b2c1-0f6f54d1f5a0",
    "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system",
               "system:authenticated"],
}  # fmt: skip
MEASURE = {"cmd": "MEASURE", "param": {}}


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    now = dt.datetime.now(dt.UTC)
    ca = generate_ca("test webhook CA", now=now)
    serving = generate_serving_cert(ca, ["localhost", "servo-webhook.servo.svc"], now=now,
                                    ip_addresses=["127.0.0.1"])  # fmt: skip
    d = tmp_path_factory.mktemp("tls")
    ca_crt, _ = write_pair(ca, d, "ca")
    crt, key = write_pair(serving, d, "tls")
    return {"ca": ca_crt, "cert": crt, "key": key}


def admission_pod(*, jobid: str | None = "JOB-1") -> dict[str, Any]:
    """A job pod as the Job controller creates it: generateName, no name, uid or node yet."""
    pod = job_pod(jobid=jobid)
    meta = pod["metadata"]
    for key in ("name", "uid"):
        meta.pop(key)
    meta["generateName"] = "train-job-000000-"
    pod["spec"].pop("nodeName", None)
    return pod


def review(pod: dict[str, Any], *, namespace: str = "default", operation: str = "CREATE",
           dry_run: bool = False) -> dict[str, Any]:  # fmt: skip
    gvk = {"group": "", "version": "v1", "kind": "Pod"}
    gvr = {"group": "", "version": "v1", "resource": "pods"}
    return {
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "namespace": namespace,
            "operation": operation,
            "userInfo": JOB_USER,
            "object": pod,
            "oldObject": None,
            "dryRun": dry_run,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        },
    }


class Hook:
    """A running webhook and a client that trusts only the test CA."""

    def __init__(self, server: WebhookServer, ca: Path) -> None:
        self.server, self.ca = server, ca
        self.url = f"https://localhost:{server.bound_port}/mutate?timeout=5s"

    def post(self, body: Any) -> dict[str, Any]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        resp = requests.post(self.url, data=data, verify=str(self.ca), timeout=10,
                             headers={"Content-Type": "application/json"})  # fmt: skip
        assert resp.status_code == 200, resp.text
        doc: dict[str, Any] = resp.json()
        return doc

    def admit(self, pod: dict[str, Any], **kw: Any) -> tuple[dict[str, Any], list[Any]]:
        """(answer, JSON Patch) for a review of `pod`; checks the answer's envelope."""
        body = review(pod, **kw)
        answer = self.post(body)
        assert answer["apiVersion"] == "admission.k8s.io/v1"
        assert answer["kind"] == "AdmissionReview"
        assert answer["response"]["uid"] == body["request"]["uid"]
        assert answer["response"]["allowed"] is True
        return answer, decode_patch(answer)


@pytest.fixture
def start_hook(tls: dict[str, Path]) -> Iterator[Callable[..., Hook]]:
    servers: list[WebhookServer] = []

    def start(*, url: str | None = None, native: bool = True, exchange: bool = True,
              budget_s: float = 2.0, **env: str) -> Hook:  # fmt: skip
        environ = {"POD_NAMESPACES": "default,batch", "OPTUNE_SLEEPER_IMG": "mon:test",
                   "OPTUNE_ACCOUNT": "acme", **env}  # fmt: skip
        if url is not None:
            environ["OPTUNE_URL"] = url
        cfg = load_config(environ)
        wcfg = load_webhook_config(environ)
        monitor = MonitorSpec(cfg.stats.monitor_container, cfg.sleeper_image, wcfg.stats_url,
                              native=native)  # fmt: skip
        ex = Exchange(ReporterSender(cfg.report), budget_s=budget_s, ranges=Ranges())
        admitter = Admitter(cfg, monitor=monitor, exchange=ex if exchange else None)
        server = WebhookServer(admitter, server_context(tls["cert"], tls["key"]),
                               bind="127.0.0.1", port=0).start()  # fmt: skip
        servers.append(server)
        return Hook(server, tls["ca"])

    yield start
    for s in servers:
        s.stop()


def validate(pod: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(pod, version, strict=True)


def containers_by_name(pod: dict[str, Any], key: str) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in pod["spec"].get(key, [])}


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
    token = {e["name"]: e for e in monitor["env"]}["OPTUNE_STATS_TOKEN"]["value"]
    assert len(token) >= 24
    assert out["spec"]["containers"] == pod["spec"]["containers"]  # MEASURE: nothing else
    # The stats token differs per pod.
    _, again = hook.admit(admission_pod())
    other = jsonpatch.apply_patch(admission_pod(), again)
    assert {e["name"]: e for e in other["spec"]["initContainers"][0]["env"]}["OPTUNE_STATS_TOKEN"][
        "value"
    ] != token
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


# The official client asks GET /version/ (trailing slash), as real API servers answer it.
def test_cluster_version_is_read_from_the_emulator() -> None:
    with KubeEmulator() as emu:
        version = server_version(emu.api_client())

    assert version == (1, 30)
    assert use_native_sidecar(load_webhook_config({}), version) is True


def test_unreadable_version_means_plain_containers() -> None:
    from kubernetes import client as k8s

    cfg = k8s.Configuration()
    cfg.host = "http://127.0.0.1:9"  # discard port: connection refused
    assert server_version(k8s.ApiClient(cfg)) is None


@pytest.mark.parametrize(
    ("env", "server", "native"),
    [
        ({}, (1, 30), True),
        ({}, (1, 29), True),
        ({}, (1, 28), False),
        ({}, None, False),  # unknown: the style that works everywhere
        ({"OPTUNE_K8S_VERSION": "1.28"}, (1, 30), False),
        ({"OPTUNE_K8S_VERSION": "v1.33.2"}, None, True),
        ({"OPTUNE_SIDECAR_STYLE": "plain"}, (1, 33), False),
        ({"OPTUNE_SIDECAR_STYLE": "native"}, None, True),
    ],
)
def test_sidecar_style_by_version_or_configuration(
    env: dict[str, str], server: tuple[int, int] | None, native: bool
) -> None:
    assert use_native_sidecar(load_webhook_config(env), server) is native


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
    start_hook: Callable[..., Hook], backend: RecordingBackend, pod: dict[str, Any],
    namespace: str, operation: str,
) -> None:  # fmt: skip
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
    "body",
    [b"not json", b"[]", json.dumps({"kind": "AdmissionReview", "request": {}}).encode()],
)
def test_malformed_review_is_allowed_with_a_warning(
    start_hook: Callable[..., Hook], body: bytes
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


def test_client_with_another_ca_is_refused_the_handshake(
    start_hook: Callable[..., Hook], tmp_path: Path
) -> None:
    hook = start_hook(exchange=False)
    other = write_pair(generate_ca("other", now=dt.datetime.now(dt.UTC)), tmp_path, "other")[0]

    with pytest.raises(requests.exceptions.SSLError):
        requests.post(hook.url, data=b"{}", verify=str(other), timeout=5)


def test_healthz_and_wrong_path(start_hook: Callable[..., Hook]) -> None:
    hook = start_hook(exchange=False)
    base = f"https://localhost:{hook.server.bound_port}"

    assert requests.get(f"{base}/healthz", verify=str(hook.ca), timeout=5).status_code == 200
    assert (
        requests.post(f"{base}/other", data=b"{}", verify=str(hook.ca), timeout=5).status_code
        == 404
    )


# -- the WHATS_NEXT exchange --------------------------------------------------------------

ADJUST = {"cmd": "ADJUST", "param": {"state": {"application": {"components": {"job": {
    "settings": {"cpu": {"value": 1.5}, "mem": {"value": 4}}}}}}}}  # fmt: skip


def test_adjust_round_trip_against_the_bundled_collector(
    start_hook: Callable[..., Hook], tmp_path: Path
) -> None:
    with EventStore(tmp_path / "c.db") as store, Collector(store, responses={"JOB-1": ADJUST},
                                                           port=0) as collector:  # fmt: skip
        hook = start_hook(url=collector.url_template())
        pod = admission_pod()
        _, ops = hook.admit(pod)
        out = jsonpatch.apply_patch(copy.deepcopy(pod), ops)
        [adjustment] = store.events(event="ADJUSTMENT")
        asked = store.events(event="WHATS_NEXT")

    validate(out, NEW)
    res = out["spec"]["containers"][0]["resources"]
    assert res["limits"] == {"cpu": "1500m", "memory": "4Gi", "nvidia.com/gpu": "1"}
    assert res["requests"] == {"cpu": "1500m", "memory": "4Gi", "nvidia.com/gpu": "1"}
    assert adjustment.app_id == "JOB-1" and adjustment.account == "acme"
    assert adjustment.body["param"]["status"] == "ok"
    assert adjustment.body["param"]["state"]["application"]["components"]["job"]["settings"] == {
        "cpu": {"value": 1.5}, "mem": {"value": 4.0}}  # fmt: skip
    assert len(asked) == 1


def test_adjust_of_an_unknown_component_replies_failed_and_changes_nothing(
    start_hook: Callable[..., Hook],
) -> None:
    bad = copy.deepcopy(ADJUST)
    comps = bad["param"]["state"]["application"]["components"]  # type: ignore[index]
    comps["sidecar"] = comps.pop("job")
    with RecordingBackend(whats_next_reply=bad) as backend:
        hook = start_hook(url=backend.url_template())
        pod = admission_pod()
        _, ops = hook.admit(pod)
        out = jsonpatch.apply_patch(copy.deepcopy(pod), ops)
        [adjustment] = backend.events("ADJUSTMENT")

    assert out["spec"]["containers"] == pod["spec"]["containers"]
    assert "servo-monitor" in containers_by_name(out, "initContainers")
    assert adjustment.param["status"] == "failed"
    assert adjustment.param["reason"] == "unknown-component"


def test_describe_then_adjust_sends_the_description_and_asks_again() -> None:
    answers = [{"cmd": "DESCRIBE", "param": {}}, ADJUST]
    sent: list[Any] = []

    def send(event: Any, timeout_s: float) -> Any:
        sent.append((event.event, event.param, event.id))
        assert 0 < timeout_s <= 2.0
        return answers.pop(0) if event.event == "WHATS_NEXT" else {"status": "ok"}

    ex = Exchange(send, budget_s=2.0, ranges=Ranges())
    log = logging.LoggerAdapter(logging.getLogger("test"), {})
    adj = ex.run(review_uid="r1", app_id="JOB-1", pod=admission_pod(), index=0, log=log)

    assert adj is not None and adj.ok
    assert [s[0] for s in sent] == ["WHATS_NEXT", "DESCRIPTION", "WHATS_NEXT", "ADJUSTMENT"]
    description = sent[1][1]
    assert description["application"]["components"]["job"]["settings"]["cpu"]["value"] == 4.0
    assert "max_memory" in description["measurement"]["metrics"]
    assert len({s[2] for s in sent}) == 4  # every event has its own id


@pytest.mark.parametrize("cmd", ["SLEEP", "MEASURE", "FLY"])
def test_sleep_measure_or_unknown_proceed_after_one_question(
    start_hook: Callable[..., Hook], cmd: str
) -> None:
    with RecordingBackend(whats_next_reply={"cmd": cmd, "param": {"duration": 60}}) as backend:
        hook = start_hook(url=backend.url_template())
        pod = admission_pod()
        _, ops = hook.admit(pod)

    assert [r.event for r in backend.received] == ["WHATS_NEXT"]
    assert (
        jsonpatch.apply_patch(pod, ops)["spec"]["containers"]
        == admission_pod()["spec"]["containers"]
    )


def _only_monitor(pod: dict[str, Any], ops: list[Any]) -> None:
    out = jsonpatch.apply_patch(copy.deepcopy(pod), ops)
    assert out["spec"]["containers"] == pod["spec"]["containers"]
    assert list(containers_by_name(out, "initContainers")) == ["servo-monitor"]


def test_backend_down_means_only_the_monitor_within_the_budget(
    start_hook: Callable[..., Hook], backend: RecordingBackend
) -> None:
    url = backend.url_template()
    backend.stop()  # connection refused from now on
    hook = start_hook(url=url)
    pod = admission_pod()
    started = time.monotonic()
    _, ops = hook.admit(pod)

    assert time.monotonic() - started < 2.5
    _only_monitor(pod, ops)


def test_slow_backend_costs_at_most_the_budget(
    start_hook: Callable[..., Hook], backend: RecordingBackend
) -> None:
    backend.delay_next(1, 4.0)
    hook = start_hook(url=backend.url_template(), budget_s=1.0)
    pod = admission_pod()
    started = time.monotonic()
    _, ops = hook.admit(pod)
    elapsed = time.monotonic() - started

    assert elapsed < 1.8, elapsed
    _only_monitor(pod, ops)


@pytest.mark.parametrize("status", [500, 404, 429])
def test_backend_errors_mean_only_the_monitor(
    start_hook: Callable[..., Hook], backend: RecordingBackend, status: int
) -> None:
    backend.fail_next(5, status)
    hook = start_hook(url=backend.url_template())
    pod = admission_pod()
    _, ops = hook.admit(pod)

    _only_monitor(pod, ops)


# -- certificates -------------------------------------------------------------------------


def test_renewed_certificate_is_served_to_new_connections(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    ca1, ca2 = generate_ca("one", now=now), generate_ca("two", now=now)
    ca1_file, _ = write_pair(ca1, tmp_path, "ca1")
    ca2_file, _ = write_pair(ca2, tmp_path, "ca2")

    def serving(ca: CertPair) -> tuple[Path, Path]:
        pair = generate_serving_cert(ca, ["localhost"], now=now, ip_addresses=["127.0.0.1"])
        return write_pair(pair, tmp_path, "tls")

    cert, key = serving(ca1)
    ctx = server_context(cert, key)
    clock = [0.0]
    reloader = CertReloader(ctx, cert, key, clock=lambda: clock[0], check_s=1.0)
    cfg = load_config({})
    admitter = Admitter(cfg, monitor=MonitorSpec("servo-monitor", "m", "http://s/", True),
                        exchange=None)  # fmt: skip
    with WebhookServer(admitter, ctx, bind="127.0.0.1", port=0, before_accept=reloader) as srv:
        url = f"https://localhost:{srv.bound_port}/healthz"
        assert requests.get(url, verify=str(ca1_file), timeout=5).status_code == 200
        serving(ca2)
        st = cert.stat()
        os.utime(cert, (st.st_atime, st.st_mtime + 10))
        clock[0] = 5.0
        # The first connection after the change triggers the reload and gets the new cert.
        session = requests.Session()
        assert session.get(url, verify=str(ca2_file), timeout=5).status_code == 200
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(url, verify=str(ca1_file), timeout=5)


def test_server_context_refuses_tls_1_1(tls: dict[str, Path]) -> None:
    assert server_context(tls["cert"], tls["key"]).minimum_version == ssl.TLSVersion.TLSv1_2
