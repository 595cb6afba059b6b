"""Leases (coordination.k8s.io/v1) in the emulator, as the official client's CoordinationV1Api
sees them (model objects and raw `_preload_content=False` responses): create, read, update
with optimistic concurrency, patch, delete."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.leasekit import CONFLICT, NS, T0, T1, body_of, lease, post, raises, raw


@pytest.fixture
def emu() -> Iterator[KubeEmulator]:
    with KubeEmulator(bookmark_interval_s=0.2) as e:
        yield e


@pytest.fixture
def coord(emu: KubeEmulator) -> k8s.CoordinationV1Api:
    return k8s.CoordinationV1Api(emu.api_client())


# --- create and read ---------------------------------------------------------------------


def test_create_and_read_with_model_objects(
    emu: KubeEmulator, coord: k8s.CoordinationV1Api
) -> None:
    acquired = datetime(2026, 11, 25, 10, 0, 0, 654321, tzinfo=UTC)
    body = k8s.V1Lease(
        metadata=k8s.V1ObjectMeta(name="leader", labels={"app": "servo"}, uid="client-chosen"),
        spec=k8s.V1LeaseSpec(
            holder_identity="pod-a",
            lease_duration_seconds=15,
            acquire_time=acquired,
            renew_time=acquired,
            lease_transitions=0,
        ),
    )
    created, code, _ = coord.create_namespaced_lease_with_http_info(NS, body)
    assert code == 201 and isinstance(created, k8s.V1Lease)
    assert created.kind == "Lease" and created.api_version == "coordination.k8s.io/v1"
    assert created.metadata.uid not in (None, "client-chosen") and len(created.metadata.uid) == 36
    assert created.metadata.creation_timestamp is not None
    assert created.metadata.resource_version == emu.resource_version
    assert created.spec.holder_identity == "pod-a" and created.spec.lease_transitions == 0
    assert created.spec.acquire_time == acquired and created.spec.renew_time == acquired
    got = coord.read_namespaced_lease("leader", NS)
    assert got.metadata.uid == created.metadata.uid and got.metadata.labels == {"app": "servo"}
    assert got.spec.lease_duration_seconds == 15
    # Raw: MicroTime in UTC with six digits, as the server encodes it.
    doc = raw(coord.read_namespaced_lease("leader", NS, _preload_content=False))
    assert doc["kind"] == "Lease" and doc["apiVersion"] == "coordination.k8s.io/v1"
    assert doc["spec"]["acquireTime"] == "2026-11-25T10:00:00.654321Z"
    stored = emu.get_lease(NS, "leader")
    assert stored is not None and stored["spec"] == doc["spec"]


def test_create_and_read_raw(emu: KubeEmulator, coord: k8s.CoordinationV1Api) -> None:
    offset = lease(renewTime="2026-11-25T12:00:00.123456+02:00", acquireTime=T0, extra="x")
    resp = post(emu, offset)
    assert resp.status_code == 201
    doc = resp.json()
    assert doc["spec"] == {
        "acquireTime": T0,
        "holderIdentity": "a",
        "leaseDurationSeconds": 15,
        "renewTime": T0,  # converted to UTC
    }, "unknown spec fields are dropped, as the server's decoder does"
    assert doc["metadata"]["resourceVersion"] == emu.resource_version
    assert raw(coord.read_namespaced_lease("leader", NS, _preload_content=False)) == doc
    model = coord.read_namespaced_lease("leader", NS)
    assert model.spec.renew_time == datetime(2026, 11, 25, 10, 0, 0, 123456, tzinfo=UTC)
    gen = coord.create_namespaced_lease(NS, {**lease(), "metadata": {"generateName": "elect-"}})
    assert gen.metadata.name.startswith("elect-") and len(gen.metadata.name) == 11


def test_create_errors(emu: KubeEmulator, coord: k8s.CoordinationV1Api) -> None:
    coord.create_namespaced_lease(NS, lease())
    e = raises(coord.create_namespaced_lease, NS, lease())
    assert e.status == 409 and body_of(e)["reason"] == "AlreadyExists"
    assert body_of(e)["message"] == 'leases.coordination.k8s.io "leader" already exists'
    e = raises(coord.create_namespaced_lease, "other", lease("x"))
    assert e.status == 400, "namespace mismatch"
    e = raises(coord.create_namespaced_lease, NS, lease("Bad_Name"))
    assert e.status == 422 and body_of(e)["message"].startswith(
        'Lease.coordination.k8s.io "Bad_Name" is invalid: metadata.name: Invalid value'
    )
    e = raises(coord.create_namespaced_lease, NS, lease("z", leaseDurationSeconds=0))
    assert e.status == 422 and body_of(e)["message"] == (
        'Lease.coordination.k8s.io "z" is invalid: spec.leaseDurationSeconds: Invalid value: 0: '
        "must be greater than 0"
    )
    assert raises(coord.create_namespaced_lease, NS, lease("z", leaseTransitions=-1)).status == 422
    resp = post(emu, lease("z", leaseDurationSeconds="15"))
    assert resp.status_code == 400 and resp.json()["message"] == (
        'Lease in version "v1" cannot be handled as a Lease: json: cannot unmarshal string into '
        "Go struct field LeaseSpec.spec.leaseDurationSeconds of type int32"
    )
    assert post(emu, lease("z", holderIdentity=7)).status_code == 400
    assert post(emu, lease("z", leaseTransitions=True)).status_code == 400
    assert post(emu, [1]).status_code == 400


@pytest.mark.parametrize(
    "renew",
    [
        "2026-11-25T10:00:00Z",  # no fraction
        "2026-11-25T10:00:00.123Z",  # milliseconds
        "2026-11-25T10:00:00.123456789Z",  # nanoseconds
        "2026-11-25T10:00:00.123456",  # no zone
        "2026-11-25 10:00:00.123456Z",
    ],
)
def test_microtime_must_be_rfc3339_micro(emu: KubeEmulator, renew: str) -> None:
    resp = post(emu, lease(renewTime=renew))
    assert resp.status_code == 400 and resp.json()["reason"] == "BadRequest"
    message = resp.json()["message"]
    assert message.startswith('Lease in version "v1" cannot be handled as a Lease: parsing time')
    assert f'"{renew}" as "2006-01-02T15:04:05.000000Z07:00"' in message


def test_a_datetime_on_a_whole_second_is_rejected_as_by_a_real_server(
    coord: k8s.CoordinationV1Api,
) -> None:
    """The client sends datetime.isoformat(): without microseconds there is no fraction,
    which a real server's MicroTime decoding refuses. Send strings (%f) for MicroTimes."""
    whole = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)
    spec = k8s.V1LeaseSpec(holder_identity="a", renew_time=whole)
    e = raises(coord.create_namespaced_lease, NS, k8s.V1Lease(metadata={"name": "w"}, spec=spec))
    assert e.status == 400 and 'cannot parse "+00:00" as ".000000"' in body_of(e)["message"]


