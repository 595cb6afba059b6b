"""Creating, reading, replacing and deleting pods: server-set fields, 404/409/422 answers,
optimistic concurrency, finalizers and delete preconditions (patches: test_pod_patches.py).
"""

from __future__ import annotations

from kubernetes import client as k8s

from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.podkit import NS, body_of, pod, raises, seen, stream


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
