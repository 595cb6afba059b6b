"""Waiting for the cue: SIGTERM, or every other container of the pod having exited.

Native sidecars (Kubernetes 1.29+) get SIGTERM once the main containers are gone. Plain sidecar
containers never do while the job's pod lingers, so the monitor also watches its siblings:
v2 `cgroup.events` (`populated 0`), v1 `pids.current` (a count that other pid namespaces see;
v1 `cgroup.procs` hides every pid outside the reader's pid namespace, so an empty list proves
nothing), a vanished container cgroup, or, with a shared process namespace, the process list.
The decision itself (`SiblingState.update`) is pure.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

from mon.cgroup_parse import is_populated, parse_int
from mon.cgroup_paths import PodCgroup, container_id_from_name, list_container_dirs
from mon.errors import CgroupParseError
from mon.wire import Cue

logger = logging.getLogger(__name__)

# Polls in a row with every sibling gone before we believe it: a container that is being
# created (or restarted) can be briefly absent or unpopulated.
CONFIRM_POLLS = 2


@dataclass(slots=True)
class SiblingState:
    """PURE decision state: siblings must have been seen running before their absence counts.

    A native sidecar starts before the main containers exist; without this guard it would read
    the pod at once and leave.
    """

    seen_running: bool = False
    quiet_polls: int = 0

    def update(self, running: Mapping[str, bool]) -> bool:
        """Feed one poll (sibling -> running?); True once every sibling has exited."""
        if any(running.values()):
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


class CgroupSiblings:
    """Which sibling container cgroups of the pod still run (itself and the sandbox excluded)."""

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

    def _excluded(self, ctr: Path) -> bool:
        if ctr.name in self.others:
            return False
        if ctr.name in self.own_names:
            return True
        cid = container_id_from_name(ctr.name)
        if cid is not None and (cid in self.sandbox_ids or cid in self.own_names):
            return True
        # Our own pid shows in our own container's cgroup.procs even across namespaces.
        procs = _read(ctr / "cgroup.procs")
        if procs is not None and str(self.own_pid) in procs.split():
            self.own_names.add(ctr.name)
            logger.info("own container cgroup found", extra={"path": str(ctr)})
            return True
        if procs is not None:
            # We run in our own cgroup from exec on, so a readable cgroup.procs without our pid
            # (often empty: other pid namespaces' pids are hidden) is a sibling's for good.
            self.others.add(ctr.name)
        return False

    def running(self) -> dict[str, bool]:
        """Sibling name -> still running; vanished siblings are left out."""
        out: dict[str, bool] = {}
        for ctr in list_container_dirs(self.pod.path):
            if self._excluded(ctr):
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

    def __init__(self, *, own_pid: int) -> None:
        self.own_pid = own_pid

    def running(self) -> dict[str, bool]:
        skip = {1, self.own_pid}
        try:
            skip.update(c.pid for c in psutil.Process(self.own_pid).children(recursive=True))
            return {f"pid {p}": True for p in psutil.pids() if p not in skip}
        except psutil.Error:
            return {"unknown": True}


class Sampler:
    """Keeps the largest memory.current seen (v2 kernels before 5.19 have no memory.peak)."""

    def __init__(self, read: Callable[[], int | None]) -> None:
        self._read = read
        self.max_bytes: int | None = None

    def sample(self) -> None:
        value = self._read()
        if value is not None and (self.max_bytes is None or value > self.max_bytes):
            self.max_bytes = value


def wait_for_cue(
    *,
    stop: threading.Event,
    poll_interval_s: float,
    siblings: Callable[[], Mapping[str, bool]] | None,
    sample: Callable[[], None] | None = None,
) -> Cue:
    """Block until `stop` is set (SIGTERM) or every sibling exited; polls once per interval."""
    state = SiblingState()
    while not stop.wait(poll_interval_s):
        try:
            if sample is not None:
                sample()
            if siblings is not None:
                running = siblings()
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug("siblings polled", extra={"running": sorted(running)})
                if state.update(running):
                    return "siblings-exited"
        except Exception:
            logger.exception("poll failed; still waiting")
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
