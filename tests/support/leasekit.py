"""Shared helpers of the lease tests (test_leases.py, test_lease_watch.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from kubernetes import client as k8s

from tests.support.fakes.kubeapi import KubeEmulator

NS = "servo"
T0 = "2026-11-25T10:00:00.123456Z"
T1 = "2026-11-25T10:00:05.000001Z"
CONFLICT = (
    'Operation cannot be fulfilled on leases.coordination.k8s.io "leader": the object has been '
    "modified; please apply your changes to the latest version and try again"
)


def lease(name: str = "leader", holder: str = "a", **spec: Any) -> dict[str, Any]:
    base = {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": T0}
    return {"metadata": {"name": name, "namespace": NS}, "spec": {**base, **spec}}


def body_of(e: k8s.ApiException) -> dict[str, Any]:
    doc = json.loads(e.body)
    assert doc["kind"] == "Status" and doc["code"] == e.status
    return dict(doc)


def raises(call: Any, *args: Any, **kw: Any) -> k8s.ApiException:
    with pytest.raises(k8s.ApiException) as info:
        call(*args, **kw)
    return info.value


def raw(response: Any) -> dict[str, Any]:
    return dict(json.loads(response.data))


def post(emu: KubeEmulator, body: Any, name: str | None = None) -> requests.Response:
    """Bytes the client's own validation would not let through: POST (or PUT to `name`)."""
    url = f"{emu.url}/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"
    if name is None:
        return requests.post(url, json=body, timeout=5)
    return requests.put(f"{url}/{name}", json=body, timeout=5)
