"""SelfSubjectAccessReviews and discovery (/api, /apis) in the emulator, through the official
client's AuthorizationV1Api, CoreApi, ApisApi and the group APIs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from kubernetes import client as k8s

from tests.support.fakes.kubeapi import KubeEmulator


@pytest.fixture
def emu() -> Iterator[KubeEmulator]:
    with KubeEmulator() as e:
        yield e


@pytest.fixture
def authz(emu: KubeEmulator) -> k8s.AuthorizationV1Api:
    return k8s.AuthorizationV1Api(emu.api_client())


def review(
    verb: str, resource: str, namespace: str | None = None, group: str | None = None
) -> k8s.V1SelfSubjectAccessReview:
    attrs = k8s.V1ResourceAttributes(verb=verb, resource=resource, namespace=namespace, group=group)
    return k8s.V1SelfSubjectAccessReview(
        spec=k8s.V1SelfSubjectAccessReviewSpec(resource_attributes=attrs)
    )


def allowed(authz: k8s.AuthorizationV1Api, *args: Any) -> bool:
    status = authz.create_self_subject_access_review(review(*args)).status
    assert status.reason
    return bool(status.allowed)


def body_of(e: k8s.ApiException) -> dict[str, Any]:
    doc = json.loads(e.body)
    assert doc["kind"] == "Status" and doc["code"] == e.status
    return dict(doc)


# --- SelfSubjectAccessReview ----------------------------------------------------------------


def test_review_with_a_model_object_is_201_and_echoes_the_spec(
    emu: KubeEmulator, authz: k8s.AuthorizationV1Api
) -> None:
    asked = review("update", "leases", "servo", "coordination.k8s.io")
    got, code, _ = authz.create_self_subject_access_review_with_http_info(asked)
    assert code == 201 and isinstance(got, k8s.V1SelfSubjectAccessReview)
    assert got.kind == "SelfSubjectAccessReview"
    assert got.api_version == "authorization.k8s.io/v1"
    assert got.spec.resource_attributes == asked.spec.resource_attributes
    assert got.status.allowed is True and got.status.reason
    [rec] = emu.requests
    assert (rec.method, rec.verb, rec.resource, rec.status) == (
        "POST",
        "create",
        "selfsubjectaccessreviews",
        201,
    )
    resp = authz.create_self_subject_access_review(asked, _preload_content=False)
    doc = json.loads(resp.data)
    assert doc["status"]["allowed"] is True
    assert doc["spec"]["resourceAttributes"]["resource"] == "leases"


def test_review_follows_the_deny_rules(emu: KubeEmulator, authz: k8s.AuthorizationV1Api) -> None:
    group = "coordination.k8s.io"
    emu.deny("update", "servo", resource="leases")
    emu.deny("watch", None)  # pods, cluster-wide
    assert not allowed(authz, "update", "leases", "servo", group)
    assert allowed(authz, "update", "leases", "other", group)
    assert allowed(authz, "get", "leases", "servo", group)
    assert allowed(authz, "update", "leases", "servo", "apps"), "another group's resource"
    assert not allowed(authz, "*", "leases", "servo", group)
    assert not allowed(authz, "update", "*", "servo", group)
    assert not allowed(authz, "watch", "pods", None, "")
    assert allowed(authz, "watch", "pods", "servo", "")
    status = authz.create_self_subject_access_review(
        review("update", "leases", "servo", group)
    ).status
    assert status.allowed is False and 'deny("update", "servo", resource="leases")' in status.reason
    emu.allow("update", "servo", resource="leases")
    assert allowed(authz, "update", "leases", "servo", group)


def test_non_resource_review_and_invalid_reviews(
    emu: KubeEmulator, authz: k8s.AuthorizationV1Api
) -> None:
    spec = k8s.V1SelfSubjectAccessReviewSpec(
        non_resource_attributes=k8s.V1NonResourceAttributes(path="/healthz", verb="get")
    )
    got = authz.create_self_subject_access_review(k8s.V1SelfSubjectAccessReview(spec=spec))
    assert got.status.allowed is True
    url = f"{emu.url}/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    resp = requests.post(url, json={"spec": {}}, timeout=5)
    assert resp.status_code == 422 and resp.json()["reason"] == "Invalid"
    assert "exactly one of nonResourceAttributes or resourceAttributes" in resp.json()["message"]
    both = {"resourceAttributes": {"verb": "get"}, "nonResourceAttributes": {"path": "/"}}
    assert requests.post(url, json={"spec": both}, timeout=5).status_code == 422
    assert requests.get(url, timeout=5).status_code == 405


def test_review_itself_can_be_denied(emu: KubeEmulator, authz: k8s.AuthorizationV1Api) -> None:
    emu.deny("create", None, resource="selfsubjectaccessreviews")
    with pytest.raises(k8s.ApiException) as info:
        authz.create_self_subject_access_review(review("get", "pods", "x"))
    assert info.value.status == 403 and body_of(info.value)["message"] == (
        "selfsubjectaccessreviews.authorization.k8s.io is forbidden: User "
        '"system:serviceaccount:servo:servo" cannot create resource "selfsubjectaccessreviews" '
        'in API group "authorization.k8s.io" at the cluster scope'
    )
    emu.fail_next(1, 500, resource="selfsubjectaccessreviews")
    emu.allow("create", None, resource="selfsubjectaccessreviews")
    with pytest.raises(k8s.ApiException) as info:
        authz.create_self_subject_access_review(review("get", "pods", "x"))
    assert info.value.status == 500
    assert allowed(authz, "get", "pods", "x")


# --- discovery -------------------------------------------------------------------------------


def test_core_and_group_discovery(emu: KubeEmulator) -> None:
    api = emu.api_client()
    versions = k8s.CoreApi(api).get_api_versions()
    assert versions.versions == ["v1"] and versions.server_address_by_client_cidrs
    groups = k8s.ApisApi(api).get_api_versions()
    by_name = {g.name: g for g in groups.groups}
    assert set(by_name) == {"coordination.k8s.io", "authorization.k8s.io", "authentication.k8s.io"}
    coordination = by_name["coordination.k8s.io"]
    assert coordination.preferred_version.group_version == "coordination.k8s.io/v1"
    assert [v.version for v in coordination.versions] == ["v1"]
    group = k8s.CoordinationApi(api).get_api_group()
    assert group.name == "coordination.k8s.io"
    leases = k8s.CoordinationV1Api(api).get_api_resources()
    assert leases.group_version == "coordination.k8s.io/v1"
    [lease] = leases.resources
    assert (lease.name, lease.kind, lease.namespaced) == ("leases", "Lease", True)
    assert {"get", "update", "watch"} <= set(lease.verbs)
    pods = k8s.CoreV1Api(api).get_api_resources()
    assert [r.name for r in pods.resources] == ["pods", "pods/status"]
    reviews = k8s.AuthorizationV1Api(api).get_api_resources()
    assert [(r.name, r.verbs) for r in reviews.resources] == [
        ("selfsubjectaccessreviews", ["create"])
    ]
    # Without the trailing slash the client uses, too.
    assert requests.get(f"{emu.url}/apis", timeout=5).json()["kind"] == "APIGroupList"
    assert requests.get(f"{emu.url}/api", timeout=5).json()["kind"] == "APIVersions"
    assert requests.get(f"{emu.url}/apis/apps", timeout=5).status_code == 404


@pytest.mark.parametrize(
    "path", ["/api", "/api/", "/apis", "/apis/", "/apis/coordination.k8s.io/v1/"]
)
def test_discovery_authentication_matches_the_api_server(path: str) -> None:
    with KubeEmulator(token="right") as secured:
        url = f"{secured.url}{path}"
        wrong = {"Authorization": "Bearer wrong"}
        right = {"Authorization": "Bearer right"}
        # A bad token is a 401, as on /version.
        assert requests.get(url, headers=wrong, timeout=5).status_code == 401
        assert requests.get(f"{secured.url}/version", headers=wrong, timeout=5).status_code == 401
        assert requests.get(url, headers=right, timeout=5).status_code == 200
        # Anonymous users may read /version but not discovery (system:discovery is bound to
        # authenticated users only).
        assert requests.get(f"{secured.url}/version", timeout=5).status_code == 200
        anonymous = requests.get(url, timeout=5)
        assert anonymous.status_code == 403 and anonymous.json()["message"] == (
            f'forbidden: User "system:anonymous" cannot get path "{path}"'
        )
    with KubeEmulator() as open_:
        assert requests.get(f"{open_.url}{path}", timeout=5).status_code == 200
