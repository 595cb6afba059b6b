"""Label and field selectors on pod lists and watches: the supported operators, malformed
and unsupported selectors (400), and objects entering and leaving a watched selector.
"""

from __future__ import annotations

import pytest
from kubernetes import client as k8s

from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.podkit import NS, body_of, names, pod, raises, seen, stream

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
