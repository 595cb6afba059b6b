"""TokenReview in the emulator, through the official client: pod-bound tokens tests mint."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client as k8s

from servo.kube.client import KubeClient, identity_from_review
from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.fakes.kubetokens import POD_NAME_EXTRA, POD_UID_EXTRA

POD = {"metadata": {"name": "job-1", "namespace": "batch", "uid": "uid-1"}}


def review(emu: KubeEmulator, token: str, audiences: list[str]) -> Any:
    body = k8s.V1TokenReview(spec=k8s.V1TokenReviewSpec(token=token, audiences=audiences))
    return k8s.AuthenticationV1Api(emu.api_client()).create_token_review(body)


def test_a_minted_token_names_its_pod_for_its_audience(emu: KubeEmulator) -> None:
    token = emu.tokens.mint(POD, audience="servo-stats")
    status = review(emu, token, ["servo-stats"]).status
    assert status.authenticated is True and status.audiences == ["servo-stats"]
    assert status.user.username == "system:serviceaccount:batch:default"
    assert status.user.extra == {POD_NAME_EXTRA: ["job-1"], POD_UID_EXTRA: ["uid-1"]}


@pytest.mark.parametrize("case", ["unknown", "audience", "expired"])
def test_tokens_that_do_not_authenticate(emu: KubeEmulator, case: str) -> None:
    token = emu.tokens.mint(POD, audience="servo-stats")
    if case == "expired":
        emu.tokens.expire(token)
    audiences = ["other"] if case == "audience" else ["servo-stats"]
    status = review(emu, "forged" if case == "unknown" else token, audiences).status
    assert not status.authenticated and status.error.startswith("[invalid bearer token")


def test_the_servos_review_call_reads_the_pod_claims(emu: KubeEmulator) -> None:
    kube = KubeClient(emu.api_client())
    who = kube.review_token(emu.tokens.mint(POD, audience="servo-stats"), audience="servo-stats")
    assert (who.authenticated, who.pod_uid, who.pod_name) == (True, "uid-1", "job-1")
    assert not kube.review_token("nope", audience="servo-stats").authenticated


@pytest.mark.parametrize(
    "doc",
    [
        None,
        {"status": "x"},
        {"status": {"authenticated": "true"}},
        {"status": {"authenticated": True}},  # no audiences: not for us
        {"status": {"authenticated": True, "audiences": ["api"]}},
    ],
)
def test_odd_review_answers_are_not_authenticated(doc: Any) -> None:
    assert not identity_from_review(doc, "servo-stats").authenticated


def test_claims_that_are_not_single_strings_are_empty() -> None:
    extra = {POD_UID_EXTRA: ["a", "b"], POD_NAME_EXTRA: "n"}
    doc = {
        "status": {"authenticated": True, "audiences": ["servo-stats"], "user": {"extra": extra}}
    }
    who = identity_from_review(doc, "servo-stats")
    assert who.authenticated and who.pod_uid == "" and who.pod_name == ""
