"""Where the pod cgroup is: cgroup v1 or v2, cgroupfs or systemd driver, any QoS class.

Pure apart from directory listings below a root the caller passes (tests use fixture trees).
The kubelet's fixed paths are tried first; then a bounded search for the pod directory's name
covers kubepods nested under another slice or a prefixed cgroup root (kind:
`kubelet.slice/kubelet-kubepods.slice/...`). Reading the files is `cgroup_read`'s job.
"""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Callable
from pathlib import Path

from mon.errors import CgroupNotFoundError
from mon.wire import CgroupVersion

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple as Record
else:
    from mon.record import Record

# v1 controller directories, in order of preference: the CPU accounting controller is mounted
# alone or co-mounted with cpu, under either name order.
V1_CPU_DIRS = ("cpu,cpuacct", "cpuacct,cpu", "cpuacct")
V1_MEMORY_DIR = "memory"
# Optional: a task count that, unlike cgroup.procs, other pid namespaces see too.
V1_PIDS_DIR = "pids"
# Any pod's directory (cgroupfs or systemd form): the search never descends into one.
_ANY_POD_DIR_RE = re.compile(r"^pod[0-9a-fA-F-]{8,}$|-pod[0-9a-fA-F_]{8,}\.slice$")
# A container's id inside its cgroup name: plain <id> (cgroupfs) or <runtime>-<id>.scope.
_CONTAINER_ID_RE = re.compile(r"(?:^|-)([0-9a-f]{64})(?:\.scope)?$")
# Sandbox files whose host path names the pod sandbox (pause) container id.
SANDBOX_MOUNT_POINTS = frozenset({"/etc/hostname", "/etc/resolv.conf", "/etc/hosts"})
_HEX64_RE = re.compile(r"[0-9a-f]{64}")


class PodCgroup(Record):
    """The pod-level cgroup directories to read; on v2 all three are the same directory."""

    version: CgroupVersion
    memory: Path
    cpu: Path
    # v1 only and optional: the pod dir in the pids controller.
    pids: Path | None

    @property
    def path(self) -> Path:
        """The directory that holds the container cgroups we watch (memory on v1)."""
        return self.memory

    def child(self, name: str) -> PodCgroup:
        """A container cgroup of this pod: the same name below each controller's pod dir."""
        return PodCgroup(
            version=self.version,
            memory=self.memory / name,
            cpu=self.cpu / name,
            pids=None if self.pids is None else self.pids / name,
        )


def detect_version(cgroup_root: Path) -> CgroupVersion:
    """v2 when the root is a unified hierarchy (it has cgroup.controllers), else v1."""
    return "v2" if (cgroup_root / "cgroup.controllers").is_file() else "v1"


def systemd_uid(pod_uid: str) -> str:
    return pod_uid.replace("-", "_")


def cgroupfs_uid(pod_uid: str) -> str:
    return pod_uid.replace("_", "-")


def kubelet_paths(pod_uid: str) -> tuple[str, ...]:
    """The kubelet's pod cgroup paths for every QoS class and both drivers (relative).

    Guaranteed pods have no QoS level (the original design always added one, and missed them).
    """
    u, s = cgroupfs_uid(pod_uid), systemd_uid(pod_uid)
    return (
        f"kubepods/pod{u}",
        f"kubepods/burstable/pod{u}",
        f"kubepods/besteffort/pod{u}",
        f"kubepods.slice/kubepods-pod{s}.slice",
        f"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{s}.slice",
        f"kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{s}.slice",
    )


def is_pod_dir_name(name: str, pod_uid: str) -> bool:
    """True for this pod's directory: `pod<uid>` or `...-pod<uid_>.slice` (any prefix)."""
    return name == f"pod{cgroupfs_uid(pod_uid)}" or name.endswith(
        f"-pod{systemd_uid(pod_uid)}.slice"
    )


def is_any_pod_dir_name(name: str) -> bool:
    """True for any pod's directory, in the cgroupfs or the systemd form."""
    return bool(_ANY_POD_DIR_RE.search(name))


def search_below(base: Path, matches: Callable[[str], bool], *, max_depth: int) -> Path | None:
    """Breadth-first search below `base`, at most `max_depth` levels, for the first directory
    whose name `matches`. Symlinks and pods' directories are not entered (a pod's cgroup holds
    containers, never another pod or the kubelet's root); unreadable directories are skipped.
    """
    queue: deque[tuple[Path, int]] = deque([(base, 0)])
    while queue:
        here, depth = queue.popleft()
        if depth >= max_depth:
            continue
        for child in subdirs(here):
            if matches(child.name):
                return child
            if not is_any_pod_dir_name(child.name):
                queue.append((child, depth + 1))
    return None


def search_pod_dir(base: Path, pod_uid: str, *, max_depth: int) -> Path | None:
    """This pod's directory below `base`, at most `max_depth` levels down (search_below)."""
    return search_below(base, lambda name: is_pod_dir_name(name, pod_uid), max_depth=max_depth)


def subdirs(path: Path) -> list[Path]:
    """Child directories (no symlinks), sorted. scandir's entry types come with the listing:
    no stat per child (a pod cgroup holds dozens of files, and this runs every poll)."""
    try:
        with os.scandir(path) as entries:
            names = sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
    except OSError:
        return []
    return [path / name for name in names]


