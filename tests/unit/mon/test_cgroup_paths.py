"""Finding the pod cgroup on fixture trees: v1/v2, cgroupfs/systemd, every QoS class."""

from __future__ import annotations

from pathlib import Path

import pytest

from mon.cgroup_paths import (
    container_id_from_name,
    find_pod_cgroup,
    kubelet_paths,
    own_container_names,
    sandbox_ids_from_mountinfo,
)
from mon.errors import CgroupNotFoundError
from tests.support.cgtree import POD_PATHS, POD_UID, build_v1, build_v2, cid

LAYOUTS = sorted(POD_PATHS)


@pytest.mark.parametrize(("driver", "qos"), LAYOUTS)
def test_v2_pod_found_for_every_driver_and_qos(tmp_path: Path, driver: str, qos: str) -> None:
    pod_dir = build_v2(tmp_path, POD_PATHS[(driver, qos)])
    pod = find_pod_cgroup(cgroup_root=tmp_path / "fs" / "cgroup", pod_uid=POD_UID)
    assert pod.version == "v2"
    assert pod.memory == pod.cpu == pod_dir
    assert pod.pids is None


@pytest.mark.parametrize("cpu_dir", ["cpu,cpuacct", "cpuacct,cpu", "cpuacct"])
@pytest.mark.parametrize(("driver", "qos"), LAYOUTS)
def test_v1_pod_found_in_each_controller(
    tmp_path: Path, driver: str, qos: str, cpu_dir: str
) -> None:
    rel = POD_PATHS[(driver, qos)]
    dirs = build_v1(tmp_path, rel, cpu_dir=cpu_dir)
    pod = find_pod_cgroup(cgroup_root=tmp_path / "fs" / "cgroup", pod_uid=POD_UID)
    assert pod.version == "v1"
    assert pod.memory == dirs["memory"]
    assert pod.cpu == dirs["cpu"]
    assert pod.pids == dirs["pids"]


def test_guaranteed_pod_has_no_qos_level(tmp_path: Path) -> None:
    # The original always added the QoS level; a Guaranteed pod lives right under kubepods.
    build_v1(tmp_path, f"kubepods/pod{POD_UID}")
    pod = find_pod_cgroup(cgroup_root=tmp_path / "fs" / "cgroup", pod_uid=POD_UID)
    assert pod.memory.parent.name == "kubepods"


@pytest.mark.parametrize(
    "rel",
    [
        # kind and other nested kubelets: a prefixed cgroup root
        "kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/"
        f"kubelet-kubepods-besteffort-pod{POD_UID.replace('-', '_')}.slice",
        # kubepods under another slice
        f"machine.slice/node1.scope/kubepods/burstable/pod{POD_UID}",
    ],
)
def test_pod_nested_under_a_prefix_is_found_by_search(tmp_path: Path, rel: str) -> None:
    pod_dir = build_v2(tmp_path, rel)
    pod = find_pod_cgroup(cgroup_root=tmp_path / "fs" / "cgroup", pod_uid=POD_UID, max_depth=5)
    assert pod.path == pod_dir


def test_search_depth_is_bounded(tmp_path: Path) -> None:
    build_v2(tmp_path, f"a/b/c/d/e/f/pod{POD_UID}")
    with pytest.raises(CgroupNotFoundError):
        find_pod_cgroup(cgroup_root=tmp_path / "fs" / "cgroup", pod_uid=POD_UID, max_depth=3)


