"""Facts the webhook manifests must keep; the cert-manager variant's built-in kinds validate too
(its Issuer and Certificate are CRDs kubernetes-validate has no schema for)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SELF_GENERATED = ROOT / "example" / "webhook.yaml"
CERT_MANAGER = ROOT / "example" / "cert-manager" / "webhook-cert-manager.yaml"
CRD_KINDS = {"Issuer", "Certificate"}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _one(path: Path, kind: str) -> dict[str, Any]:
    [doc] = [d for d in _docs(path) if d["kind"] == kind]
    return doc


@pytest.mark.parametrize("version", ["1.28.0", "1.33.0"])
def test_cert_manager_variant_builtin_kinds_validate(version: str) -> None:
    docs = _docs(CERT_MANAGER)
    assert {d["kind"] for d in docs} & CRD_KINDS == CRD_KINDS
    for doc in docs:
        if doc["kind"] not in CRD_KINDS:
            kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("path", [SELF_GENERATED, CERT_MANAGER], ids=lambda p: p.name)
def test_webhook_fails_open_fast_and_only_for_pod_create(path: Path) -> None:
    [hook] = _one(path, "MutatingWebhookConfiguration")["webhooks"]

    assert hook["failurePolicy"] == "Ignore" and hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"] and hook["timeoutSeconds"] == 5
    assert hook["rules"] == [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["CREATE"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    assert hook["namespaceSelector"]["matchLabels"] == {"servo.optune.io/watch": "true"}
    service = _one(path, "Service")
    assert hook["clientConfig"]["service"]["name"] == service["metadata"]["name"]
    assert hook["clientConfig"]["service"]["port"] == service["spec"]["ports"][0]["port"]


@pytest.mark.parametrize("path", [SELF_GENERATED, CERT_MANAGER], ids=lambda p: p.name)
def test_webhook_deployment_runs_the_webhook_on_its_port(path: Path) -> None:
    pod = _one(path, "Deployment")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {e["name"]: e for e in container["env"]}

    assert container["args"] == ["webhook"]
    assert container["ports"][0]["containerPort"] == 8443
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert env["OPTUNE_STATS_SERVICE_URL"]["value"] == "http://servo.servo.svc:8080/"
    assert pod["serviceAccountName"] == "servo-webhook"


def test_self_generated_ca_rbac_is_get_and_patch_of_one_configuration() -> None:
    [rule] = _one(SELF_GENERATED, "ClusterRole")["rules"]
    binding = _one(SELF_GENERATED, "ClusterRoleBinding")
    name = _one(SELF_GENERATED, "MutatingWebhookConfiguration")["metadata"]["name"]
    env = {
        e["name"]: e
        for e in _one(SELF_GENERATED, "Deployment")["spec"]["template"]["spec"]["containers"][0][
            "env"
        ]
    }

    assert rule == {
        "apiGroups": ["admissionregistration.k8s.io"],
        "resources": ["mutatingwebhookconfigurations"],
        "resourceNames": [name],
        "verbs": ["get", "patch"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "servo-webhook", "namespace": "servo"}
    ]
    assert env["OPTUNE_WEBHOOK_CONFIG_NAME"]["value"] == name
    assert _one(SELF_GENERATED, "Deployment")["spec"]["replicas"] == 1
