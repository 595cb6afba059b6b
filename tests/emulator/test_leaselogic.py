"""Table tests of the pure parts added for leases, reviews and routing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from tests.support.fakes.kubeauthz import discovery, forbidden, matches_denial
from tests.support.fakes.kubeleases import decode_spec, micro_time, validate_lease
from tests.support.fakes.kubelogic import ApiError
from tests.support.fakes.kuberoutes import route_of, verb_of

MICRO = [
    ("2026-11-25T10:00:00.123456Z", "2026-11-25T10:00:00.123456Z"),
    ("2026-11-25T10:00:00.000000Z", "2026-11-25T10:00:00.000000Z"),
    ("2026-11-25T11:30:00.000001+01:30", "2026-11-25T10:00:00.000001Z"),
    ("2026-11-25T09:00:00.5000000-01:00"[:26] + "-01:00", "2026-11-25T10:00:00.500000Z"),
    (datetime(2026, 11, 25, 10, 0, tzinfo=UTC), "2026-11-25T10:00:00.000000Z"),
    (
        datetime(2026, 11, 25, 12, 0, tzinfo=timezone(timedelta(hours=2))),
        "2026-11-25T10:00:00.000000Z",
    ),
    (datetime(2026, 11, 25, 10, 0, 0, 7), "2026-11-25T10:00:00.000007Z"),  # naive: UTC
]


@pytest.mark.parametrize(("value", "expected"), MICRO)
def test_micro_time(value: Any, expected: str) -> None:
    assert micro_time(value, "renewTime") == expected


@pytest.mark.parametrize(
    ("value", "tail", "want"),
    [
        ("2026-11-25T10:00:00Z", "Z", ".000000"),
        ("2026-11-25T10:00:00+00:00", "+00:00", ".000000"),
        ("2026-11-25T10:00:00.12Z", ".12Z", ".000000"),
        ("2026-11-25T10:00:00.123456", "", "Z07:00"),
        ("2026-11-25T10:00:00.1234567Z", "7Z", "Z07:00"),
    ],
)
def test_micro_time_errors(value: str, tail: str, want: str) -> None:
    with pytest.raises(ApiError) as info:
        micro_time(value, "renewTime")
    assert info.value.code == 400
    assert info.value.message.endswith(
        f'parsing time "{value}" as "2006-01-02T15:04:05.000000Z07:00": '
        f'cannot parse "{tail}" as "{want}"'
    )


def test_decode_spec() -> None:
    assert decode_spec(None) == {}
    assert decode_spec({"holderIdentity": "a", "bogus": 1, "renewTime": None}) == {
        "holderIdentity": "a"
    }
    for bad in ({"leaseDurationSeconds": 2**31}, {"leaseDurationSeconds": 1.5}, [1], "x"):
        with pytest.raises(ApiError):
            decode_spec(bad)


@pytest.mark.parametrize(
    ("spec", "ok"),
    [
        ({}, True),
        ({"leaseDurationSeconds": 1, "leaseTransitions": 0}, True),
        ({"leaseDurationSeconds": 0}, False),
        ({"leaseTransitions": -1}, False),
        ({"preferredHolder": "b"}, False),
        ({"preferredHolder": "b", "strategy": "OldestEmulationVersion"}, True),
    ],
)
def test_validate_lease(spec: dict[str, Any], ok: bool) -> None:
    lease = {"metadata": {"name": "leader"}, "spec": spec}
    if ok:
        validate_lease(lease)
    else:
        with pytest.raises(ApiError) as info:
            validate_lease(lease)
        assert info.value.code == 422


C = "/apis/coordination.k8s.io/v1"
SSAR = "selfsubjectaccessreviews"
ROUTES = [
    (f"{C}/namespaces/x/leases", "GET", ("leases", "x", None, "list")),
    (f"{C}/namespaces/x/leases", "POST", ("leases", "x", None, "create")),
    (f"{C}/namespaces/x/leases/l", "PUT", ("leases", "x", "l", "update")),
    (f"{C}/leases", "GET", ("leases", None, None, "list")),
    (f"{C}/leases", "POST", ("leases", None, None, "")),
    (f"{C}/namespaces/x/leases/l/status", "GET", ("leases", "x", "l", "")),
    (f"/apis/authorization.k8s.io/v1/{SSAR}", "POST", (SSAR, None, None, "create")),
    (f"/apis/authorization.k8s.io/v1/{SSAR}", "GET", (SSAR, None, None, "")),
    ("/api/v1/namespaces/x/pods/p/status", "PATCH", ("pods", "x", "p", "patch")),
]


@pytest.mark.parametrize(("path", "method", "expected"), ROUTES)
def test_routes(path: str, method: str, expected: tuple[Any, ...]) -> None:
    route = route_of(path)
    assert route is not None
    verb = verb_of(method, route, {})
    assert (route.resource, route.namespace, route.name, verb) == expected


def test_unrouted_paths() -> None:
    for path in ("/apis/coordination.k8s.io/v2/leases", "/apis/apps/v1/deployments", "/api/v2"):
        assert route_of(path) is None
    assert discovery("/apis/apps", "h:1") is None and discovery("/api/v1/pods", "h:1") is None


def test_denial_matching_and_messages() -> None:
    rule = ("update", "x", "leases")
    assert matches_denial(rule, "update", "x", "leases")
    assert matches_denial(rule, "*", "x", "leases") and matches_denial(rule, "update", "x", "*")
    assert not matches_denial(rule, "update", "y", "leases")
    assert not matches_denial(rule, "update", None, "leases")
    assert not matches_denial(rule, "update", "x", "pods")
    assert matches_denial(("list", None, "pods"), "list", "", "pods"), "'' is the cluster scope"
    assert forbidden("u", "get", "pods", "status", "x") == (
        'pods is forbidden: User "u" cannot get resource "pods/status" in API group "" '
        'in the namespace "x"'
    )
