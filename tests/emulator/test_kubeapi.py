"""The Kubernetes API emulator as the official client sees it.

Every test drives the emulator through kubernetes.client.CoreV1Api and kubernetes.watch.Watch
(or raw `_preload_content=False` responses) and checks what a real API server would answer.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from kubernetes import client as k8s
from kubernetes import watch

from tests.fakes.kubeapi import KubeEmulator

NS = "default"


@pytest.fixture
def emu() -> Iterator[KubeEmulator]:
    with KubeEmulator(bookmark_interval_s=0.2) as e:
        yield e


@pytest.fixture
def core(emu: KubeEmulator) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(emu.api_client())


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


# --- list ----------------------------------------------------------------------------------


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


PODS = {
    "a": {"app": "web", "tier": "fe"},
    "b": {"app": "web", "tier": "be"},
    "c": {"app": "db", "rank": "3"},
    "d": {},
}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", ["a", "b"]),
        ("app==web", ["a", "b"]),
        ("app!=web", ["c", "d"]),
        ("tier in (fe,be)", ["a", "b"]),
        ("tier in (fe)", ["a"]),
        ("app notin (web)", ["c", "d"]),
        ("tier", ["a", "b"]),
        ("!tier", ["c", "d"]),
        ("app=web,tier!=fe", ["b"]),
        ("app in (web,db),!tier", ["c"]),
        ("rank>2", ["c"]),
        ("rank<3", []),
        ("nope", []),
    ],
)
def test_label_selectors(
    emu: KubeEmulator, core: k8s.CoreV1Api, selector: str, expected: list[str]
) -> None:
    for n, labels in PODS.items():
        emu.create_pod(pod(n, labels=labels))
    assert names(core.list_namespaced_pod(NS, label_selector=selector).items) == expected


@pytest.mark.parametrize("selector", ["app in ()", "app=web=x", "!app=web", "a b"])
def test_malformed_label_selector_is_400(core: k8s.CoreV1Api, selector: str) -> None:
    e = raises(core.list_namespaced_pod, NS, label_selector=selector)
    assert e.status == 400 and body_of(e)["reason"] == "BadRequest"


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("metadata.name=b", ["b"]),
        ("metadata.name!=b", ["a", "c"]),
        ("status.phase=Running", ["a", "b"]),
        ("status.phase==Pending", ["c"]),
        ("spec.nodeName=node-1", ["a"]),
        ("spec.nodeName=", ["c"]),
        ("spec.nodeName!=,status.phase=Running", ["a", "b"]),
        ("metadata.namespace=default", ["a", "b", "c"]),
    ],
)
def test_field_selectors(
    emu: KubeEmulator, core: k8s.CoreV1Api, selector: str, expected: list[str]
) -> None:
    emu.create_pod(pod("a", node="node-1", phase="Running"))
    emu.create_pod(pod("b", node="node-2", phase="Running"))
    emu.create_pod(pod("c", phase="Pending"))
    assert names(core.list_namespaced_pod(NS, field_selector=selector).items) == expected


def test_unsupported_field_selector_is_400(core: k8s.CoreV1Api) -> None:
    e = raises(core.list_namespaced_pod, NS, field_selector="spec.image=x")
    assert e.status == 400
    assert body_of(e)["message"] == "field label not supported: spec.image"
    e = raises(core.list_namespaced_pod, NS, watch=True, field_selector="spec.image=x")
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


# --- watch ---------------------------------------------------------------------------------


def test_watch_replays_history_after_the_version(emu: KubeEmulator, core: k8s.CoreV1Api) -> None:
    emu.create_pod(pod("before"))
    rv0 = emu.resource_version
    emu.create_pod(pod("p"))
    emu.update_pod(NS, "p", lambda p: p["metadata"]["labels"].update(x="1"))
    emu.delete_pod(NS, "p")
    started = time.monotonic()
    events = stream(core, resource_version=rv0, timeout_seconds=1)
    elapsed = time.monotonic() - started
    assert seen(events) == [("ADDED", "p"), ("MODIFIED", "p"), ("DELETED", "p")]
    rvs = [int(e["object"].metadata.resource_version) for e in events]
    assert rvs == [int(rv0) + 1, int(rv0) + 2, int(rv0) + 3]
    assert events[1]["object"].metadata.labels == {"x": "1"}
    assert 0.9 <= elapsed < 2.5, "timeoutSeconds ends the stream cleanly"
    # From the middle: only what came after.
    assert seen(stream(core, resource_version=str(int(rv0) + 2))) == [("DELETED", "p")]


def test_watch_from_zero_starts_with_the_current_state(
    emu: KubeEmulator, core: k8s.CoreV1Api
) -> None:
    emu.create_pod(pod("a"))
    emu.create_pod(pod("b"))
    emu.delete_pod(NS, "a")
    assert seen(stream(core, resource_version="0")) == [("ADDED", "b")]


def test_watch_that_times_out_ends_with_the_terminating_chunk(
    emu: KubeEmulator, core: k8s.CoreV1Api
) -> None:
    rv = emu.resource_version
    emu.create_pod(pod("a"))
    resp = core.list_namespaced_pod(
        NS, watch=True, resource_version=rv, timeout_seconds=1, _preload_content=False
    )
    data = b"".join(resp.stream(None))  # raises if the stream were cut
    resp.release_conn()
    [line] = data.decode().splitlines()
    assert json.loads(line)["type"] == "ADDED"
    # The connection is reused for the next request.
    assert names(core.list_namespaced_pod(NS).items) == ["a"]
    assert emu.requests[-1].peer == emu.requests[-2].peer


def test_bookmarks_move_the_watch_resource_version(emu: KubeEmulator, core: k8s.CoreV1Api) -> None:
    rv0 = emu.resource_version
    emu.create_pod(pod("elsewhere", namespace="other"))  # invisible here, but moves the version
    w = watch.Watch()
    events = stream(core, w, resource_version=rv0, allow_watch_bookmarks=True)
    marks = [e for e in events if e["type"] == "BOOKMARK"]
    assert seen(events) == [] and len(marks) >= 3
    assert marks[-1]["raw_object"]["metadata"]["resourceVersion"] == emu.resource_version
    assert marks[-1]["raw_object"]["kind"] == "Pod"
    assert w.resource_version == emu.resource_version != rv0
    assert watches(emu)[0].query["allowWatchBookmarks"] == "true"
    # Without allowWatchBookmarks there are none.
    assert stream(core, resource_version=rv0) == []


def test_watch_reconnects_by_itself_from_the_last_version(emu: KubeEmulator) -> None:
    emu.min_request_timeout_s = 0.4  # the server ends watches that set no timeoutSeconds
    core = k8s.CoreV1Api(emu.api_client())
    rv0 = emu.resource_version

    def churn() -> None:
        for i in range(3):
            time.sleep(0.5)
            emu.create_pod(pod(f"p{i}"))

    threading.Thread(target=churn, daemon=True).start()
    w = watch.Watch()
    got: list[tuple[str, str]] = []
    for ev in w.stream(core.list_namespaced_pod, NS, resource_version=rv0):
        got.append((ev["type"], ev["object"].metadata.name))
        if len(got) == 3:
            w.stop()
    assert got == [("ADDED", "p0"), ("ADDED", "p1"), ("ADDED", "p2")]
    rvs = [int(r.query["resourceVersion"]) for r in watches(emu)]
    assert len(rvs) >= 3, "the Watch re-watches after each server timeout"
    assert rvs[0] == int(rv0) and rvs == sorted(rvs) and rvs[-1] > int(rv0)
    assert "timeoutSeconds" not in watches(emu)[0].query


def test_watch_reconnects_from_a_bookmark(emu: KubeEmulator) -> None:
    emu.min_request_timeout_s = 0.5
    emu.bookmark_interval_s = 0.1
    core = k8s.CoreV1Api(emu.api_client())
    rv0 = emu.resource_version
    emu.create_pod(pod("elsewhere", namespace="other"))
    w = watch.Watch()
    deadline = time.monotonic() + 1.2
    for ev in w.stream(
        core.list_namespaced_pod, NS, resource_version=rv0, allow_watch_bookmarks=True
    ):
        assert ev["type"] == "BOOKMARK"
        if time.monotonic() > deadline:
            w.stop()
    later = [r.query["resourceVersion"] for r in watches(emu)[1:]]
    assert later and set(later) == {emu.resource_version}


def test_watch_from_a_compacted_version_is_410(emu: KubeEmulator, core: k8s.CoreV1Api) -> None:
    rv0 = emu.resource_version
    emu.create_pod(pod("a"))
    emu.compact()
    e = raises(stream, core, resource_version=rv0)  # timeoutSeconds set: no retry
    assert e.status == 410 and "Expired" in str(e.reason)
    assert len(watches(emu)) == 1
    # Without timeoutSeconds the Watch retries once from the same version, then gives up.
    w = watch.Watch()
    with pytest.raises(k8s.ApiException) as info:
        list(w.stream(core.list_namespaced_pod, NS, resource_version=rv0))
    assert info.value.status == 410
    assert [r.query["resourceVersion"] for r in watches(emu)[1:]] == [rv0, rv0]
    # The raw stream carries an ERROR event with a 410 Status.
    resp = core.list_namespaced_pod(NS, watch=True, resource_version=rv0, _preload_content=False)
    [line] = b"".join(resp.stream(None)).decode().splitlines()
    event = json.loads(line)
    assert event["type"] == "ERROR" and event["object"]["code"] == 410
    assert event["object"]["reason"] == "Expired" and rv0 in event["object"]["message"]
    # From the compaction point on, watching works.
    emu.create_pod(pod("b"))
    assert seen(stream(core, resource_version=e and str(int(rv0) + 1))) == [("ADDED", "b")]


def test_expire_next_watch_once(emu: KubeEmulator, core: k8s.CoreV1Api) -> None:
    rv0 = emu.resource_version
    emu.create_pod(pod("a"))
    emu.expire_next_watch()
    assert raises(stream, core, resource_version=rv0).status == 410
    emu.expire_next_watch()
    # Without timeoutSeconds the Watch's single retry after a 410 ERROR succeeds.
    w = watch.Watch()
    for ev in w.stream(core.list_namespaced_pod, NS, resource_version=rv0):
        assert (ev["type"], ev["object"].metadata.name) == ("ADDED", "a")
        w.stop()
    assert len(watches(emu)) == 3


def test_expire_next_watch_as_http_410(emu: KubeEmulator, core: k8s.CoreV1Api) -> None:
    emu.expire_next_watch(as_http=True)
    e = raises(stream, core, resource_version=emu.resource_version)
    assert e.status == 410 and body_of(e)["reason"] == "Expired"
    assert watches(emu)[-1].status == 410
    assert stream(core, resource_version=emu.resource_version) == []


def test_invalid_watch_resource_version_is_400(core: k8s.CoreV1Api) -> None:
    assert raises(stream, core, resource_version="abc").status == 400


def test_objects_entering_and_leaving_a_selector(emu: KubeEmulator, core: k8s.CoreV1Api) -> None:
    rv0 = emu.resource_version
    emu.create_pod(pod("x", labels={"app": "web"}))
    emu.create_pod(pod("y", labels={"app": "db"}))
    emu.update_pod(NS, "x", lambda p: p["metadata"]["labels"].update(app="db"))
    emu.update_pod(NS, "y", lambda p: p["metadata"]["labels"].update(app="web"))
    emu.update_pod(NS, "y", lambda p: p["metadata"]["labels"].update(v="2"))
    emu.delete_pod(NS, "y")
    events = stream(core, resource_version=rv0, label_selector="app=web")
    assert seen(events) == [
        ("ADDED", "x"),
        ("DELETED", "x"),
        ("ADDED", "y"),
        ("MODIFIED", "y"),
        ("DELETED", "y"),
    ]
    # Leaving: the object as it was before, at the version of the change.
    left = events[1]["raw_object"]["metadata"]
    assert left["labels"] == {"app": "web"} and left["resourceVersion"] == str(int(rv0) + 3)


# --- writes --------------------------------------------------------------------------------


def test_create(emu: KubeEmulator, core: k8s.CoreV1Api) -> None:
    body = pod("a", phase="Running")
    body["metadata"]["uid"] = "client-chosen"
    created, code, _ = core.create_namespaced_pod_with_http_info(NS, body)
    assert code == 201
    assert created.metadata.uid not in (None, "client-chosen") and len(created.metadata.uid) == 36
    assert created.metadata.creation_timestamp is not None
    assert created.metadata.resource_version == emu.resource_version
    assert created.status.phase == "Pending" and created.status.qos_class == "BestEffort"
    gen = core.create_namespaced_pod(NS, {**pod(""), "metadata": {"generateName": "job-"}})
    assert gen.metadata.name.startswith("job-") and len(gen.metadata.name) == 9
    e = raises(core.create_namespaced_pod, NS, pod("a"))
    assert e.status == 409 and body_of(e)["reason"] == "AlreadyExists"
    assert body_of(e)["message"] == 'pods "a" already exists'
    assert raises(core.create_namespaced_pod, NS, pod("b", namespace="x")).status == 400
    assert raises(core.create_namespaced_pod, NS, pod("Bad_Name")).status == 422
    assert raises(core.create_namespaced_pod, NS, {"metadata": {"name": "c"}}).status == 422


def test_get_missing_is_404(core: k8s.CoreV1Api) -> None:
    e = raises(core.read_namespaced_pod, "nope", NS)
    assert e.status == 404 and body_of(e)["reason"] == "NotFound"
    assert body_of(e)["message"] == 'pods "nope" not found'


def test_replace_checks_the_resource_version(emu: KubeEmulator, core: k8s.CoreV1Api) -> None:
    emu.create_pod(pod("a"))
    current = core.read_namespaced_pod("a", NS)
    stale = current.metadata.resource_version
    current.metadata.labels = {"v": "1"}
    replaced = core.replace_namespaced_pod("a", NS, current)
    assert replaced.metadata.labels == {"v": "1"}
    assert int(replaced.metadata.resource_version) == int(stale) + 1
    current.metadata.labels = {"v": "2"}  # still carries the old version
    e = raises(core.replace_namespaced_pod, "a", NS, current)
    assert e.status == 409 and body_of(e)["reason"] == "Conflict"
    assert "the object has been modified" in body_of(e)["message"]
    assert raises(core.replace_namespaced_pod, "b", NS, replaced).status in (400, 404)


def test_merge_patch(emu: KubeEmulator, core: k8s.CoreV1Api) -> None:
    emu.create_pod(pod("a", labels={"keep": "1", "drop": "1"}, phase="Running"))
    got = core.patch_namespaced_pod(
        "a",
        NS,
        {"metadata": {"labels": {"drop": None, "new": "2"}}, "status": {"phase": "Failed"}},
        _content_type="application/merge-patch+json",
    )
    assert got.metadata.labels == {"keep": "1", "new": "2"}
    assert got.status.phase == "Running", "the main resource ignores status"
    e = raises(
        core.patch_namespaced_pod,
        "a",
        NS,
        {"metadata": {"resourceVersion": "1"}},
        _content_type="application/merge-patch+json",
    )
    assert e.status == 409


def test_strategic_merge_patch(emu: KubeEmulator, core: k8s.CoreV1Api) -> None:
    p = pod("a", finalizers=["one"])
    p["spec"]["containers"].append({"name": "side", "image": "side:1"})
    emu.create_pod(p)
    smp = "application/strategic-merge-patch+json"
    got = core.patch_namespaced_pod(
        "a",
        NS,
        {
            "metadata": {"finalizers": ["two"]},
            "spec": {"containers": [{"name": "side", "image": "side:2"}]},
        },
        _content_type=smp,
    )
    assert [(c.name, c.image) for c in got.spec.containers] == [
        ("main", "busybox:1"),
        ("side", "side:2"),
    ]
    assert got.metadata.finalizers == ["one", "two"]
    # Removing a container is a spec change the server forbids.
    e = raises(
        core.patch_namespaced_pod,
        "a",
        NS,
        {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}},
        _content_type=smp,
    )
    assert e.status == 422 and "pod updates may not change fields" in body_of(e)["message"]
    # `$patch: delete` removes a keyed list item where the server allows the change.
    conditions = [{"type": "Ready", "status": "True"}, {"type": "Scheduled", "status": "True"}]
    core.patch_namespaced_pod_status(
        "a", NS, {"status": {"conditions": conditions}}, _content_type=smp
    )
    got = core.patch_namespaced_pod_status(
        "a",
        NS,
        {"status": {"conditions": [{"type": "Ready", "$patch": "delete"}]}},
        _content_type=smp,
    )
    assert [(c.type, c.status) for c in got.status.conditions] == [("Scheduled", "True")]


def test_json_patch(emu: KubeEmulator, core: k8s.CoreV1Api) -> None:
    emu.create_pod(pod("a", labels={"x": "1"}))
    ops = [
        {"op": "test", "path": "/metadata/labels/x", "value": "1"},
        {"op": "add", "path": "/metadata/labels/y", "value": "2"},
        {"op": "replace", "path": "/spec/containers/0/image", "value": "busybox:2"},
    ]
    got = core.patch_namespaced_pod("a", NS, ops)  # the client's default: json-patch
    assert emu.requests[-1].headers["Content-Type"] == "application/json-patch+json"
    assert got.metadata.labels == {"x": "1", "y": "2"}
    assert got.spec.containers[0].image == "busybox:2"
    rv = got.metadata.resource_version
    e = raises(
        core.patch_namespaced_pod,
        "a",
        NS,
        [
            {"op": "test", "path": "/metadata/labels/x", "value": "nope"},
            {"op": "add", "path": "/metadata/labels/z", "value": "3"},
        ],
    )
    assert e.status == 422 and body_of(e)["reason"] == "Invalid"
    assert core.read_namespaced_pod("a", NS).metadata.resource_version == rv
    e = raises(core.patch_namespaced_pod, "a", NS, {"a": 1}, _content_type="application/json")
    assert e.status == 415


def test_status_patch_changes_only_status(emu: KubeEmulator, core: k8s.CoreV1Api) -> None:
    emu.create_pod(pod("a", labels={"x": "1"}))
    got = core.patch_namespaced_pod_status(
        "a",
        NS,
        {"metadata": {"labels": {"x": "2"}}, "status": {"phase": "Running"}},
        _content_type="application/merge-patch+json",
    )
    assert got.status.phase == "Running" and got.metadata.labels == {"x": "1"}
    assert emu.requests[-1].path.endswith("/pods/a/status")
    assert emu.get_pod(NS, "a")["status"]["phase"] == "Running"  # type: ignore[index]


def test_no_op_patch_keeps_the_version_and_sends_no_event(
    emu: KubeEmulator, core: k8s.CoreV1Api
) -> None:
    emu.create_pod(pod("a", labels={"x": "1"}))
    rv = emu.resource_version
    got = core.patch_namespaced_pod(
        "a", NS, {"metadata": {"labels": {"x": "1"}}}, _content_type="application/merge-patch+json"
    )
    assert got.metadata.resource_version == rv == emu.resource_version
    assert stream(core, resource_version=rv) == []


def test_delete_with_finalizers(emu: KubeEmulator, core: k8s.CoreV1Api) -> None:
    emu.create_pod(pod("a", finalizers=["f/one", "f/two"]))
    rv0 = emu.resource_version
    marked = core.delete_namespaced_pod("a", NS)
    assert marked.metadata.deletion_timestamp is not None
    assert core.read_namespaced_pod("a", NS).metadata.deletion_timestamp is not None
    again = core.delete_namespaced_pod("a", NS)  # deleting again changes nothing
    assert again.metadata.resource_version == marked.metadata.resource_version
    merge = "application/merge-patch+json"
    core.patch_namespaced_pod("a", NS, {"metadata": {"finalizers": ["f/two"]}}, _content_type=merge)
    assert core.read_namespaced_pod("a", NS).metadata.finalizers == ["f/two"]
    core.patch_namespaced_pod("a", NS, {"metadata": {"finalizers": None}}, _content_type=merge)
    assert raises(core.read_namespaced_pod, "a", NS).status == 404
    events = stream(core, resource_version=rv0)
    assert seen(events) == [("MODIFIED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    assert events[0]["object"].metadata.deletion_timestamp is not None
    assert events[2]["object"].metadata.resource_version == emu.resource_version


def test_delete_without_finalizers_and_finalize(emu: KubeEmulator, core: k8s.CoreV1Api) -> None:
    emu.create_pod(pod("plain"))
    emu.create_pod(pod("held", finalizers=["batch.kubernetes.io/job-tracking"]))
    rv0 = emu.resource_version
    gone = core.delete_namespaced_pod("plain", NS)
    assert gone.metadata.name == "plain"
    assert raises(core.read_namespaced_pod, "plain", NS).status == 404
    assert raises(core.delete_namespaced_pod, "plain", NS).status == 404
    emu.delete_pod(NS, "held", finalize=True)
    assert emu.get_pod(NS, "held") is None
    events = stream(core, resource_version=rv0)
    assert seen(events) == [("DELETED", "plain"), ("MODIFIED", "held"), ("DELETED", "held")]
    assert events[1]["object"].metadata.deletion_timestamp is not None


def test_delete_preconditions(emu: KubeEmulator, core: k8s.CoreV1Api) -> None:
    emu.create_pod(pod("a"))
    wrong = k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(uid="not-the-uid"))
    e = raises(core.delete_namespaced_pod, "a", NS, body=wrong)
    assert e.status == 409 and "Precondition failed" in body_of(e)["message"]
    uid = core.read_namespaced_pod("a", NS).metadata.uid
    right = k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(uid=uid))
    assert core.delete_namespaced_pod("a", NS, body=right).metadata.uid == uid


# --- authentication and authorization --------------------------------------------------------


def test_bad_or_missing_token_is_401() -> None:
    with KubeEmulator(token="right") as secured:
        for token in ("wrong", None):
            e = raises(k8s.CoreV1Api(secured.api_client(token=token)).list_namespaced_pod, NS)
            assert e.status == 401
            assert body_of(e)["reason"] == "Unauthorized"
            assert body_of(e)["message"] == "Unauthorized"
        assert k8s.CoreV1Api(secured.api_client()).list_namespaced_pod(NS).items == []
        assert secured.requests[-1].headers["Authorization"] == "Bearer right"


def test_rbac_denials_are_403_with_the_servers_message(
    emu: KubeEmulator, core: k8s.CoreV1Api
) -> None:
    emu.deny("list", "x")
    emu.deny("watch", None)
    e = raises(core.list_namespaced_pod, "x")
    assert e.status == 403 and body_of(e)["reason"] == "Forbidden"
    assert body_of(e)["message"] == (
        'pods is forbidden: User "system:serviceaccount:servo:servo" cannot list resource '
        '"pods" in API group "" in the namespace "x"'
    )
    assert core.list_namespaced_pod("y").items == []
    e = raises(core.list_pod_for_all_namespaces, watch=True, timeout_seconds=1)
    assert e.status == 403 and body_of(e)["message"].endswith("at the cluster scope")
    emu.allow("list", "x")
    assert core.list_namespaced_pod("x").items == []


# --- fault injection ---------------------------------------------------------------------


def test_fail_next_fails_exactly_n_requests(emu: KubeEmulator, core: k8s.CoreV1Api) -> None:
    emu.create_pod(pod("a"))
    emu.fail_next(2, 500)
    for _ in range(2):
        e = raises(core.list_namespaced_pod, NS)
        assert e.status == 500 and body_of(e)["reason"] == "InternalError"
    assert names(core.list_namespaced_pod(NS).items) == ["a"]
    emu.fail_next(1, 503, verb="get")
    assert names(core.list_namespaced_pod(NS).items) == ["a"]
    assert raises(core.read_namespaced_pod, "a", NS).status == 503
    assert core.read_namespaced_pod("a", NS).metadata.name == "a"


def _watch_in_thread(
    core: k8s.CoreV1Api, rv: str, **kw: Any
) -> tuple[threading.Thread, list[Any], list[BaseException]]:
    got: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for ev in watch.Watch().stream(
                core.list_namespaced_pod, NS, resource_version=rv, timeout_seconds=5, **kw
            ):
                got.append(ev)
        except BaseException as e:  # noqa: BLE001 - the test inspects it
            errors.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, got, errors


def test_drop_watches_breaks_the_stream(emu: KubeEmulator, core: k8s.CoreV1Api) -> None:
    rv = emu.resource_version
    t, got, errors = _watch_in_thread(core, rv)
    emu.create_pod(pod("a"))
    assert emu.wait_for(lambda: len(got) == 1)
    started = time.monotonic()
    emu.drop_watches()
    t.join(3)
    assert not t.is_alive() and time.monotonic() - started < 2
    assert [type(e) for e in errors] == [urllib3.exceptions.ProtocolError]
    # Raw: reading the broken stream raises too.
    resp = core.list_namespaced_pod(
        NS, watch=True, resource_version=rv, timeout_seconds=5, _preload_content=False
    )
    chunks = resp.stream(None)
    assert json.loads(next(chunks))["type"] == "ADDED"
    emu.drop_watches()
    with pytest.raises(urllib3.exceptions.ProtocolError):
        list(chunks)


def test_drop_watch_after_n_events(emu: KubeEmulator, core: k8s.CoreV1Api) -> None:
    rv = emu.resource_version
    for i in range(4):
        emu.create_pod(pod(f"p{i}"))
    emu.drop_watch_after(2)
    t, got, errors = _watch_in_thread(core, rv)
    t.join(3)
    assert not t.is_alive()
    assert [e["object"].metadata.name for e in got] == ["p0", "p1"]
    assert [type(e) for e in errors] == [urllib3.exceptions.ProtocolError]
    assert len(stream(core, resource_version=rv)) == 4, "only the next watch is cut"


def test_split_chunks(emu: KubeEmulator, core: k8s.CoreV1Api) -> None:
    rv = emu.resource_version
    for i in range(3):
        emu.create_pod(pod(f"p{i}", labels={"n": str(i)}))
    emu.split_chunks = True
    resp = core.list_namespaced_pod(
        NS, watch=True, resource_version=rv, timeout_seconds=1, _preload_content=False
    )
    chunks = list(resp.stream(None))
    lines = b"".join(chunks).decode().splitlines()
    assert len(lines) == 3 and len(chunks) >= 3 * len(lines)
    assert not any(c.endswith(b"\n") for c in chunks[:2]), "an event spans chunks"
    assert [json.loads(line)["object"]["metadata"]["name"] for line in lines] == ["p0", "p1", "p2"]
    events = stream(core, resource_version=rv)
    assert [(e["object"].metadata.name, e["object"].metadata.labels) for e in events] == [
        (f"p{i}", {"n": str(i)}) for i in range(3)
    ]


def test_hang_watches_sends_nothing_until_the_timeout(
    emu: KubeEmulator, core: k8s.CoreV1Api
) -> None:
    rv = emu.resource_version
    emu.create_pod(pod("a"))
    emu.hang_watches = True
    started = time.monotonic()
    assert stream(core, resource_version=rv, allow_watch_bookmarks=True) == []
    assert time.monotonic() - started >= 0.9
    resp = core.list_namespaced_pod(
        NS,
        watch=True,
        resource_version=rv,
        timeout_seconds=5,
        _preload_content=False,
        _request_timeout=(2, 0.3),
    )
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        list(resp.stream(None))
    emu.hang_watches = False
    assert seen(stream(core, resource_version=rv)) == [("ADDED", "a")]
