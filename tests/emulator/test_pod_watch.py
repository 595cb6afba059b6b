"""Pod watches through kubernetes.watch.Watch and raw streams: history replay, timeoutSeconds
and the terminating chunk, bookmarks, the client's own reconnects, and 410 Gone (compacted
versions, expire_next_watch as an ERROR event or an HTTP 410).
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from kubernetes import client as k8s
from kubernetes import watch

from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.podkit import NS, body_of, names, pod, raises, seen, stream, watches


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
