"""Listing pods through the official client: items and resourceVersion, paging with limit
and continue tokens over one snapshot, expired tokens (410), and keep-alive connections.
"""

from __future__ import annotations

import json

from kubernetes import client as k8s

from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.podkit import NS, body_of, names, pod, raises


def test_list_gives_items_and_the_current_resource_version(
    emu: KubeEmulator, core: k8s.CoreV1Api
) -> None:
    for n in ("b", "a", "c"):
        emu.create_pod(pod(n))
    emu.create_pod(pod("other", namespace="elsewhere"))
    got = core.list_namespaced_pod(NS)
    assert names(got.items) == ["a", "b", "c"]
    assert got.metadata.resource_version == emu.resource_version == "5"
    assert got.metadata._continue is None and got.metadata.remaining_item_count is None
    assert names(core.list_pod_for_all_namespaces().items) == ["a", "b", "c", "other"]
    raw = json.loads(core.list_namespaced_pod(NS, _preload_content=False).data)
    assert raw["kind"] == "PodList" and raw["apiVersion"] == "v1"
    assert all("kind" not in item and "apiVersion" not in item for item in raw["items"])


def test_paging_serves_one_consistent_snapshot(emu: KubeEmulator, core: k8s.CoreV1Api) -> None:
    for i in range(5):
        emu.create_pod(pod(f"p{i}"))
    first = core.list_namespaced_pod(NS, limit=2)
    assert names(first.items) == ["p0", "p1"]
    assert first.metadata.remaining_item_count == 3 and first.metadata._continue
    # Changes after the first page do not show in the following pages.
    emu.delete_pod(NS, "p3")
    emu.create_pod(pod("p9"))
    second = core.list_namespaced_pod(NS, limit=2, _continue=first.metadata._continue)
    assert names(second.items) == ["p2", "p3"]
    assert second.metadata.resource_version == first.metadata.resource_version
    assert second.metadata.remaining_item_count == 1
    last = core.list_namespaced_pod(NS, limit=2, _continue=second.metadata._continue)
    assert names(last.items) == ["p4"]
    assert last.metadata._continue is None and last.metadata.remaining_item_count is None
    assert names(core.list_namespaced_pod(NS).items) == ["p0", "p1", "p2", "p4", "p9"]


def test_selector_pages_have_no_remaining_item_count(
    emu: KubeEmulator, core: k8s.CoreV1Api
) -> None:
    for i in range(3):
        emu.create_pod(pod(f"p{i}", labels={"app": "x"}))
    page = core.list_namespaced_pod(NS, limit=1, label_selector="app=x")
    assert names(page.items) == ["p0"] and page.metadata._continue
    assert page.metadata.remaining_item_count is None


def test_expired_continue_token_is_410(emu: KubeEmulator, core: k8s.CoreV1Api) -> None:
    for i in range(3):
        emu.create_pod(pod(f"p{i}"))
    token = core.list_namespaced_pod(NS, limit=1).metadata._continue
    emu.compact()
    e = raises(core.list_namespaced_pod, NS, limit=1, _continue=token)
    assert e.status == 410 and body_of(e)["reason"] == "Expired"
    assert "continue parameter is too old" in body_of(e)["message"]
    e = raises(core.list_namespaced_pod, NS, _continue="garbage")
    assert e.status == 400


def test_keep_alive_serves_many_requests_on_one_connection(
    emu: KubeEmulator, core: k8s.CoreV1Api
) -> None:
    emu.create_pod(pod("a"))
    for _ in range(4):
        assert names(core.list_namespaced_pod(NS).items) == ["a"]
    assert raises(core.read_namespaced_pod, "nope", NS).status == 404
    assert core.read_namespaced_pod("a", NS).metadata.name == "a"
    peers = {r.peer for r in emu.requests}
    assert len(emu.requests) == 6 and len(peers) == 1
