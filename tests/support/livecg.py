"""Real cgroups shaped like the kubelet's, a workload of known size and the real monitor in it.

Used by the `cgroup`-marked tests and by bench/bench_accuracy.py. Each pod is nested under this
process's own cgroup in each hierarchy (`<own>/servo-test-<rand>/kubepods/burstable/pod<uid>/
<container id>`): cgroup v1 (memory, cpuacct, pids controllers, each mounted on its own) or the
unified v2 hierarchy (`/sys/fs/cgroup/unified`, no controllers: real cpu.stat and cgroup.events).
A tmp sys root with symlinks makes it findable by the monitor as `<root>/fs/cgroup/...`, and a
tmp proc root's mountinfo names the sandbox, as the runtime's /etc/hostname mount does.

Three containers, each process placed in its container cgroup before it execs (so everything it
does is charged there): the sandbox (a `sleep` standing in for pause), the monitor
(`python -S -m mon`, as the image runs it) and the job (the workload). `PodTree.remove()` always
cleans up: processes are killed or moved out, directories removed bottom-up.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CGROUP_MOUNT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "cpuacct")
V1_HIERARCHIES = ("memory", "cpuacct", "pids")
V2_HIERARCHY = "unified"
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
MIB = 1 << 20

# The workload: `procs` interpreters (this one and procs-1 children), each touching `mem` bytes
# page by page and holding them until all have touched theirs; then this one burns `cpu`
# seconds of its own CPU time and prints its own account: getrusage of itself and its children
# (CPU), and the sum over the processes of their resident peak and of their private resident
# peak (less the shared file-backed pages of the interpreter, RssFile). The peak is VmHWM, the
# high-water mark of the process's own address space: ru_maxrss would do, but it survives exec,
# so a workload forked from a large parent (pytest) would inherit the parent's figure.
WORKLOAD = r"""
import os, resource, subprocess, sys, time
cpu_s, mem, page, procs = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def touch():
    buf = bytearray(mem)
    for i in range(0, mem, page):
        buf[i] = 1
    status = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        status[key] = value.split()
    peak = int(status["VmHWM"][0]) * 1024
    return buf, peak, peak - int(status["RssFile"][0]) * 1024
if len(sys.argv) > 5:
    buf, peak, private = touch()
    print(peak, private, flush=True)
    sys.stdin.readline()
    os._exit(0)
