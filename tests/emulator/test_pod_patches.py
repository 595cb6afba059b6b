"""Pod patches through the official client: JSON merge, strategic merge (keyed lists,
`$patch: delete`), JSON Patch with `test`, the status subresource and no-op patches.
"""

from __future__ import annotations

from kubernetes import client as k8s

from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.podkit import NS, body_of, pod, raises, stream


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
