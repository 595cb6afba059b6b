"""A throw-away cgroup for `servo measure`: made under this process's own cgroup, read, removed.

cgroup v1 (as root): `<own>/servo-measure-<rand>` in both the memory and the cpuacct controller.
cgroup v2: the same below the own cgroup of the unified tree, when it is writable and the memory
controller can be enabled there. Anything that stops either raises CgroupUnavailableError with
the reason, and the caller measures without a cgroup. Parsing the files is `mon.cgroup_parse`'s.
"""

from __future__ import annotations

import errno
import logging
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

from mon import cgroup_parse as parse
from mon.cgroup_read import read_file, read_int
from servo.core.errors import ServoError

logger = logging.getLogger(__name__)

CGROUP_MOUNT = Path("/sys/fs/cgroup")
NAME_PREFIX = "servo-measure-"
# v1 directory names of the CPU accounting controller, co-mounted with cpu or alone.
V1_CPU_DIRS = ("cpu,cpuacct", "cpuacct,cpu", "cpuacct")
# Key of the unified (v2) line of /proc/self/cgroup, `0::<path>`, in parse_proc_cgroup's map.
UNIFIED = ""
CgroupVersion = Literal["v1", "v2"]


class CgroupUnavailableError(ServoError):
    """No cgroup can be made for this run; the message says why."""


@dataclass(frozen=True, slots=True)
class CgroupFigures:
    """What the cgroup said after the run; figures it could not say are in `missing`."""

    cpu_time_s: float | None
    cpu_user_s: float | None
    cpu_system_s: float | None
    max_memory_bytes: int | None
    missing: Mapping[str, str]


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/<pid>/cgroup -> {controller: path}; the v2 line (`0::/x`) under the key UNIFIED.

    Co-mounted v1 controllers (`4:cpu,cpuacct:/x`) give one entry per controller, plus one
    for the joined name, which is also the directory name under the mount.
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        hier, controllers, path = parts
        if hier == "0" and controllers == "":
            out[UNIFIED] = path
            continue
        out[controllers] = path
        for name in controllers.split(","):
            out.setdefault(name, path)
    return out


def v1_dir_names(own: Mapping[str, str]) -> tuple[str, str] | None:
    """The v1 directory names (memory, cpuacct) under the mount, or None when not on v1."""
    if "memory" not in own or "cpuacct" not in own:
        return None
    cpu = next((name for name in V1_CPU_DIRS if name in own), "cpuacct")
    return "memory", cpu


class LocalCgroup:
    """One cgroup (v1: a directory per controller) that the measured command runs in."""

    def __init__(
        self, *, version: CgroupVersion, memory: Path, cpu: Path, parents: Mapping[Path, Path]
    ) -> None:
        self.version: CgroupVersion = version
        self.memory = memory
        self.cpu = cpu
        # Each directory -> the cgroup its leftover processes are moved back to before rmdir.
        self._parents = dict(parents)

    @property
    def dirs(self) -> tuple[Path, ...]:
        return tuple(dict.fromkeys((self.memory, self.cpu)))

    def preexec(self) -> Callable[[], None]:
        """A `preexec_fn` that moves the forked child into this cgroup before it execs.

        Only os calls: it runs between fork and exec, where locks of other threads may be held.
        """
        procs = [os.fsencode(d / "cgroup.procs") for d in self.dirs]

        def join() -> None:
            pid = str(os.getpid()).encode()
            for path in procs:
                fd = os.open(path, os.O_WRONLY)
                try:
                    os.write(fd, pid)
                finally:
                    os.close(fd)

        return join

    def read_usage(self) -> tuple[float | None, int | None]:
        """CPU seconds and memory bytes in use so far (for the progress line); None if unread."""
        if self.version == "v1":
            cpu = parse.cpu_time_from_v1_usage(_read(self.cpu / "cpuacct.usage"))
            mem = read_int(self.memory / "memory.usage_in_bytes")
        else:
            cpu = parse.cpu_from_v2_stat(_read(self.cpu / "cpu.stat"))
            mem = read_int(self.memory / "memory.current")
        cpu_s = cpu.values.get("cpu_time")
        return (None if cpu_s is None else float(cpu_s)), mem

    def read_figures(self, *, clk_tck: int) -> CgroupFigures:
        """The run's totals: CPU (v1 ns + USER_HZ split; v2 usec) and the memory high-water mark."""
        reading = parse.Reading()
        if self.version == "v1":
            reading.merge(
                read_file(self.cpu / "cpuacct.usage", ("cpu_time",), parse.cpu_time_from_v1_usage)
            )
            reading.merge(
                read_file(
                    self.cpu / "cpuacct.stat",
                    ("cpu_user", "cpu_system"),
                    partial(parse.cpu_split_from_v1_stat, clk_tck=clk_tck),
                )
            )
            source = "memory.max_usage_in_bytes"
        else:
            reading.merge(
                read_file(self.cpu / "cpu.stat", parse.CPU_FIGURES, parse.cpu_from_v2_stat)
            )
            source = "memory.peak"
        reading.merge(
            read_file(
                self.memory / source,
                ("max_memory",),
                partial(parse.max_memory_from_file, source=source),
            )
        )
        v = reading.values

        def seconds(name: str) -> float | None:
            return float(v[name]) if name in v else None

        return CgroupFigures(
            cpu_time_s=seconds("cpu_time"),
            cpu_user_s=seconds("cpu_user"),
            cpu_system_s=seconds("cpu_system"),
            max_memory_bytes=int(v["max_memory"]) if "max_memory" in v else None,
            missing=dict(reading.missing),
        )

    def remove(self) -> int:
        """Remove the directories; return how many processes outlived the command.

        Those (daemonised children) are moved back to the own cgroup first, as rmdir needs.
        """
        outlived = 0
        for d in self.dirs:
            outlived = max(outlived, _evacuate(d, self._parents[d]))
            try:
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError as e:
                logger.warning("cgroup not removed", extra={"path": str(d), "error": str(e)})
        return outlived


