"""Real cgroup v1 hierarchies shaped like the kubelet's, and workloads of known size.

Used by the `cgroup`-marked tests and by bench/bench_accuracy.py. Each hierarchy is nested under
this process's own cgroup in each controller (`<own>/servo-test-<rand>/kubepods/burstable/
pod<uid>/<container>`), and a tmp sys root with symlinks makes it findable by the monitor as
`<root>/fs/cgroup/<controller>/kubepods/...`. `KubeletTree.remove()` always cleans up: processes
are moved back out first, children are removed before parents.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

CGROUP_MOUNT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "cpuacct")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
MIB = 1 << 20

# The workload: waits for "go" on stdin (so it can be moved into the cgroup first, and the
# interpreter's start-up memory stays charged to the parent), touches `mem` bytes page by page,
# burns `cpu` seconds of its own CPU time, then prints its own getrusage delta.
WORKLOAD = r"""
import json, resource, sys, time
cpu_s, mem_bytes, page = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
sys.stdin.readline()
r0 = resource.getrusage(resource.RUSAGE_SELF)
buf = bytearray(mem_bytes)
for i in range(0, mem_bytes, page):
    buf[i] = 1
t0 = time.process_time()
x = 0
while time.process_time() - t0 < cpu_s:
    for _ in range(10000):
        x += 1
r1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
print(json.dumps({"cpu_s": cpu, "maxrss_bytes": r1.ru_maxrss * 1024}), flush=True)
"""


def own_cgroup(controller: str, proc_self_cgroup: str | None = None) -> str:
    """This process's cgroup path in a v1 controller (e.g. /process_api/<hash>, or /)."""
    text = (
        proc_self_cgroup if proc_self_cgroup is not None else Path("/proc/self/cgroup").read_text()
    )
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    raise LookupError(f"no {controller} line in /proc/self/cgroup")


def unavailable_reason() -> str | None:
    """Why real v1 cgroups cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root to create cgroups"
    for c in CONTROLLERS:
        try:
            base = CGROUP_MOUNT / c / own_cgroup(c).lstrip("/")
        except (OSError, LookupError) as e:
            return f"cgroup v1 {c} controller not in use here: {e}"
        if not (base / "cgroup.procs").is_file():
            return f"cgroup v1 {c} controller not mounted at {CGROUP_MOUNT / c}"
        probe = base / f"servo-probe-{uuid.uuid4().hex[:8]}"
        try:
            probe.mkdir()
            probe.rmdir()
        except OSError as e:
            return f"cgroup v1 {c} controller not writable at {base}: {e.strerror}"
    return None


@dataclass
class Workload:
    """One workload process's own account of itself."""

    cpu_s: float
    maxrss_bytes: int
    touched_bytes: int


class KubeletTree:
    """`kubepods/burstable/pod<uid>/<container>` in the memory and cpuacct controllers."""

    def __init__(self, *, pod_uid: str | None = None, container: str = "app") -> None:
        self.pod_uid = pod_uid or str(uuid.uuid4())
        tag = f"servo-test-{uuid.uuid4().hex[:8]}"
        self.own = {c: CGROUP_MOUNT / c / own_cgroup(c).lstrip("/") for c in CONTROLLERS}
        self.base = {c: self.own[c] / tag for c in CONTROLLERS}
        self.pod = {
            c: self.base[c] / "kubepods" / "burstable" / f"pod{self.pod_uid}" for c in CONTROLLERS
        }
        self.container = {c: self.pod[c] / container for c in CONTROLLERS}
        self._tmp = tempfile.TemporaryDirectory(prefix="servo-sysroot-")
        self.sys_root = Path(self._tmp.name)

    def create(self) -> KubeletTree:
        try:
            for c in CONTROLLERS:
                self.container[c].mkdir(parents=True)
            cg = self.sys_root / "fs" / "cgroup"
            cg.mkdir(parents=True)
            for c in CONTROLLERS:
                (cg / c).symlink_to(self.base[c])
        except BaseException:
            self.remove()
            raise
        return self

    def add_process(self, pid: int) -> None:
        for c in CONTROLLERS:
            (self.container[c] / "cgroup.procs").write_text(f"{pid}\n")

    def remove_container(self) -> None:
        """The runtime removing the exited container's cgroup."""
        for c in CONTROLLERS:
            _evacuate_and_rmdir(self.container[c], self.own[c])

    def read(self, controller: str, name: str, *, level: str = "pod") -> str:
        d = self.pod if level == "pod" else self.container
        return (d[controller] / name).read_text()

    def remove(self) -> None:
        """Move every process out, remove every directory bottom-up; never raises."""
        for c in CONTROLLERS:
            if self.base[c].exists():
                for d in sorted(
                    (p for p in self.base[c].rglob("*") if p.is_dir()),
                    key=lambda p: len(p.parts),
                    reverse=True,
                ):
                    _evacuate_and_rmdir(d, self.own[c])
                _evacuate_and_rmdir(self.base[c], self.own[c])
        self._tmp.cleanup()

    def __enter__(self) -> KubeletTree:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _evacuate_and_rmdir(d: Path, to: Path) -> None:
    try:
        for pid in (d / "cgroup.procs").read_text().split():
            try:
                (to / "cgroup.procs").write_text(f"{pid}\n")
            except OSError:
                pass  # the process exited meanwhile
        d.rmdir()
    except FileNotFoundError:
        pass
    except OSError as e:
        print(f"warning: could not remove cgroup {d}: {e}", file=sys.stderr)


def run_workloads(
    tree: KubeletTree, *, cpu_s: float, mem_bytes: int, processes: int = 1
) -> tuple[list[Workload], float]:
    """Run `processes` workloads inside the tree's container cgroup, all at once.

    Returns their own accounts and the RUSAGE_CHILDREN CPU delta (whole lives, start-up
    before the move into the cgroup included: an upper bound).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-S",
                "-c",
                WORKLOAD,
                str(cpu_s),
                str(mem_bytes),
                str(PAGE_BYTES),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for p in procs:
            tree.add_process(p.pid)
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        results = []
        for p in procs:
            out, _ = p.communicate(timeout=120 + cpu_s * 4)
            if p.returncode != 0:
                raise RuntimeError(f"workload failed with {p.returncode}")
            doc = json.loads(out)
            results.append(Workload(doc["cpu_s"], doc["maxrss_bytes"], mem_bytes))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    children_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return results, children_cpu