def find_pod_dir(base: Path, pod_uid: str, *, max_depth: int, tried: list[str]) -> Path | None:
    """This pod's directory below one hierarchy root, or None; appends what it tried."""
    for rel in kubelet_paths(pod_uid):
        candidate = base / rel
        tried.append(str(candidate))
        if candidate.is_dir():
            return candidate
    found = search_pod_dir(base, pod_uid, max_depth=max_depth)
    if found is None:
        tried.append(f"{base}/**/(pod<uid>|*-pod<uid_>.slice) to depth {max_depth}")
    return found


def v1_cpu_root(cgroup_root: Path) -> Path:
    """The v1 CPU accounting hierarchy (falls back to the first name if none exists)."""
    for name in V1_CPU_DIRS:
        if (cgroup_root / name).is_dir():
            return cgroup_root / name
    return cgroup_root / V1_CPU_DIRS[0]


def find_pod_cgroup(
    *, cgroup_root: Path, pod_uid: str, explicit_path: str | None = None, max_depth: int = 5
) -> PodCgroup:
    """Locate the pod cgroup below `cgroup_root` (<sys root>/fs/cgroup).

    `explicit_path` (OPTUNE_CGROUP_PATH) is used as is, below each controller root. Raises
    CgroupNotFoundError naming every path tried.
    """
    version = detect_version(cgroup_root)
    tried: list[str] = []
    if version == "v2":
        if explicit_path is not None:
            given = cgroup_root / explicit_path.lstrip("/")
            tried.append(str(given))
            found: Path | None = given if given.is_dir() else None
        else:
            found = find_pod_dir(cgroup_root, pod_uid, max_depth=max_depth, tried=tried)
        if found is None:
            raise CgroupNotFoundError(what=f"pod cgroup (v2) for uid {pod_uid}", tried=tried)
        return PodCgroup(version="v2", memory=found, cpu=found, pids=None)

    roots = {
        V1_MEMORY_DIR: cgroup_root / V1_MEMORY_DIR,
        "cpu": v1_cpu_root(cgroup_root),
        V1_PIDS_DIR: cgroup_root / V1_PIDS_DIR,
    }
    rel = _v1_relative_path(roots, pod_uid, explicit_path, max_depth, tried)
    if rel is None:
        raise CgroupNotFoundError(what=f"pod cgroup (v1) for uid {pod_uid}", tried=tried)
    # The kubelet uses one relative path in every controller; a controller that lacks it
    # shows up later as missing figures rather than as a failure to find the pod.
    pids = roots[V1_PIDS_DIR] / rel
    return PodCgroup(
        version="v1",
        memory=roots[V1_MEMORY_DIR] / rel,
        cpu=roots["cpu"] / rel,
        pids=pids if pids.is_dir() else None,
    )


def _v1_relative_path(
    roots: dict[str, Path],
    pod_uid: str,
    explicit_path: str | None,
    max_depth: int,
    tried: list[str],
) -> Path | None:
    if explicit_path is not None:
        rel = Path(explicit_path.lstrip("/"))
        for key in (V1_MEMORY_DIR, "cpu"):
            tried.append(str(roots[key] / rel))
            if (roots[key] / rel).is_dir():
                return rel
        return None
    for key in (V1_MEMORY_DIR, "cpu"):
        found = find_pod_dir(roots[key], pod_uid, max_depth=max_depth, tried=tried)
        if found is not None:
            return found.relative_to(roots[key])
    return None


def container_id_from_name(name: str) -> str | None:
    """The 64-hex container id in a container cgroup name, for every runtime's naming.

    `<id>` (cgroupfs), `cri-containerd-<id>.scope`, `crio-<id>.scope`, `docker-<id>.scope`.
    """
    match = _CONTAINER_ID_RE.search(name)
    return match.group(1) if match else None


def own_container_names(proc_self_cgroup: str) -> set[str]:
    """Last components of this process's cgroup paths (its container cgroup's name).

    Empty with a private cgroup namespace, where every path reads `/`.
    """
    names: set[str] = set()
    for line in proc_self_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            last = parts[2].rstrip("/").rsplit("/", 1)[-1]
            if last:
                names.add(last)
    return names


def sandbox_ids_from_mountinfo(mountinfo: str) -> set[str]:
    """Container ids named by the host paths of /etc/hostname, /etc/resolv.conf, /etc/hosts.

    The runtimes keep these files in the pod sandbox's directory (containerd
    .../sandboxes/<id>/hostname, docker .../containers/<id>/hostname, cri-o
    .../overlay-containers/<id>/userdata/...), so they name the pause container, whose cgroup
    is a sibling that stays populated for the pod's whole life.
    """
    ids: set[str] = set()
    for line in mountinfo.splitlines():
        fields = line.split()
        # mountinfo: id parent major:minor root mount_point ... (proc(5))
        if len(fields) >= 5 and fields[4] in SANDBOX_MOUNT_POINTS:
            ids.update(_HEX64_RE.findall(fields[3]))
    return ids


def list_container_dirs(pod_dir: Path) -> list[Path]:
    """The pod's child cgroups (its containers, the sandbox included)."""
    return subdirs(pod_dir)