def create_local_cgroup(
    *,
    mount: Path = CGROUP_MOUNT,
    proc_self_cgroup: str | None = None,
    name: str | None = None,
) -> LocalCgroup:
    """Make a fresh cgroup below this process's own one; raise CgroupUnavailableError why not."""
    try:
        text = (
            proc_self_cgroup
            if proc_self_cgroup is not None
            else Path("/proc/self/cgroup").read_text()
        )
    except OSError as e:
        raise CgroupUnavailableError(f"/proc/self/cgroup unreadable: {e.strerror}") from e
    own = parse_proc_cgroup(text)
    name = name or f"{NAME_PREFIX}{uuid.uuid4().hex[:12]}"
    v1 = v1_dir_names(own)
    if v1 is not None and (mount / v1[0]).is_dir():
        return _create_v1(mount=mount, own=own, dir_names=v1, name=name)
    if UNIFIED in own and (mount / "cgroup.controllers").is_file():
        return _create_v2(base=_own_dir(mount, own[UNIFIED]), name=name)
    raise CgroupUnavailableError("no cgroup v1 memory+cpuacct controllers nor a cgroup v2 mount")


def _own_dir(mount: Path, path: str) -> Path:
    d = mount / path.lstrip("/")
    if not d.is_dir():
        # The hierarchy is mounted at a sub-root (a container without a cgroup namespace).
        raise CgroupUnavailableError(f"own cgroup {path!r} not found under {mount}")
    return d


def _create_v1(
    *, mount: Path, own: Mapping[str, str], dir_names: tuple[str, str], name: str
) -> LocalCgroup:
    mem_name, cpu_name = dir_names
    mem_base = _own_dir(mount / mem_name, own[mem_name])
    cpu_base = _own_dir(mount / cpu_name, own[cpu_name])
    made: list[Path] = []
    try:
        for base in (mem_base, cpu_base):
            d = base / name
            d.mkdir()
            made.append(d)
    except OSError as e:
        for d in made:
            _rmdir_quietly(d)
        raise CgroupUnavailableError(f"cannot create {base / name}: {e.strerror}") from e
    return LocalCgroup(
        version="v1",
        memory=mem_base / name,
        cpu=cpu_base / name,
        parents={mem_base / name: mem_base, cpu_base / name: cpu_base},
    )


def _create_v2(*, base: Path, name: str) -> LocalCgroup:
    # cpu.stat (usage/user/system) is core accounting and needs no controller; memory.peak
    # needs the memory controller enabled in the parent's subtree_control (kernel 5.19+).
    # Enabling it fails with EBUSY when the own cgroup holds processes (no internal processes).
    control = base / "cgroup.subtree_control"
    try:
        if "memory" not in control.read_text().split():
            control.write_text("+memory")
    except OSError as e:
        raise CgroupUnavailableError(
            f"cannot enable the memory controller in {control}: {e.strerror}"
        ) from e
    d = base / name
    try:
        d.mkdir()
    except OSError as e:
        raise CgroupUnavailableError(f"cannot create {d}: {e.strerror}") from e
    if not (d / "memory.peak").is_file():
        _rmdir_quietly(d)
        raise CgroupUnavailableError(f"{d} has no memory.peak (kernel older than 5.19?)")
    return LocalCgroup(version="v2", memory=d, cpu=d, parents={d: base})


def _evacuate(d: Path, to: Path) -> int:
    try:
        pids = (d / "cgroup.procs").read_text().split()
    except OSError:
        return 0
    for pid in pids:
        try:
            (to / "cgroup.procs").write_text(pid)
        except OSError as e:
            if e.errno != errno.ESRCH:  # ESRCH: the process exited meanwhile
                logger.warning("process not moved out", extra={"pid": pid, "error": str(e)})
    return len(pids)


def _rmdir_quietly(d: Path) -> None:
    try:
        d.rmdir()
    except OSError:
        pass


def _read(path: Path) -> str:
    # Progress only: an unreadable file parses as empty, and the figure is left out.
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return ""
