"""Waiting for the cue: SIGTERM, or every other container of the pod having exited.

Native sidecars (Kubernetes 1.29+) get SIGTERM once the main containers are gone. Plain sidecar
containers never do while the job's pod lingers, so the monitor also watches its siblings:
v2 `cgroup.events` (`populated 0`), v1 `pids.current` (a count that other pid namespaces see;
v1 `cgroup.procs` hides every pid outside the reader's pid namespace, so an empty list proves
nothing), a vanished container cgroup, or, with a shared process namespace, the process list.
The decision itself (`SiblingState.update`) is pure.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from mon.cgroup_parse import is_populated, parse_int
from mon.cgroup_paths import PodCgroup, container_id_from_name, list_container_dirs
from mon.errors import CgroupParseError
from mon.logs import get_logger
from mon.wire import Cue

logger = get_logger(__name__)

# Polls in a row with every sibling gone before we believe it: a container that is being
# created (or restarted) can be briefly absent or unpopulated.
CONFIRM_POLLS = 2


class SiblingState:
    """PURE decision state: siblings must have been seen running before their absence counts.

    A native sidecar starts before the main containers exist; without this guard it would read
    the pod at once and leave. `tolerated` running siblings count as quiet: with the sandbox
    unidentified, the pause container is one sibling that never exits.
    """

    __slots__ = ("seen_running", "quiet_polls")

    def __init__(self) -> None:
        self.seen_running = False
        self.quiet_polls = 0

    def update(self, running: Mapping[str, bool], *, tolerated: int = 0) -> bool:
        """Feed one poll (sibling -> running?); True once every sibling has exited."""
        if sum(running.values()) > tolerated:
            self.seen_running = True
            self.quiet_polls = 0
            return False
        if not self.seen_running:
            return False
        self.quiet_polls += 1
        return self.quiet_polls >= CONFIRM_POLLS


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None


TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal, Protocol

    Role = Literal["own", "sandbox", "job"]

    class SiblingWatch(Protocol):
        """What `wait_for_cue` polls: CgroupSiblings or SharedNamespaceProcesses."""

        def running(self) -> Mapping[str, bool]: ...

        def tolerated(self) -> int: ...


_RUNTIME_SCOPE = "-conmon-"


class CgroupSiblings:
    """The pod's container cgroups sorted into the monitor's own, the sandbox's and the job's.

    Also the plain-style watch: which job container cgroups still run.
    """

    def __init__(
        self,
        pod: PodCgroup,
        *,
        own_names: set[str],
        sandbox_ids: set[str],
        own_pid: int,
    ) -> None:
        self.pod = pod
        self.own_names = set(own_names)
        self.sandbox_ids = set(sandbox_ids)
        self.own_pid = own_pid
        # Container cgroups already found not to be ours: a process never moves between pod
        # cgroups, so their cgroup.procs need no second read (an idle poll reads less).
        self.others: set[str] = set()
        self.sandbox_seen = False
        self.own_seen = False
        # The listing the samples of this poll used, for the exit check that follows them: one
        # directory listing per poll instead of two.
        self._listing: list[Path] | None = None

    def _containers(self, *, keep: bool) -> list[Path]:
        listing = self._listing if self._listing is not None else list_container_dirs(self.pod.path)
        self._listing = listing if keep else None
        return listing

    def role(self, ctr: Path) -> Role:
        if _RUNTIME_SCOPE in ctr.name:
            # CRI-O's conmon (one per container, `crio-conmon-<id>.scope`) is the runtime's, not
            # the job's: the monitor's own conmon lives as long as the monitor, so watching it
            # would keep a plain-style monitor waiting for ever.
            return "sandbox"
        cid = container_id_from_name(ctr.name)
        if cid is not None and cid in self.sandbox_ids:
            self.sandbox_seen = True
            return "sandbox"
        if ctr.name in self.others:
            return "job"
        if ctr.name in self.own_names or (cid is not None and cid in self.own_names):
            self.own_seen = True
            return "own"
        # Our own pid shows in our own container's cgroup.procs even across namespaces.
        procs = _read(ctr / "cgroup.procs")
        if procs is not None and str(self.own_pid) in procs.split():
            self.own_names.add(ctr.name)
            self.own_seen = True
            logger.info("own container cgroup found", extra={"path": str(ctr)})
            return "own"
        if procs is not None:
            # We run in our own cgroup from exec on, so a readable cgroup.procs without our pid
            # (often empty: other pid namespaces' pids are hidden) is a sibling's for good.
            self.others.add(ctr.name)
        return "job"

    def by_role(self) -> dict[Role, list[str]]:
        """Role -> names of the container cgroups present now."""
        out: dict[Role, list[str]] = {"own": [], "sandbox": [], "job": []}
        self._listing = None
        for ctr in self._containers(keep=True):
            out[self.role(ctr)].append(ctr.name)
        return out

    def tolerated(self) -> int:
        """Running siblings to ignore: the pause container while the sandbox is unidentified,
        and the monitor's own while that is (both never exit before the monitor does)."""
        return (0 if self.sandbox_seen else 1) + (0 if self.own_seen else 1)

    def running(self) -> dict[str, bool]:
        """Job container name -> still running; vanished ones are left out."""
        out: dict[str, bool] = {}
        for ctr in self._containers(keep=False):
            if self.role(ctr) != "job":
                continue
            state = self._running(ctr)
            if state is not None:
                out[ctr.name] = state
        return out

    def _running(self, ctr: Path) -> bool | None:
        if self.pod.version == "v2":
            text = _read(ctr / "cgroup.events")
            if text is None:
                return None if not ctr.exists() else True
            populated = is_populated(text)
            # Half-written: assume it still runs; the next poll will tell.
            return True if populated is None else populated
        if self.pod.pids is not None:
            count = _read(self.pod.pids / ctr.name / "pids.current")
            if count is not None:
                try:
                    return parse_int(count) > 0
                except CgroupParseError:
                    return True
        # v1 without a pids controller: only a removed container cgroup proves an exit
        # (containerd and CRI-O remove it right after the container stops).
        return True if ctr.exists() else None