def test_other_pods_are_not_entered_nor_matched(tmp_path: Path) -> None:
    other = "11111111-2222-3333-4444-555555555555"
    build_v2(tmp_path, f"kubepods/burstable/pod{other}/pod{POD_UID}")
    with pytest.raises(CgroupNotFoundError):
        find_pod_cgroup(cgroup_root=tmp_path / "fs" / "cgroup", pod_uid=POD_UID)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_not_found_error_names_every_path_tried(tmp_path: Path, version: str) -> None:
    other = "11111111-2222-3333-4444-555555555555"
    if version == "v2":
        build_v2(tmp_path, f"kubepods/pod{other}")
    else:
        build_v1(tmp_path, f"kubepods/pod{other}")
    root = tmp_path / "fs" / "cgroup"
    with pytest.raises(CgroupNotFoundError) as info:
        find_pod_cgroup(cgroup_root=root, pod_uid=POD_UID, max_depth=4)
    message = str(info.value)
    bases = [root] if version == "v2" else [root / "memory", root / "cpu,cpuacct"]
    for base in bases:
        for rel in kubelet_paths(POD_UID):
            assert str(base / rel) in message
        assert f"{base}/**/" in message and "to depth 4" in message
    assert POD_UID in message
    assert len(info.value.tried) == len(bases) * (len(kubelet_paths(POD_UID)) + 1)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_explicit_path_is_used_as_is(tmp_path: Path, version: str) -> None:
    rel = "custom/place/for/pod"
    if version == "v2":
        build_v2(tmp_path, rel)
    else:
        build_v1(tmp_path, rel)
    pod = find_pod_cgroup(
        cgroup_root=tmp_path / "fs" / "cgroup", pod_uid="whatever", explicit_path="/" + rel
    )
    assert pod.path.as_posix().endswith(rel)
    assert pod.version == version


def test_explicit_path_missing_is_named(tmp_path: Path) -> None:
    build_v2(tmp_path, "kubepods")
    with pytest.raises(CgroupNotFoundError, match="kubepods/nope"):
        find_pod_cgroup(
            cgroup_root=tmp_path / "fs" / "cgroup", pod_uid=POD_UID, explicit_path="/kubepods/nope"
        )


def test_systemd_form_of_uid_is_accepted(tmp_path: Path) -> None:
    pod_dir = build_v2(tmp_path, POD_PATHS[("cgroupfs", "burstable")])
    pod = find_pod_cgroup(cgroup_root=tmp_path / "fs" / "cgroup", pod_uid=POD_UID.replace("-", "_"))
    assert pod.path == pod_dir


ID = cid("app")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (ID, ID),
        (f"cri-containerd-{ID}.scope", ID),
        (f"crio-{ID}.scope", ID),
        (f"docker-{ID}.scope", ID),
        (f"crio-conmon-{ID}.scope", ID),
        ("init.scope", None),
        (f"pod{POD_UID}", None),
        (ID[:-1], None),
    ],
)
def test_container_id_from_every_runtime_naming(name: str, expected: str | None) -> None:
    assert container_id_from_name(name) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"12:memory:/kubepods/burstable/pod{POD_UID}/{ID}\n"
            f"11:cpu,cpuacct:/kubepods/burstable/pod{POD_UID}/{ID}\n",
            {ID},
        ),
        (f"0::/kubepods.slice/x.slice/cri-containerd-{ID}.scope\n", {f"cri-containerd-{ID}.scope"}),
        ("0::/\n", set()),  # private cgroup namespace: nothing to learn
        ("", set()),
    ],
)
def test_own_container_names(text: str, expected: set[str]) -> None:
    assert own_container_names(text) == expected


def test_sandbox_id_from_mountinfo_for_each_runtime() -> None:
    pause = {name: cid(f"pause-{name}") for name in ("containerd", "docker", "crio")}
    text = "\n".join(
        [
            "1 0 0:1 / / rw - overlay overlay rw",
            f"2 1 254:1 /var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/"
            f"{pause['containerd']}/hostname /etc/hostname rw - ext4 /dev/vda1 rw",
            f"3 1 254:1 /lib/docker/containers/{pause['docker']}/resolv.conf "
            "/etc/resolv.conf rw - ext4 /dev/vda1 rw",
            f"4 1 0:22 /containers/storage/overlay-containers/{pause['crio']}/userdata/hosts "
            "/etc/hosts rw - tmpfs tmpfs rw",
            f"5 1 254:1 /var/lib/kubelet/pods/{POD_UID}/containers/x/{ID} "
            "/dev/termination-log rw - ext4 /dev/vda1 rw",
        ]
    )
    assert sandbox_ids_from_mountinfo(text) == set(pause.values())
