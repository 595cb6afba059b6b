"""Shared by the webhook tests: a test CA and serving certificate, AdmissionReviews as the API
server sends them, and a running webhook (`start_hook`) with a client that trusts only that CA.
The fixtures reach the test modules through conftest.py; the tests themselves live in
test_webhook_*.py."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import requests

from servo.system.config import load_config
from servo.webhook.admission import MonitorSpec
from servo.webhook.config import load_webhook_config
from servo.webhook.exchange import Exchange, ReporterSender
from servo.webhook.resources import Ranges
from servo.webhook.review import Admitter
from servo.webhook.server import WebhookServer
from servo.webhook.tls import generate_ca, generate_serving_cert, server_context, write_pair
from tests.support.helpers import job_pod

# Oldest release the examples support, and the newest schema kubernetes-validate ships
# (1.33 is the release where native sidecars became stable).
OLD, NEW = "1.28.0", "1.33.0"
NEWEST = kubernetes_validate.utils.latest_version()
JOB_USER = {
    "username": "system:serviceaccount:kube-system:job-controller",
    "uid": "3e4d5b1a-8a51-4d64-b2c1-0f6f54d1f5a0",
    "groups": [
        "system:serviceaccounts",
        "system:serviceaccounts:kube-system",
        "system:authenticated",
    ],
}
MEASURE = {"cmd": "MEASURE", "param": {}}
ADJUST = {
    "cmd": "ADJUST",
    "param": {
        "state": {
            "application": {
                "components": {"job": {"settings": {"cpu": {"value": 1.5}, "mem": {"value": 4}}}}
            }
        }
    },
}


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    now = dt.datetime.now(dt.UTC)
    ca = generate_ca("test webhook CA", now=now)
    serving = generate_serving_cert(
        ca, ["localhost", "servo-webhook.servo.svc"], now=now, ip_addresses=["127.0.0.1"]
    )
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


def review(
    pod: dict[str, Any],
    *,
    namespace: str = "default",
    operation: str = "CREATE",
    dry_run: bool = False,
) -> dict[str, Any]:
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
        resp = requests.post(
            self.url,
            data=data,
            verify=str(self.ca),
            timeout=10,
            headers={"Content-Type": "application/json"},
        )
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

    def start(
        *,
        url: str | None = None,
        native: bool = True,
        exchange: bool = True,
        budget_s: float = 2.0,
        **env: str,
    ) -> Hook:
        environ = {
            "POD_NAMESPACES": "default,batch",
            "OPTUNE_SLEEPER_IMG": "mon:test",
            "OPTUNE_ACCOUNT": "acme",
            **env,
        }
        if url is not None:
            environ["OPTUNE_URL"] = url
        cfg = load_config(environ)
        wcfg = load_webhook_config(environ)
        monitor = MonitorSpec(
            cfg.stats.monitor_container, cfg.sleeper_image, wcfg.stats_url, native=native
        )
        ex = Exchange(ReporterSender(cfg.report), budget_s=budget_s, ranges=Ranges())
        admitter = Admitter(cfg, monitor=monitor, exchange=ex if exchange else None)
        server = WebhookServer(
            admitter, server_context(tls["cert"], tls["key"]), bind="127.0.0.1", port=0
        ).start()
        servers.append(server)
        return Hook(server, tls["ca"])

    yield start
    for s in servers:
        s.stop()


def validate(pod: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(pod, version, strict=True)


def containers_by_name(pod: dict[str, Any], key: str) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in pod["spec"].get(key, [])}


def decode_patch(response: Mapping[str, Any]) -> list[Any]:
    """The JSON Patch of an AdmissionReview answer ([] when none)."""
    patch = response.get("response", {}).get("patch")
    if not patch:
        return []
    try:
        ops = json.loads(base64.b64decode(patch, validate=True))
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"patch is not base64 JSON: {e}") from e
    return ops if isinstance(ops, list) else []