def test_get_missing_is_404(coord: k8s.CoordinationV1Api) -> None:
    e = raises(coord.read_namespaced_lease, "nope", NS)
    assert e.status == 404 and body_of(e)["reason"] == "NotFound"
    assert body_of(e)["message"] == 'leases.coordination.k8s.io "nope" not found'


# --- update with optimistic concurrency -------------------------------------------------------


def test_replace_with_model_objects(emu: KubeEmulator, coord: k8s.CoordinationV1Api) -> None:
    coord.create_namespaced_lease(NS, lease())
    current = coord.read_namespaced_lease("leader", NS)
    stale = current.metadata.resource_version
    current.spec.holder_identity = "b"
    current.spec.lease_transitions = 1
    replaced = coord.replace_namespaced_lease("leader", NS, current)
    assert replaced.spec.holder_identity == "b" and replaced.spec.lease_transitions == 1
    assert int(replaced.metadata.resource_version) == int(stale) + 1 == int(emu.resource_version)
    assert replaced.metadata.uid == current.metadata.uid
    current.spec.holder_identity = "c"  # still carries the old version
    e = raises(coord.replace_namespaced_lease, "leader", NS, current)
    assert e.status == 409 and body_of(e)["reason"] == "Conflict"
    assert body_of(e)["message"] == CONFLICT
    assert coord.read_namespaced_lease("leader", NS).spec.holder_identity == "b"
    # The same write again changes nothing: no new version.
    again = coord.replace_namespaced_lease("leader", NS, replaced)
    assert again.metadata.resource_version == replaced.metadata.resource_version


def test_replace_raw_and_its_rules(emu: KubeEmulator, coord: k8s.CoordinationV1Api) -> None:
    created = raw(coord.create_namespaced_lease(NS, lease(), _preload_content=False))
    body = {**created, "spec": {**created["spec"], "renewTime": T1}}
    resp = coord.replace_namespaced_lease("leader", NS, body, _preload_content=False)
    assert resp.status == 200 and raw(resp)["spec"]["renewTime"] == T1
    # The lease strategy allows no unconditional update: the version must be sent.
    unversioned = {"metadata": {"name": "leader"}, "spec": {"holderIdentity": "z"}}
    assert post(emu, unversioned, name="leader").status_code == 422
    e = raises(coord.replace_namespaced_lease, "leader", NS, unversioned)
    assert e.status == 422 and body_of(e)["message"] == (
        'leases.coordination.k8s.io "leader" is invalid: metadata.resourceVersion: Invalid '
        "value: 0x0: must be specified for an update"
    )
    # The name must be the URL's.
    assert raises(coord.replace_namespaced_lease, "other", NS, body).status == 400
    # PUT creates a missing lease.
    fresh, code, _ = coord.replace_namespaced_lease_with_http_info("new", NS, lease("new"))
    assert code == 201 and fresh.metadata.uid and emu.get_lease(NS, "new") is not None