class SharedNamespaceProcesses:
    """With shareProcessNamespace, every process but ours and pid 1 (pause) is a job's."""

    def __init__(self, *, own_pid: int, proc_root: Path = Path("/proc")) -> None:
        self.own_pid = own_pid
        self.proc_root = proc_root

    def running(self) -> dict[str, bool]:
        # The monitor starts no processes, so only pid 1 and itself are not the job's.
        skip = {1, self.own_pid}
        try:
            with os.scandir(self.proc_root) as entries:
                pids = [int(e.name) for e in entries if e.name.isdigit()]
        except OSError:
            return {"unknown": True}
        return {f"pid {p}": True for p in pids if p not in skip}

    def tolerated(self) -> int:
        return 0


def wait_for_cue(
    *,
    stop: threading.Event,
    poll_interval_s: float,
    siblings: SiblingWatch | None,
    sample: Callable[[], None] | None = None,
    unseen_give_up_s: float | None = None,
) -> Cue:
    """Block until `stop` is set (SIGTERM) or every sibling exited; polls once per interval.

    `unseen_give_up_s`: a plain-style monitor that has seen no job container running this long
    after it started (they exited before it looked, or cannot be watched) stops waiting:
    "deadline". Native sidecars pass None: SIGTERM always comes.
    """
    state = SiblingState()
    started = time.monotonic()
    # The first poll at once: a short job may be gone before the first interval has passed.
    first = True
    while first or not stop.wait(poll_interval_s):
        first = False
        try:
            if sample is not None:
                sample()
            if siblings is not None:
                running = siblings.running()
                if logger.debug_enabled():
                    logger.debug("siblings polled", extra={"running": sorted(running)})
                if state.update(running, tolerated=siblings.tolerated()):
                    return "siblings-exited"
        except Exception:
            logger.exception("poll failed; still waiting")
        if (
            unseen_give_up_s is not None
            and not state.seen_running
            and time.monotonic() - started >= unseen_give_up_s
        ):
            logger.warning(
                "no job container seen running; giving up waiting",
                extra={"waited_s": unseen_give_up_s},
            )
            return "deadline"
    return "SIGTERM"


def install_stop_handlers(stop: threading.Event) -> None:
    """SIGTERM/SIGINT set `stop`, from a helper thread.

    Event.set() takes a plain Lock that the main thread may hold inside Event.wait() at the
    moment the signal lands; setting it from the handler itself could deadlock.
    """

    def handler(signum: int, frame: object) -> None:
        threading.Thread(target=stop.set, name="stop", daemon=True).start()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
