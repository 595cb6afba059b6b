"""PURE parts of `servo measure`: figures -> MEASUREMENT param, progress text, exit codes.

No clock, no files, no environment: times, ids and host names come in as arguments. Running
the command and reading cgroups is `servo.local.runner`'s and `servo.local.cgroup`'s.
"""

from __future__ import annotations

import os
import shlex
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from servo.core.figure_bounds import figure_fault

MeasuredBy = Literal["cgroup-v1", "cgroup-v2", "rusage"]
# Longest `command` annotation: enough to recognise a run, short enough for a backend column.
COMMAND_MAX_CHARS = 200
# Shells report a child killed by signal N as 128 + N.
SIGNAL_EXIT_BASE = 128
MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class RunFigures:
    """What one run measured; None for a figure that could not be had (see `missing`)."""

    duration_s: float
    returncode: int  # Popen's: negative -N when killed by signal N
    measured_by: MeasuredBy
    cpu_time_s: float | None = None
    cpu_user_s: float | None = None
    cpu_system_s: float | None = None
    max_memory_bytes: int | None = None
    missing: Mapping[str, str] = field(default_factory=dict)


def exit_code_for(returncode: int) -> int:
    """Popen returncode -> the status a shell would give: -N (signal N) -> 128 + N."""
    return SIGNAL_EXIT_BASE - returncode if returncode < 0 else returncode


def reason_for(returncode: int) -> str:
    """The `reason` annotation: Completed, Error, or `Signal N` for a child killed by N."""
    if returncode < 0:
        return f"Signal {-returncode}"
    return "Completed" if returncode == 0 else "Error"


def command_from_args(remainder: Sequence[str]) -> list[str]:
    """The command from argparse's REMAINDER: without the `--` that ends servo's own options.

    argparse keeps that `--` in a subcommand's REMAINDER; a `--` later on is the command's.
    """
    return list(remainder[1:] if remainder[:1] == ["--"] else remainder)


def command_text(cmd: Sequence[str], max_chars: int = COMMAND_MAX_CHARS) -> str:
    """The command, shell-quoted, cut to `max_chars` (ending in `...` when cut)."""
    text = shlex.join(cmd)
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


def default_app_id(cmd: Sequence[str]) -> str:
    """The app id when none is given: the command's basename (`/usr/bin/python3` -> python3)."""
    return os.path.basename(cmd[0].rstrip("/")) or cmd[0]


def event_id_for(run_uuid: str) -> str:
    return f"{run_uuid}:MEASUREMENT"


def bounded_figures(figures: RunFigures) -> RunFigures:
    """The figures with any that cannot be a reading (not finite, negative, bytes not below
    2^63: a cgroup file gone odd) left out and named in `missing`."""
    missing = dict(figures.missing)
    kept: dict[str, Any] = {}
    for name in ("cpu_time", "cpu_user", "cpu_system", "max_memory"):
        attr = f"{name}_bytes" if name == "max_memory" else f"{name}_s"
        value = getattr(figures, attr)
        why = _out_of_bounds(value)
        if why:
            missing[name] = why
        kept[attr] = None if why else value
    return replace(figures, missing=missing, **kept) if missing != figures.missing else figures


def _out_of_bounds(value: float | None) -> str:
    if value is None or not figure_fault(value):
        return ""
    if isinstance(value, int):
        return "dropped: negative or not below 2^63"
    return "dropped: not a finite number >= 0"


def build_param(figures: RunFigures, *, cmd: Sequence[str], host: str) -> dict[str, Any]:
    """The protocol's MEASUREMENT param; figures that could not be had are left out."""
    figures = bounded_figures(figures)
    metrics: dict[str, dict[str, float | str]] = {
        "duration": {"value": figures.duration_s, "unit": "s"}
    }
    if figures.duration_s > 0:
        metrics["perf"] = {"value": 1 / figures.duration_s, "unit": "1/s"}
    for name, value in (
        ("cpu_time", figures.cpu_time_s),
        ("cpu_user", figures.cpu_user_s),
        ("cpu_system", figures.cpu_system_s),
    ):
        if value is not None:
            metrics[name] = {"value": value, "unit": "s"}
    if figures.max_memory_bytes is not None:
        metrics["max_memory"] = {"value": figures.max_memory_bytes, "unit": "bytes"}
    annotations = {
        "exitcode": str(exit_code_for(figures.returncode)),
        "command": command_text(cmd),
        "host": host,
        "measured_by": figures.measured_by,
        "reason": reason_for(figures.returncode),
    }
    if figures.missing:
        annotations["missing"] = "; ".join(f"{k}: {v}" for k, v in sorted(figures.missing.items()))
    return {"metrics": metrics, "annotations": annotations}


def children_peak_bytes(*, before_kib: int, after_kib: int, own_peak_kib: int) -> int:
    """ru_maxrss of RUSAGE_CHILDREN (KiB on Linux) in bytes when it is the command's, else 0.

    Linux keeps the highest RSS of any child ever waited for, and a child's count starts with
    the RSS of the parent it was forked from (the kernel keeps the pre-exec high-water mark at
    exec). So a value not above the servo's own peak (RUSAGE_SELF) may be the servo's, and a
    value not above the one before the run may be an earlier child's: both are not used.
    """
    if after_kib <= max(before_kib, own_peak_kib):
        return 0
    return after_kib * 1024


def format_duration(seconds: float) -> str:
    """`0.25 s`, `42.0 s`, `3m05s`, `2h03m`: short enough for a progress line."""
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / MIB:.1f} MiB" if n < 10 * 1024 * MIB else f"{n / (1024 * MIB):.2f} GiB"


def format_progress(*, elapsed_s: float, cpu_s: float | None, memory_bytes: int | None) -> str:
    """One progress line (no line end): elapsed, CPU so far, memory in use now."""
    cpu = "?" if cpu_s is None else format_duration(cpu_s)
    return (
        f"servo measure: running {format_duration(elapsed_s)}, cpu {cpu},"
        f" memory {format_bytes(memory_bytes)}"
    )


def format_summary(figures: RunFigures, *, delivered: str) -> str:
    """The last line on stderr: how it ended, the figures, and where the measurement went."""
    cpu = "?" if figures.cpu_time_s is None else format_duration(figures.cpu_time_s)
    return (
        f"servo measure: exit {exit_code_for(figures.returncode)}"
        f" ({reason_for(figures.returncode)}) after {format_duration(figures.duration_s)},"
        f" cpu {cpu}, peak memory {format_bytes(figures.max_memory_bytes)}"
        f" [{figures.measured_by}]; {delivered}"
    )


def progress_due(
    *, elapsed_s: float, last_shown_s: float | None, first_s: float, every_s: float
) -> bool:
    """True when a progress line is due: first at `first_s`, then every `every_s`."""
    if last_shown_s is None:
        return elapsed_s >= first_s
    return elapsed_s - last_shown_s >= every_s


def should_forward(signum: int, *, child_gets_tty_signals: bool) -> bool:
    """Forward SIGINT/SIGTERM/SIGHUP to the child, except keyboard signals it already got.

    Ctrl-C at a terminal goes to the whole foreground process group, the child included;
    sending it again would interrupt the child's own clean-up. `kill -INT <servo>` reaches
    only the servo, so that one is forwarded.
    """
    keyboard = signum in (signal.SIGINT, signal.SIGQUIT)
    return not (keyboard and child_gets_tty_signals)