kids = [subprocess.Popen([sys.executable, "-S", "-c", SRC, *sys.argv[1:], "child"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(procs - 1)]
buf, peak, private = touch()
peaks, privates = [peak], [private]
for k in kids:
    p, q = k.stdout.readline().split()
    peaks.append(int(p)); privates.append(int(q))
for k in kids:
    k.stdin.write("\n"); k.stdin.flush(); k.wait()
del buf
t0 = time.process_time()
x = 0
while time.process_time() - t0 < cpu_s:
    for _ in range(10000):
        x += 1
s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime
print(f"{cpu!r} {sum(peaks)} {sum(privates)}", flush=True)
os._exit(0)
"""
WORKLOAD_SRC = "SRC = " + repr(WORKLOAD) + "\n" + WORKLOAD


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


def own_v2_cgroup(proc_self_cgroup: str | None = None) -> str:
    text = (
        proc_self_cgroup if proc_self_cgroup is not None else Path("/proc/self/cgroup").read_text()
    )
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:]
    raise LookupError("no 0:: line in /proc/self/cgroup")


def _writable(base: Path, what: str) -> str | None:
    if not (base / "cgroup.procs").is_file():
        return f"{what} not mounted at {base}"
    probe = base / f"servo-probe-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as e:
        return f"{what} not writable at {base}: {e.strerror}"
    return None


def unavailable_reason(controllers: tuple[str, ...] = CONTROLLERS) -> str | None:
    """Why real v1 cgroups cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root to create cgroups"
    for c in controllers:
        try:
            base = CGROUP_MOUNT / c / own_cgroup(c).lstrip("/")
        except (OSError, LookupError) as e:
            return f"cgroup v1 {c} controller not in use here: {e}"
        reason = _writable(base, f"cgroup v1 {c} controller")
        if reason is not None:
            return reason
    return None


def v2_unavailable_reason() -> str | None:
    """Why cgroups in the unified (v2) hierarchy cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root to create cgroups"
    root = CGROUP_MOUNT / V2_HIERARCHY
    if not (root / "cgroup.controllers").is_file():
        return f"no cgroup2 hierarchy at {root}"
    try:
        base = root / own_v2_cgroup().lstrip("/")
    except (OSError, LookupError) as e:
        return f"cgroup v2 not in use here: {e}"
    return _writable(base, "cgroup v2 hierarchy")


def container_id(name: str, tag: str) -> str:
    return hashlib.sha256(f"{tag}/{name}".encode()).hexdigest()


class PodTree:
    """`kubepods/burstable/pod<uid>/<id>` for the sandbox, the monitor and the job."""

    NAMES = ("sandbox", "monitor", "job")

    def __init__(self, version: str = "v1") -> None:
        self.version = version
        self.pod_uid = str(uuid.uuid4())
        tag = f"servo-test-{uuid.uuid4().hex[:8]}"
        if version == "v2":
            self.own = {V2_HIERARCHY: CGROUP_MOUNT / V2_HIERARCHY / own_v2_cgroup().lstrip("/")}
        else:
            self.own = {c: CGROUP_MOUNT / c / own_cgroup(c).lstrip("/") for c in V1_HIERARCHIES}
        self.base = {h: d / tag for h, d in self.own.items()}
        rel = Path("kubepods") / "burstable" / f"pod{self.pod_uid}"
        self.pod = {h: d / rel for h, d in self.base.items()}
        self.ids = {n: container_id(n, tag) for n in self.NAMES}
        self._tmp = tempfile.TemporaryDirectory(prefix="servo-sysroot-")
        self.sys_root = Path(self._tmp.name) / "sys"
        self.proc_root = Path(self._tmp.name) / "proc"
        self.termination_log = Path(self._tmp.name) / "termination-log"
        self.procs: list[subprocess.Popen[str]] = []

    def container(self, name: str) -> dict[str, Path]:
        return {h: d / self.ids[name] for h, d in self.pod.items()}

    def create(self) -> PodTree:
        try:
            for name in self.NAMES:
                for d in self.container(name).values():
                    d.mkdir(parents=True)
            cg = self.sys_root / "fs" / "cgroup"
            if self.version == "v2":
                cg.parent.mkdir(parents=True)
                cg.symlink_to(self.base[V2_HIERARCHY])
            else:
                cg.mkdir(parents=True)
                for h, d in self.base.items():
                    (cg / h).symlink_to(d)
            (self.proc_root / "self").mkdir(parents=True)
            sandbox = self.ids["sandbox"]
            (self.proc_root / "self" / "mountinfo").write_text(
                "1 0 0:1 / / rw - overlay overlay rw\n"
                f"2 1 254:1 /var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/{sandbox}/"
                "hostname /etc/hostname rw - ext4 /dev/vda1 rw\n"
            )
        except BaseException:
            self.remove()
            raise
        return self

    def placer(self, name: str) -> Callable[[], None]:
        """A preexec_fn: the child joins the container cgroup before it execs."""
        targets = [str(d / "cgroup.procs") for d in self.container(name).values()]

        def place() -> None:
            pid = str(os.getpid())
            for t in targets:
                with open(t, "w") as f:
                    f.write(pid)

        return place

    def start(self, name: str, argv: list[str], **kwargs: object) -> subprocess.Popen[str]:
        proc: subprocess.Popen[str] = subprocess.Popen(  # type: ignore[call-overload]
            argv, preexec_fn=self.placer(name), text=True, **kwargs
        )
        self.procs.append(proc)
        return proc

    def read(self, name: str | None, file: str, hierarchy: str | None = None) -> str:
        h = hierarchy or next(iter(self.pod))
        d = self.pod[h] if name is None else self.container(name)[h]
        return (d / file).read_text()

    def remove_container(self, name: str) -> None:
        """The runtime removing the exited container's cgroup."""
        for h, d in self.container(name).items():
            _evacuate_and_rmdir(d, self.own[h])

    def remove(self) -> None:
        """Kill what we started, remove every directory bottom-up; never raises."""
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for h, base in self.base.items():
            if base.exists():
                for d in sorted(
                    (p for p in base.rglob("*") if p.is_dir() and not p.is_symlink()),
                    key=lambda p: len(p.parts),
                    reverse=True,
                ):
                    _evacuate_and_rmdir(d, self.own[h])
                _evacuate_and_rmdir(base, self.own[h])
        self._tmp.cleanup()

    def __enter__(self) -> PodTree:
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


@dataclass
class Truth:
    """The workload's own account of itself."""

    cpu_s: float
    maxrss_bytes: int
    private_bytes: int


@dataclass
class MonitorRun:
    """A monitor process in the tree, and what it logged."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    waiting: threading.Event = field(default_factory=threading.Event)

    def log(self) -> str:
        return "".join(self.lines)


def start_monitor(
    tree: PodTree, *, style: str, poll_s: float = 1.0, env: Mapping[str, str] | None = None
) -> MonitorRun:
    environ = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO),
        "OPTUNE_POD_UID": tree.pod_uid,
        "OPTUNE_SYS_ROOT": str(tree.sys_root),
        "OPTUNE_PROC_ROOT": str(tree.proc_root),
        "OPTUNE_TERMINATION_LOG": str(tree.termination_log),
        "OPTUNE_SIDECAR_STYLE": style,
        "OPTUNE_POLL_INTERVAL": str(poll_s),
        **(env or {}),
    }
    proc = tree.start(
        "monitor",
        [sys.executable, "-S", "-m", "mon"],
        cwd=str(REPO),
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    run = MonitorRun(proc)

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            run.lines.append(line)
            if '"waiting for cue"' in line:
                run.waiting.set()

    threading.Thread(target=read, daemon=True).start()
    return run


def start_workload(
    tree: PodTree, *, cpu_s: float, mem_bytes: int, processes: int = 1
) -> subprocess.Popen[str]:
    argv = [sys.executable, "-S", "-c", WORKLOAD_SRC, str(cpu_s), str(mem_bytes), str(PAGE_BYTES)]
    return tree.start("job", [*argv, str(processes)], stdout=subprocess.PIPE)


def finish_workload(proc: subprocess.Popen[str], *, timeout_s: float) -> Truth:
    out, _ = proc.communicate(timeout=timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(f"workload failed with {proc.returncode}")
    cpu, peak, private = out.split()
    return Truth(float(cpu), int(peak), int(private))


@dataclass
class PodRun:
    """One job measured by the monitor: the job's truth and the monitor's stats."""

    truth: Truth
    stats: dict[str, object]
    monitor_log: str


def run_pod(
    tree: PodTree,
    *,
    cpu_s: float,
    mem_bytes: int,
    processes: int = 1,
    style: str = "native",
    poll_s: float = 1.0,
) -> PodRun:
    """Sandbox, monitor and job as the kubelet runs them; the monitor's termination message.

    native: the monitor starts first (an init container) and gets SIGTERM after the job exited
    and its cgroup was removed. plain: the job starts first (the monitor is appended to the
    containers), and the monitor notices by itself.
    """
    tree.start("sandbox", ["sleep", "3600"])
    if style == "native":
        mon = start_monitor(tree, style=style, poll_s=poll_s)
        if not mon.waiting.wait(30):
            raise RuntimeError(f"monitor did not start: {mon.log()}")
        job = start_workload(tree, cpu_s=cpu_s, mem_bytes=mem_bytes, processes=processes)
    else:
        job = start_workload(tree, cpu_s=cpu_s, mem_bytes=mem_bytes, processes=processes)
        mon = start_monitor(tree, style=style, poll_s=poll_s)
    truth = finish_workload(job, timeout_s=120 + cpu_s * 4)
    tree.remove_container("job")
    if style == "native":
        mon.proc.send_signal(signal.SIGTERM)
    if mon.proc.wait(timeout=60) != 0:
        raise RuntimeError(f"monitor exited {mon.proc.returncode}: {mon.log()}")
    stats = json.loads(tree.termination_log.read_text())
    return PodRun(truth, stats, mon.log())