def _claim(
    client: k8s.CoordinationV1Api,
    mine: k8s.V1Lease,
    holder: str,
    barrier: threading.Barrier,
    results: list[Any],
    i: int,
) -> None:
    mine.spec.holder_identity = holder  # a real change (a no-op write would not conflict)
    barrier.wait()
    try:
        results[i] = client.replace_namespaced_lease("leader", NS, mine)
    except k8s.ApiException as e:
        results[i] = e


def test_conflict_race_exactly_one_replace_wins(emu: KubeEmulator) -> None:
    clients = [k8s.CoordinationV1Api(emu.api_client()) for _ in range(2)]
    clients[0].create_namespaced_lease(NS, lease(holder=""))
    for round_ in range(5):
        seen = [c.read_namespaced_lease("leader", NS) for c in clients]
        assert seen[0].metadata.resource_version == seen[1].metadata.resource_version
        barrier = threading.Barrier(2)
        results: list[Any] = [None, None]
        threads = [
            threading.Thread(
                target=_claim, args=(c, seen[i], f"candidate-{i}-{round_}", barrier, results, i)
            )
            for i, c in enumerate(clients)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
        won = [r for r in results if isinstance(r, k8s.V1Lease)]
        lost = [r for r in results if isinstance(r, k8s.ApiException)]
        assert len(won) == 1 and len(lost) == 1, f"round {round_}: {results}"
        assert lost[0].status == 409 and body_of(lost[0])["message"] == CONFLICT
        holder = emu.get_lease(NS, "leader")["spec"]["holderIdentity"]  # type: ignore[index]
        assert holder == won[0].spec.holder_identity
    assert len({r.peer for r in emu.requests if r.verb == "update"}) == 2, "two connections"


# --- patch and delete ----------------------------------------------------------------------


def test_patches(emu: KubeEmulator, coord: k8s.CoordinationV1Api) -> None:
    coord.create_namespaced_lease(NS, lease())
    merge = "application/merge-patch+json"
    got = coord.patch_namespaced_lease(
        "leader", NS, {"spec": {"holderIdentity": "b", "renewTime": T1}}, _content_type=merge
    )
    assert got.spec.holder_identity == "b" and got.spec.lease_duration_seconds == 15
    got = coord.patch_namespaced_lease(
        "leader",
        NS,
        {"metadata": {"labels": {"x": "1"}}, "spec": {"holderIdentity": None}},
        _content_type="application/strategic-merge-patch+json",
    )
    assert got.metadata.labels == {"x": "1"} and got.spec.holder_identity is None
    ops = [
        {"op": "test", "path": "/spec/leaseDurationSeconds", "value": 15},
        {"op": "add", "path": "/spec/holderIdentity", "value": "c"},
    ]
    got = coord.patch_namespaced_lease("leader", NS, ops)  # the client's default: json-patch
    assert got.spec.holder_identity == "c"
    rv = got.metadata.resource_version
    stale = {"metadata": {"resourceVersion": "1"}, "spec": {"holderIdentity": "d"}}
    e = raises(coord.patch_namespaced_lease, "leader", NS, stale, _content_type=merge)
    assert e.status == 409 and body_of(e)["message"] == CONFLICT
    bad = {"spec": {"renewTime": "2026-11-25T10:00:00Z"}}
    assert (
        raises(coord.patch_namespaced_lease, "leader", NS, bad, _content_type=merge).status == 400
    )
    bad = {"spec": {"leaseDurationSeconds": -5}}
    assert (
        raises(coord.patch_namespaced_lease, "leader", NS, bad, _content_type=merge).status == 422
    )
    assert coord.read_namespaced_lease("leader", NS).metadata.resource_version == rv
    assert raises(coord.patch_namespaced_lease, "nope", NS, ops).status == 404


def test_delete(emu: KubeEmulator, coord: k8s.CoordinationV1Api) -> None:
    uid = coord.create_namespaced_lease(NS, lease()).metadata.uid
    wrong = k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(uid="not-the-uid"))
    e = raises(coord.delete_namespaced_lease, "leader", NS, body=wrong)
    assert e.status == 409 and body_of(e)["message"].startswith(
        'Operation cannot be fulfilled on leases.coordination.k8s.io "leader": Precondition failed'
    )
    status = coord.delete_namespaced_lease("leader", NS)  # v37 gives the plain Status dict
    assert status["kind"] == "Status" and status["status"] == "Success"
    assert status["details"] == {
        "name": "leader",
        "group": "coordination.k8s.io",
        "kind": "leases",
        "uid": uid,
    }
    assert k8s.V1Status.from_dict(status).details.uid == uid
    assert emu.get_lease(NS, "leader") is None and emu.leases() == []
    assert raises(coord.delete_namespaced_lease, "leader", NS).status == 404
