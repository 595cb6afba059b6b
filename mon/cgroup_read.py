"""Reading cgroup files, pod-level and per container: every failure becomes a missing figure.

Parsing is `cgroup_parse`'s (pure); finding the directories is `cgroup_paths`'s. Files vanish and
can be half-written while a pod dies, so nothing here raises. The same readers serve the pod
cgroup and its container cgroups (`PodCgroup.child`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mon import cgroup_parse as parse
from mon.cgroup_paths import PodCgroup
from mon.errors import CgroupParseError
from mon.logs import get_logger
from mon.wire import PodMaxMemorySource

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple as Record
else:
    from mon.record import Record

logger = get_logger(__name__)

MEMORY_FIGURES = tuple(f"memory.{n}" for n in parse.MEMORY_FIELDS)


class PodFigures(Record):
    """What the pod cgroup said (pod totals), with a reason for every figure it did not say."""

    cpu_time: float | None
    cpu_user: float | None
    cpu_system: float | None
    max_memory: int | None
    max_memory_source: PodMaxMemorySource | None
    memory: dict[str, int]
    missing: dict[str, str]
    oom_kills: int | None = None


def read_file(
    path: Path,
    names: tuple[str, ...],
    parser: Callable[[str], parse.Reading],
    *,
    quiet: bool = False,
) -> parse.Reading:
    """Read one file and parse it; an unreadable file makes all its figures missing."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        reason = f"{path.name}: file not found (cgroup removed?)"
    except OSError as e:
        reason = f"{path.name}: {e.strerror or e}"
    else:
        return parser(text)
    if not quiet:
        logger.warning("cgroup file unreadable", extra={"path": str(path), "error": reason})
    return parse.missing_all(names, reason)


def read_int(path: Path) -> int | None:
    """One integer file, or None (used for samples; no reasons needed)."""
    try:
        return parse.parse_int(path.read_text(encoding="ascii", errors="replace"))
    except (OSError, CgroupParseError):
        return None


def read_memory_current(cg: PodCgroup) -> int | None:
    """The cgroup's memory use now (v2 memory.current, v1 memory.usage_in_bytes)."""
    name = "memory.current" if cg.version == "v2" else "memory.usage_in_bytes"
    return read_int(cg.memory / name)


def read_watermark(cg: PodCgroup) -> int | None:
    """The cgroup's own peak so far (v2 memory.peak, Linux 5.19+; v1 max_usage_in_bytes)."""
    name = "memory.peak" if cg.version == "v2" else "memory.max_usage_in_bytes"
    return read_int(cg.memory / name)


def read_cpu(cg: PodCgroup, *, clk_tck: int, quiet: bool = False) -> parse.Reading:
    """cpu_time, cpu_user, cpu_system of one cgroup, children (even removed ones) included."""
    if cg.version == "v2":
        return read_file(
            cg.cpu / "cpu.stat", parse.CPU_FIGURES, parse.cpu_from_v2_stat, quiet=quiet
        )
    reading = read_file(
        cg.cpu / "cpuacct.usage", ("cpu_time",), parse.cpu_time_from_v1_usage, quiet=quiet
    )
    return reading.merge(
        read_file(
            cg.cpu / "cpuacct.stat",
            ("cpu_user", "cpu_system"),
            lambda t: parse.cpu_split_from_v1_stat(t, clk_tck=clk_tck),
            quiet=quiet,
        )
    )


def read_oom_kills(cg: PodCgroup, *, quiet: bool = False) -> parse.Reading:
    """The OOM-kill counter (v1 memory.oom_control, v2 memory.events)."""
    name = "memory.events" if cg.version == "v2" else "memory.oom_control"
    return read_file(
        cg.memory / name,
        ("oom_kills",),
        lambda t: parse.oom_kills_from_events(t, source=name),
        quiet=quiet,
    )


def _pod_peak(pod: PodCgroup, sampled: int | None) -> tuple[parse.Reading, PodMaxMemorySource]:
    if pod.version == "v1":
        source: PodMaxMemorySource = "memory.max_usage_in_bytes"
    else:
        source = "memory.peak"
    peak = read_file(
        pod.memory / source,
        ("max_memory",),
        lambda t: parse.max_memory_from_file(t, source=source),
    )
    if pod.version == "v2" and "max_memory" in peak.missing:
        # memory.peak exists from Linux 5.19 on; before that, the largest sample we took.
        samples = [s for s in (sampled, read_memory_current(pod)) if s is not None]
        if samples:
            return parse.Reading(values={"max_memory": max(samples)}), "sampled"
    return peak, source


def read_pod_figures(pod: PodCgroup, *, sampled_max_memory: int | None, clk_tck: int) -> PodFigures:
    """Every pod-level figure; `sampled_max_memory` backs up a missing v2 memory.peak."""
    reading = read_cpu(pod, clk_tck=clk_tck)
    stat_parser = parse.memory_from_v2_stat if pod.version == "v2" else parse.memory_from_v1_stat
    reading.merge(read_file(pod.memory / "memory.stat", MEMORY_FIGURES, stat_parser))
    peak, source = _pod_peak(pod, sampled_max_memory)
    reading.merge(peak)
    reading.merge(read_oom_kills(pod))
    return figures_from_reading(reading, max_memory_source=source)


def figures_from_reading(
    reading: parse.Reading, *, max_memory_source: PodMaxMemorySource | None
) -> PodFigures:
    """PURE: the flat Reading -> typed PodFigures."""
    values = reading.values

    def seconds(name: str) -> float | None:
        value = values.get(name)
        return None if value is None else float(value)

    def count(name: str) -> int | None:
        value = values.get(name)
        return None if value is None else int(value)

    max_memory = count("max_memory")
    return PodFigures(
        cpu_time=seconds("cpu_time"),
        cpu_user=seconds("cpu_user"),
        cpu_system=seconds("cpu_system"),
        max_memory=max_memory,
        max_memory_source=max_memory_source if max_memory is not None else None,
        memory={
            name.removeprefix("memory."): int(values[name])
            for name in MEMORY_FIGURES
            if name in values
        },
        missing=dict(reading.missing),
        oom_kills=count("oom_kills"),
    )


def figures_unavailable(reason: str) -> PodFigures:
    """No pod cgroup at all: every figure missing for one reason."""
    names = (*parse.CPU_FIGURES, "max_memory", *MEMORY_FIGURES, "oom_kills")
    return figures_from_reading(parse.missing_all(names, reason), max_memory_source=None)
