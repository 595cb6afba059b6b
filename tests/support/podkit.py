"""Shared helpers of the pod API tests (test_pod_*.py): a pod body, the Status body of an
ApiException, one watch's events and the watch requests the emulator recorded.
The `emu` and `core` fixtures live in conftest.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import watch

from tests.support.fakes.kubeapi import KubeEmulator

NS = "default"


def pod(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    node: str | None = None,
    phase: str | None = None,
    finalizers: list[str] | None = None,
    namespace: str = NS,
) -> dict[str, Any]:
    p: dict[str, Any] = {
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {"containers": [{"name": "main", "image": "busybox:1"}]},
    }
    if node:
        p["spec"]["nodeName"] = node
    if phase:
        p["status"] = {"phase": phase}
    if finalizers:
        p["metadata"]["finalizers"] = finalizers
    return p


def body_of(e: k8s.ApiException) -> dict[str, Any]:
    doc = json.loads(e.body)
    assert doc["kind"] == "Status" and doc["code"] == e.status
    return dict(doc)


def names(items: Any) -> list[str]:
    return [p.metadata.name for p in items]


def stream(core: k8s.CoreV1Api, w: watch.Watch | None = None, **kw: Any) -> list[dict[str, Any]]:
    """All events of one watch (it must end by timeoutSeconds)."""
    w = w or watch.Watch()
    kw.setdefault("timeout_seconds", 1)
    return list(w.stream(core.list_namespaced_pod, NS, **kw))


def seen(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [
        (e["type"], e["raw_object"]["metadata"]["name"]) for e in events if e["type"] != "BOOKMARK"
    ]


def watches(emu: KubeEmulator) -> list[Any]:
    return [r for r in emu.requests if r.verb == "watch"]


def raises(call: Any, *args: Any, **kw: Any) -> k8s.ApiException:
    with pytest.raises(k8s.ApiException) as info:
        call(*args, **kw)
    return info.value
