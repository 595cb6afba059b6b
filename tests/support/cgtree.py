"""Fixture cgroup trees in tmp_path, laid out as the kubelet and the runtimes do on real nodes."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

POD_UID = "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b"
POD_UID_SYSTEMD = POD_UID.replace("-", "_")


def cid(name: str) -> str:
    """A 64-hex container id, stable per name."""
    return hashlib.sha256(name.encode()).hexdigest()


# (driver, qos) -> pod dir relative to a hierarchy root.
POD_PATHS: Mapping[tuple[str, str], str] = {
    ("cgroupfs", "guaranteed"): f"kubepods/pod{POD_UID}",
    ("cgroupfs", "burstable"): f"kubepods/burstable/pod{POD_UID}",
    ("cgroupfs", "besteffort"): f"kubepods/besteffort/pod{POD_UID}",
    ("systemd", "guaranteed"): f"kubepods.slice/kubepods-pod{POD_UID_SYSTEMD}.slice",
    ("systemd", "burstable"): "kubepods.slice/kubepods-burstable.slice/"
    f"kubepods-burstable-pod{POD_UID_SYSTEMD}.slice",
    ("systemd", "besteffort"): "kubepods.slice/kubepods-besteffort.slice/"
    f"kubepods-besteffort-pod{POD_UID_SYSTEMD}.slice",
}


def container_dir_name(runtime: str, container_id: str) -> str:
    """The container cgroup's name: plain id (cgroupfs) or <runtime>-<id>.scope (systemd)."""
    prefix = {"containerd": "cri-containerd-", "crio": "crio-", "docker": "docker-"}
    return container_id if runtime == "plain" else f"{prefix[runtime]}{container_id}.scope"


V2_POD_FILES = {
    "cpu.stat": "usage_usec 12500000\nuser_usec 10000000\nsystem_usec 2500000\n"
    "nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
    "memory.peak": "524288000\n",
    "memory.current": "104857600\n",
    "memory.stat": "anon 73400320\nfile 20971520\nkernel_stack 327680\npagetables 1048576\n"
    "sock 0\nshmem 0\n",
    "memory.events": "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\noom_group_kill 0\n",
}
V1_CPU_FILES = {
    "cpuacct.usage": "12500000000\n",
    "cpuacct.stat": "user 1000\nsystem 250\n",
}
V1_MEMORY_FILES = {
    "memory.max_usage_in_bytes": "524288000\n",
    "memory.usage_in_bytes": "104857600\n",
    "memory.stat": "cache 4096\nrss 8192\nrss_huge 0\ntotal_cache 20971520\n"
    "total_rss 73400320\ntotal_rss_huge 2097152\ntotal_mapped_file 0\n",
    "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
}


def _write(directory: Path, files: Mapping[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)


def build_v2(
    sys_root: Path,
    rel: str,
    *,
    containers: Mapping[str, bool] | None = None,
    files: Mapping[str, str] = V2_POD_FILES,
    container_files: Mapping[str, Mapping[str, str]] | None = None,
) -> Path:
    """A unified tree: <sys_root>/fs/cgroup/<rel> with pod files and container dirs.

    `containers` maps a container cgroup name to whether it is populated; `container_files`
    adds files to a container's dir (cpu.stat, memory.current...).
    """
    cg = sys_root / "fs" / "cgroup"
    _write(cg, {"cgroup.controllers": "cpuset cpu io memory pids\n"})
    pod = cg / rel
    _write(pod, files)
    for name, populated in (containers or {}).items():
        _write(pod / name, {"cgroup.events": f"populated {int(populated)}\nfrozen 0\n"})
    for name, extra in (container_files or {}).items():
        _write(pod / name, extra)
    return pod


def build_v1(
    sys_root: Path,
    rel: str,
    *,
    cpu_dir: str = "cpu,cpuacct",
    containers: Mapping[str, int] | None = None,
    cpu_files: Mapping[str, str] = V1_CPU_FILES,
    memory_files: Mapping[str, str] = V1_MEMORY_FILES,
    pids: bool = True,
    container_files: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Path]:
    """A v1 tree: memory, cpu accounting and (optional) pids controllers, same relative path.

    `containers` maps a container cgroup name to its task count (pids.current);
    `container_files` adds files to a container's dirs, each in its controller by prefix
    (cpuacct.* in the cpu dir, memory.* in the memory dir).
    """
    cg = sys_root / "fs" / "cgroup"
    dirs = {"memory": cg / "memory" / rel, "cpu": cg / cpu_dir / rel}
    _write(dirs["memory"], memory_files)
    _write(dirs["cpu"], cpu_files)
    if pids:
        dirs["pids"] = cg / "pids" / rel
        _write(dirs["pids"], {"pids.current": "3\n"})
    for name, tasks in (containers or {}).items():
        for key, d in dirs.items():
            files = {"pids.current": f"{tasks}\n"} if key == "pids" else {"cgroup.procs": ""}
            _write(d / name, files)
    for name, extra in (container_files or {}).items():
        for fname, text in extra.items():
            key = "cpu" if fname.startswith("cpuacct.") else fname.split(".", 1)[0]
            _write(dirs[key] / name, {fname: text})
    return dirs
