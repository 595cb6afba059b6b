"""Runs the measured command of `servo measure` and reads its CPU and peak memory.

In a local cgroup when one can be made (the cgroup's own counters), else from rusage and a
sampled /proc walk; a progress line now and then on a terminal, and the terminal's signals
forwarded to the command. Building and sending the event is `measure.py`'s.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any, TextIO

import psutil

from servo.core.measure_figures import (
    RunFigures,
    children_peak_bytes,
    format_progress,
    progress_due,
    should_forward,
)
from servo.local.cgroup import CgroupUnavailableError, LocalCgroup, create_local_cgroup

# What a shell exits with when the command cannot be run, or is not found.
EXIT_CANNOT_RUN = 126
EXIT_NOT_FOUND = 127
# Sampling period of memory (fallback) and of the progress check: fine enough to catch a
# peak that lasts a few hundred ms, cheap enough (a /proc walk) to go unnoticed.
SAMPLE_EVERY_S = 0.2
# First progress line after 3 s (short runs stay quiet), then one every 5 s.
PROGRESS_FIRST_S = 3.0
PROGRESS_EVERY_S = 5.0
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def measure_command(cmd: Sequence[str], *, use_cgroup: bool, out: TextIO) -> RunFigures:
    """Run `cmd` to its end, in a fresh cgroup when possible; OSError when it cannot start."""
    cg: LocalCgroup | None = None
    if use_cgroup:
        try:
            cg = create_local_cgroup()
        except CgroupUnavailableError as e:
            _say(out, f"no cgroup ({e}); measuring with getrusage and psutil (approximate)")
    else:
        _say(out, "no cgroup (--no-cgroup); measuring with getrusage and psutil (approximate)")
    try:
        if cg is not None:
            try:
                return _run(cmd, cg=cg, out=out)
            except subprocess.SubprocessError as e:
                # preexec_fn failed: the child died before exec, so nothing ran yet.
                _say(out, f"no cgroup (joining it failed: {e}); measuring with getrusage")
                cg.remove()
                cg = None
        return _run(cmd, cg=None, out=out)
    finally:
        if cg is not None and (outlived := cg.remove()):
            _say(out, f"{outlived} process(es) outlived the command; not measured after its end")


def _run(cmd: Sequence[str], *, cg: LocalCgroup | None, out: TextIO) -> RunFigures:
    forwarder = _SignalForwarder()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with forwarder:
        started = time.monotonic()
        proc = subprocess.Popen(list(cmd), preexec_fn=cg.preexec() if cg else None)
        forwarder.attach(proc)
        sampler = _Sampler(proc.pid, cg=cg, started=started, out=out)
        sampler.start()
        try:
            returncode = proc.wait()
        finally:
            duration_s = time.monotonic() - started
            sampler.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if cg is not None:
        f = cg.read_figures(clk_tck=os.sysconf("SC_CLK_TCK"))
        return RunFigures(
            duration_s=duration_s,
            returncode=returncode,
            measured_by="cgroup-v1" if cg.version == "v1" else "cgroup-v2",
            cpu_time_s=f.cpu_time_s,
            cpu_user_s=f.cpu_user_s,
            cpu_system_s=f.cpu_system_s,
            max_memory_bytes=f.max_memory_bytes,
            missing=f.missing,
        )
    user_s = after.ru_utime - before.ru_utime
    system_s = after.ru_stime - before.ru_stime
    return RunFigures(
        duration_s=duration_s,
        returncode=returncode,
        measured_by="rusage",
        cpu_time_s=user_s + system_s,
        cpu_user_s=user_s,
        cpu_system_s=system_s,
        max_memory_bytes=max(
            sampler.max_rss_bytes,
            children_peak_bytes(
                before_kib=before.ru_maxrss,
                after_kib=after.ru_maxrss,
                own_peak_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            ),
        ),
    )


def sample_tree(pid: int) -> tuple[int, float]:
    """RSS sum (bytes) and CPU seconds of a process and its descendants, now.

    An approximation: shared pages count once per process, and CPU of descendants that ended
    unwaited (orphans) is lost. The cgroup figures have neither problem.
    """
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0, 0.0
    rss, cpu = 0, 0.0
    for p in procs:
        try:
            with p.oneshot():
                rss += int(p.memory_info().rss)
                t = p.cpu_times()
                cpu += float(t.user + t.system)
                if p is root:
                    cpu += float(t.children_user + t.children_system)
        except psutil.Error:
            continue  # ended between the listing and the read
    return rss, cpu


class _Sampler:
    """A thread: samples the run every SAMPLE_EVERY_S and shows a progress line when due."""

    def __init__(self, pid: int, *, cg: LocalCgroup | None, started: float, out: TextIO) -> None:
        self.pid = pid
        self.cg = cg
        self.started = started
        self.out = out
        self.tty = out.isatty()
        self.max_rss_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="measure-sampler", daemon=True)
        self._last_shown_s: float | None = None
        self._width = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        if self.tty and self._last_shown_s is not None:
            self.out.write("\n")
            self.out.flush()

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            cpu_s: float | None
            if self.cg is not None:
                cpu_s, mem = self.cg.read_usage()
            else:
                mem, cpu_s = sample_tree(self.pid)
                self.max_rss_bytes = max(self.max_rss_bytes, mem)
            elapsed_s = time.monotonic() - self.started
            if progress_due(
                elapsed_s=elapsed_s,
                last_shown_s=self._last_shown_s,
                first_s=PROGRESS_FIRST_S,
                every_s=PROGRESS_EVERY_S,
            ):
                self._show(format_progress(elapsed_s=elapsed_s, cpu_s=cpu_s, memory_bytes=mem))
                self._last_shown_s = elapsed_s

    def _show(self, line: str) -> None:
        if self.tty:
            # `\r` rewrites the line; padding wipes what a longer previous line left.
            self.out.write("\r" + line.ljust(self._width))
            self._width = len(line)
        else:
            self.out.write(line + "\n")
        self.out.flush()


class _SignalForwarder:
    """While in use: SIGINT/SIGTERM/SIGHUP/SIGQUIT to the servo go to the child instead."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._pending: list[int] = []
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _SignalForwarder:
        for signum in FORWARDED_SIGNALS:
            self._old[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._old.items():
            signal.signal(signum, handler)

    def attach(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        for signum in self._pending:
            self._forward(signum)
        self._pending.clear()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._proc is None:
            self._pending.append(signum)  # arrived while the child was being started
        else:
            self._forward(signum)

    def _forward(self, signum: int) -> None:
        if self._proc is None or not should_forward(
            signum, child_gets_tty_signals=_in_tty_foreground()
        ):
            return
        try:
            self._proc.send_signal(signum)
        except ProcessLookupError:
            pass


def _in_tty_foreground() -> bool:
    """True when our process group (the child's too) gets the terminal's keyboard signals."""
    for fd in (0, 1, 2):
        try:
            return os.tcgetpgrp(fd) == os.getpgrp()
        except OSError:
            continue
    return False


def _say(out: TextIO, text: str) -> None:
    out.write(f"servo measure: {text}\n")
    out.flush()
