"""Table tests of the webhook's pure parts: its config, review decoding and answers, the caBundle
patch."""

from __future__ import annotations

import base64
import json
from typing import Any

import jsonpatch
import pytest

from servo.core.errors import ConfigError
from servo.webhook.config import load_webhook_config
from servo.webhook.review import (
    BadReviewError,
    parse_review,
    review_response,
    scan_review_ids,
)
from servo.webhook.tls import build_ca_bundle_patch, service_dns_names
from tests.support.webhookkit import decode_patch


def test_defaults() -> None:
    cfg = load_webhook_config({})

    assert (cfg.port, cfg.sidecar_style, cfg.budget_s, cfg.exchange) == (8443, "auto", 2.0, True)
    assert cfg.stats_url == "http://servo.servo.svc:8080/"
    assert cfg.cert_file is None and cfg.k8s_version is None and cfg.patch_ca


def test_every_problem_is_listed() -> None:
    env = {
        "OPTUNE_WEBHOOK_PORT": "70000",
        "OPTUNE_WEBHOOK_CERT": "/x.crt",
        "OPTUNE_SIDECAR_STYLE": "sideways",
        "OPTUNE_K8S_VERSION": "new",
        "OPTUNE_STATS_SERVICE_URL": "servo:8080",
        "OPTUNE_WEBHOOK_BUDGET": "5",
        "OPTUNE_WEBHOOK_EXCHANGE": "maybe",
        "OPTUNE_WEBHOOK_SERVICE": "Bad_Name",
    }
    with pytest.raises(ConfigError) as e:
        load_webhook_config(env)

    assert len(e.value.problems) == len(env), e.value.problems
    expected = "OPTUNE_WEBHOOK_BUDGET='5': expected a number in 0.1..4"
    assert any(expected in p for p in e.value.problems)


def test_config_values_are_read() -> None:
    cfg = load_webhook_config(
        {
            "OPTUNE_WEBHOOK_PORT": "9443",
            "OPTUNE_K8S_VERSION": "v1.28.3",
            "OPTUNE_SIDECAR_STYLE": "Plain",
            "OPTUNE_WEBHOOK_EXCHANGE": "false",
            "OPTUNE_WEBHOOK_CERT": "/c",
            "OPTUNE_WEBHOOK_KEY": "/k",
        }
    )

    assert (cfg.port, cfg.k8s_version, cfg.sidecar_style, cfg.exchange) == (
        9443,
        (1, 28),
        "plain",
        False,
    )
    assert (cfg.cert_file, cfg.key_file) == ("/c", "/k")


def _review(**request: Any) -> bytes:
    base = {
        "uid": "u-1",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "operation": "CREATE",
        "namespace": "ns",
        "object": {"spec": {}},
    }
    base.update(request)
    return json.dumps(
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": base}
    ).encode()


def test_parse_review() -> None:
    r = parse_review(_review(dryRun=True))

    assert (r.uid, r.operation, r.namespace, r.kind, r.dry_run) == (
        "u-1",
        "CREATE",
        "ns",
        "Pod",
        True,
    )
    assert r.pod == {"spec": {}}


@pytest.mark.parametrize(
    ("raw", "uid"),
    [
        (b"\xff", ""),
        (b"null", ""),
        (json.dumps({"kind": "AdmissionReview"}).encode(), ""),
        (json.dumps({"kind": "Other", "request": {"uid": "u-2"}}).encode(), "u-2"),
        (_review(uid=""), ""),
        (_review(uid=7), ""),
    ],
)
def test_bad_reviews_say_why_and_keep_the_uid(raw: bytes, uid: str) -> None:
    with pytest.raises(BadReviewError) as e:
        parse_review(raw)

    assert e.value.uid == uid and str(e.value)


def test_response_carries_a_base64_json_patch_only_when_there_are_ops() -> None:
    ops = [{"op": "add", "path": "/spec/x", "value": 1}]
    with_patch = review_response(uid="u", ops=ops)
    without = review_response(uid="u", ops=[])

    assert with_patch["response"]["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(with_patch["response"]["patch"])) == ops
    assert decode_patch(with_patch) == ops
    assert without == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "u", "allowed": True},
    }


# -- caBundle -----------------------------------------------------------------------------

CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
BUNDLE = base64.b64encode(CA).decode()


def _config(*hooks: tuple[str, str, str, str | None]) -> dict[str, Any]:
    webhooks = []
    for name, svc, ns, bundle in hooks:
        client: dict[str, Any] = {"service": {"name": svc, "namespace": ns, "path": "/mutate"}}
        if bundle is not None:
            client["caBundle"] = bundle
        webhooks.append({"name": name, "clientConfig": client})
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "webhooks": webhooks,
    }


def test_ca_bundle_patch_sets_only_our_webhooks() -> None:
    config = _config(
        ("a.example.com", "other", "servo", None),
        ("pods.servo.optune.io", "servo-webhook", "servo", None),
        ("old.servo.optune.io", "servo-webhook", "servo", "c3RhbGU="),
    )
    ops = build_ca_bundle_patch(config, CA, service="servo-webhook", namespace="servo")
    out = jsonpatch.apply_patch(config, ops)

    assert [h["clientConfig"].get("caBundle") for h in out["webhooks"]] == [None, BUNDLE, BUNDLE]
    assert ops[0] == {"op": "test", "path": "/webhooks/1/name", "value": "pods.servo.optune.io"}


def test_ca_bundle_patch_is_empty_when_already_right() -> None:
    config = _config(("pods.servo.optune.io", "servo-webhook", "servo", BUNDLE))

    assert build_ca_bundle_patch(config, CA, service="servo-webhook", namespace="servo") == []


def test_ca_bundle_patch_fails_when_the_list_was_reordered() -> None:
    config = _config(("pods.servo.optune.io", "servo-webhook", "servo", None))
    ops = build_ca_bundle_patch(config, CA, service="servo-webhook", namespace="servo")
    reordered = _config(("someone.else", "servo-webhook", "servo", None))

    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        jsonpatch.apply_patch(reordered, ops)


def test_service_dns_names() -> None:
    assert service_dns_names("w", "ns") == ["w", "w.ns", "w.ns.svc", "w.ns.svc.cluster.local"]


def test_ids_of_an_undecodable_review_are_read_from_its_bytes() -> None:
    raw = (
        b'{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1beta1","request":'
        b'{"uid":"0f1e-22","kind":{"kind":"Pod"},"object":'
        + b"[" * 5000
        + b"]" * 5000
        + b',"userInfo":{"uid":"not-this-one"}}}'
    )
    assert scan_review_ids(raw) == ("0f1e-22", "admission.k8s.io/v1beta1")
    assert scan_review_ids(b"[" * 5000) == ("", "admission.k8s.io/v1")
    with pytest.raises(BadReviewError) as e:
        parse_review(raw)
    assert (e.value.uid, e.value.api_version) == ("0f1e-22", "admission.k8s.io/v1beta1")
