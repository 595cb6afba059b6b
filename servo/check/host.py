"""The checks of `servo check` on this host: the stats and metrics ports can be bound, and the
cgroup layout the monitor would find below the node's /sys.

The cgroup search is the monitor's own (`mon.cgroup_paths`, shipped in the same distribution
and image), so the check finds exactly what the monitor would; tests point it at fixture
trees. The order of the checks is servo/check/checks.py's.
"""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

from mon.cgroup_paths import (
    V1_MEMORY_DIR,
    detect_version,
    find_pod_cgroup,
    is_any_pod_dir_name,
    search_below,
    subdirs,
    v1_cpu_root,
)
from mon.errors import CgroupNotFoundError
from servo.check.result import CheckResult, Status

# Where the monitor finds the host's /sys (mon's OPTUNE_SYS_ROOT default).
NODE_SYS_ROOT = Path("/rsys")
# Depth below a hierarchy root searched for kubepods (kind nests it: kubelet.slice/...).
KUBEPODS_MAX_DEPTH = 3


def check_port(name: str, env_name: str, bind: str, port: int) -> CheckResult:
    """Whether bind:port can be bound here (a warning only: the servo may run elsewhere)."""
    if port == 0:
        return CheckResult(name, Status.OK, f"{bind}: any free port ({env_name}=0)")
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((bind, port))
    except OSError as e:
        return CheckResult(
            name,
            Status.WARN,
            f"{bind}:{port} cannot be bound here: {e.strerror or e}",
            fix=f"another process holds it (a servo already running?); else set {env_name}",
        )
    return CheckResult(name, Status.OK, f"{bind}:{port} free")


# --- the node's cgroups ---------------------------------------------------------------------


def node_sys_root(given: Path | None, default: Path = NODE_SYS_ROOT) -> Path | None:
    """The host's /sys to look at: --sys-root, else /rsys when it exists, else None."""
    if given is not None:
        return given
    return default if default.is_dir() else None


def _is_kubepods(name: str) -> bool:
    return name == "kubepods" or name.endswith("kubepods.slice")


def find_kubepods(base: Path, *, max_depth: int = KUBEPODS_MAX_DEPTH) -> Path | None:
    """The kubelet's pods cgroup below `base`: `kubepods` (cgroupfs) or `*kubepods.slice`
    (systemd), breadth-first, at most `max_depth` levels down."""
    return search_below(base, _is_kubepods, max_depth=max_depth)


def count_pod_dirs(kubepods: Path) -> int:
    """Pod cgroups directly below kubepods or one QoS level down."""
    count = 0
    for child in subdirs(kubepods):
        if is_any_pod_dir_name(child.name):
            count += 1
        else:
            count += sum(1 for c in subdirs(child) if is_any_pod_dir_name(c.name))
    return count


def check_cgroups(sys_root: Path | None, *, pod_uid: str | None = None) -> CheckResult:
    """The cgroup layout the monitor would find below <sys root>/fs/cgroup."""
    name = "cgroup layout"
    if sys_root is None:
        return CheckResult(
            name,
            Status.SKIP,
            f"not on a node: no --sys-root given and no {NODE_SYS_ROOT} (the monitor's mount "
            "of the host's /sys)",
        )
    cgroup_root = sys_root / "fs" / "cgroup"
    mount_fix = (
        "mount the host's /sys read-only at /rsys (hostPath /sys), or pass --sys-root with "
        "the host's /sys"
    )
    if not cgroup_root.is_dir():
        return CheckResult(
            name, Status.FAIL, f"no cgroup hierarchy at {cgroup_root}", fix=mount_fix
        )
    version = detect_version(cgroup_root)
    base = cgroup_root if version == "v2" else cgroup_root / V1_MEMORY_DIR
    if version == "v1" and not base.is_dir():
        return CheckResult(
            name,
            Status.FAIL,
            f"cgroup v1 without a memory controller at {base}",
            fix="the monitor reads memory.* files: enable the memory controller on the node",
        )
    kubepods = find_kubepods(base)
    if kubepods is None:
        return CheckResult(
            name,
            Status.FAIL,
            f"cgroup {version}, but no kubepods or kubepods.slice below {base}: the monitor "
            "would find no pod cgroups",
            fix=f"run on a Kubernetes node; {mount_fix}; or set OPTUNE_CGROUP_PATH",
        )
    driver = "systemd" if kubepods.name.endswith(".slice") else "cgroupfs"
    detail = (
        f"cgroup {version}, {driver} driver: {kubepods} ({count_pod_dirs(kubepods)} pod cgroups)"
    )
    status, fix = Status.OK, ""
    if version == "v1" and not v1_cpu_root(cgroup_root).is_dir():
        status, fix = Status.WARN, "no cpuacct controller: jobs are measured without CPU time"
        detail += "; no cpuacct hierarchy"
    if pod_uid is not None:
        return _with_pod(CheckResult(name, status, detail, fix=fix), cgroup_root, pod_uid)
    return CheckResult(name, status, detail, fix=fix)


def _with_pod(layout: CheckResult, cgroup_root: Path, pod_uid: str) -> CheckResult:
    """The layout's result, with where the monitor would find this pod's cgroup."""
    try:
        found = find_pod_cgroup(cgroup_root=cgroup_root, pod_uid=pod_uid)
    except CgroupNotFoundError as e:
        return CheckResult(
            layout.name,
            Status.FAIL,
            f"{layout.detail}; pod {pod_uid}: not found",
            fix="is the pod on this node and running? (kubectl get pod -o wide)",
            notes=e.tried,
        )
    return dataclasses.replace(layout, detail=f"{layout.detail}; pod {pod_uid}: {found.path}")
