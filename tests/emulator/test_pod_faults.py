"""Authentication (401) and RBAC denials (403) on the pod API, and the emulator's injected
faults: failed requests, dropped, cut, split and hung watch streams.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import urllib3
from kubernetes import client as k8s
from kubernetes import watch

from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.podkit import NS, body_of, names, pod, raises, seen, stream

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
