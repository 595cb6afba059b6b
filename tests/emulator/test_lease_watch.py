"""Leases in the emulator through CoordinationV1Api: list, watch, the version counter shared
with pods, RBAC, authentication, fault injection and the Python-side helpers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from kubernetes import client as k8s
from kubernetes import watch

from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.leasekit import NS, body_of, lease, raises, raw


@pytest.fixture
def emu() -> Iterator[KubeEmulator]:
    with KubeEmulator(bookmark_interval_s=0.2) as e:
        yield e


@pytest.fixture
def coord(emu: KubeEmulator) -> k8s.CoordinationV1Api:
    return k8s.CoordinationV1Api(emu.api_client())


# --- list, watch, shared versions ------------------------------------------------------------


def test_list_with_selectors(emu: KubeEmulator, coord: k8s.CoordinationV1Api) -> None:
    for name, app in (("b", "servo"), ("a", "servo"), ("c", "other")):
        body = lease(name)
        body["metadata"]["labels"] = {"app": app}
        coord.create_namespaced_lease(NS, body)
    coord.create_namespaced_lease("kube-system", {**lease("d"), "metadata": {"name": "d"}})
    got = coord.list_namespaced_lease(NS)
    assert [x.metadata.name for x in got.items] == ["a", "b", "c"]
    assert got.metadata.resource_version == emu.resource_version
    assert isinstance(got.items[0], k8s.V1Lease) and got.items[0].spec.renew_time is not None
    by_label = coord.list_namespaced_lease(NS, label_selector="app=servo")
    assert [x.metadata.name for x in by_label.items] == ["a", "b"]
    by_name = coord.list_namespaced_lease(NS, field_selector="metadata.name=c")
    assert [x.metadata.name for x in by_name.items] == ["c"]
    every = coord.list_lease_for_all_namespaces()
    assert [x.metadata.name for x in every.items] == ["d", "a", "b", "c"]  # by namespace
    doc = raw(coord.list_namespaced_lease(NS, limit=2, _preload_content=False))
    assert doc["kind"] == "LeaseList" and doc["apiVersion"] == "coordination.k8s.io/v1"
    assert doc["metadata"]["remainingItemCount"] == 1 and len(doc["items"]) == 2
    e = raises(coord.list_namespaced_lease, NS, field_selector="spec.holderIdentity=a")
    assert e.status == 400 and body_of(e)["message"] == (
        '"spec.holderIdentity" is not a known field selector: only "metadata.name", '
        '"metadata.namespace"'
    )


def test_watch_and_one_version_counter_with_pods(
    emu: KubeEmulator, coord: k8s.CoordinationV1Api
) -> None:
    rv0 = int(emu.resource_version)
    emu.create_pod({"metadata": {"name": "p", "namespace": NS}, "spec": {"containers": []}})
    coord.create_namespaced_lease(NS, lease())
    emu.update_lease(NS, "leader", lambda x: x["spec"].update(holderIdentity="b"))
    emu.update_pod(NS, "p", lambda p: p["metadata"].update(labels={"x": "1"}))
    coord.delete_namespaced_lease("leader", NS)
    assert int(emu.resource_version) == rv0 + 5, "pods and leases share one counter"
    w = watch.Watch()
    events = list(
        w.stream(coord.list_namespaced_lease, NS, resource_version=str(rv0), timeout_seconds=1)
    )
    assert [(e["type"], int(e["object"].metadata.resource_version)) for e in events] == [
        ("ADDED", rv0 + 2),
        ("MODIFIED", rv0 + 3),
        ("DELETED", rv0 + 5),
    ]
    assert all(isinstance(e["object"], k8s.V1Lease) for e in events)
    assert events[1]["object"].spec.holder_identity == "b"
    pods = list(
        watch.Watch().stream(
            k8s.CoreV1Api(emu.api_client()).list_namespaced_pod,
            NS,
            resource_version=str(rv0),
            timeout_seconds=1,
        )
    )
    assert [e["type"] for e in pods] == ["ADDED", "MODIFIED"], "no lease events on pod watches"
    marks = list(
        watch.Watch().stream(
            coord.list_namespaced_lease,
            NS,
            resource_version=emu.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=1,
        )
    )
    assert marks and marks[0]["type"] == "BOOKMARK"
    assert marks[0]["raw_object"]["kind"] == "Lease"
    assert [r.resource for r in emu.requests if r.verb == "watch"] == ["leases", "pods", "leases"]


# --- RBAC, authentication, faults, helpers -----------------------------------------------


def test_rbac_denials_name_the_resource_and_group(
    emu: KubeEmulator, coord: k8s.CoordinationV1Api
) -> None:
    coord.create_namespaced_lease(NS, lease())
    current = coord.read_namespaced_lease("leader", NS)
    emu.deny("update", NS)  # pods only: leases unaffected
    coord.replace_namespaced_lease("leader", NS, current)
    emu.deny("update", NS, resource="leases")
    e = raises(coord.replace_namespaced_lease, "leader", NS, current)
    assert e.status == 403 and body_of(e)["reason"] == "Forbidden"
    assert body_of(e)["message"] == (
        'leases.coordination.k8s.io is forbidden: User "system:serviceaccount:servo:servo" '
        'cannot update resource "leases" in API group "coordination.k8s.io" in the namespace '
        '"servo"'
    )
    emu.deny("list", None, resource="leases")
    e = raises(coord.list_lease_for_all_namespaces)
    assert e.status == 403 and body_of(e)["message"].endswith("at the cluster scope")
    assert coord.list_namespaced_lease(NS).items, "the cluster-scope denial is only that"
    emu.allow("update", NS, resource="leases")
    assert coord.read_namespaced_lease("leader", NS).metadata.name == "leader"


def test_bad_token_is_401() -> None:
    with KubeEmulator(token="right") as secured:
        bad = k8s.CoordinationV1Api(secured.api_client(token="wrong"))
        assert raises(bad.list_namespaced_lease, NS).status == 401
        good = k8s.CoordinationV1Api(secured.api_client())
        assert good.list_namespaced_lease(NS).items == []


def test_fail_next_can_target_lease_verbs(emu: KubeEmulator, coord: k8s.CoordinationV1Api) -> None:
    core = k8s.CoreV1Api(emu.api_client())
    coord.create_namespaced_lease(NS, lease())
    containers = [{"name": "main", "image": "busybox:1"}]
    emu.create_pod({"metadata": {"name": "p", "namespace": NS}, "spec": {"containers": containers}})
    emu.fail_next(2, 500, verb="update", resource="leases")
    pod = core.read_namespaced_pod("p", NS)
    core.replace_namespaced_pod("p", NS, pod)  # a pod update: not targeted
    current = coord.read_namespaced_lease("leader", NS)
    for _ in range(2):
        e = raises(coord.replace_namespaced_lease, "leader", NS, current)
        assert e.status == 500 and body_of(e)["reason"] == "InternalError"
    coord.replace_namespaced_lease("leader", NS, current)
    emu.fail_next(1, 503, resource="leases")  # any verb on leases
    assert core.list_namespaced_pod(NS).items
    assert raises(coord.list_namespaced_lease, NS).status == 503
    assert coord.list_namespaced_lease(NS).items


def test_python_helpers(emu: KubeEmulator, coord: k8s.CoordinationV1Api) -> None:
    when = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)
    other = lease("held", holder="other-pod", renewTime=when)
    other["metadata"]["uid"] = "kept-uid"
    made = emu.create_lease(other)
    assert made["metadata"]["uid"] == "kept-uid"
    assert made["spec"]["renewTime"] == "2026-11-25T10:00:00.000000Z"
    seen = coord.read_namespaced_lease("held", NS)
    assert seen.spec.holder_identity == "other-pod" and seen.spec.renew_time == when
    changed = emu.update_lease(NS, "held", lambda x: x["spec"].update(leaseTransitions=3))
    assert (
        int(changed["metadata"]["resourceVersion"]) == int(made["metadata"]["resourceVersion"]) + 1
    )
    assert [x["metadata"]["name"] for x in emu.leases()] == ["held"]
    assert emu.get_lease(NS, "held")["spec"]["leaseTransitions"] == 3  # type: ignore[index]
    assert emu.get_lease(NS, "nope") is None
    with pytest.raises(KeyError):
        emu.update_lease(NS, "nope", lambda x: None)
    emu.delete_lease(NS, "held")
    assert emu.leases() == []
