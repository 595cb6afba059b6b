"""Reading the pod cgroup's files: every failure becomes a missing figure with its reason.

Parsing is `cgroup_parse`'s (pure); finding the directories is `cgroup_paths`'s. Files vanish and
can be half-written while a pod dies, so nothing here raises.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mon import cgroup_parse as parse
from mon.cgroup_paths import PodCgroup
from mon.errors import CgroupParseError
from mon.wire import MaxMemorySource

logger = logging.getLogger(__name__)

CPU_FIGURES = ("cpu_time", "cpu_user", "cpu_system")
MEMORY_FIGURES = tuple(f"memory.{n}" for n in parse.MEMORY_FIELDS)


@dataclass(frozen=True, slots=True)
class PodFigures:
    """What the pod cgroup said, with a reason for every figure it did not say."""

    cpu_time: float | None
    cpu_user: float | None
    cpu_system: float | None
    max_memory: int | None
    max_memory_source: MaxMemorySource | None
    memory: dict[str, int]
    missing: dict[str, str]


def read_file(
    path: Path, names: tuple[str, ...], parser: Callable[[str], parse.Reading]
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
    logger.warning("cgroup file unreadable", extra={"path": str(path), "error": reason})
    return parse.missing_all(names, reason)


def read_int(path: Path) -> int | None:
    """One integer file, or None (used for memory.current samples; no reasons needed)."""
    try:
        return parse.parse_int(path.read_text(encoding="ascii", errors="replace"))
    except (OSError, CgroupParseError):
        return None


def read_memory_current(pod: PodCgroup) -> int | None:
    """The pod's memory use now (v2 memory.current, v1 memory.usage_in_bytes)."""
    name = "memory.current" if pod.version == "v2" else "memory.usage_in_bytes"
    return read_int(pod.memory / name)


def read_pod_figures(pod: PodCgroup, *, sampled_max_memory: int | None, clk_tck: int) -> PodFigures:
    """Every figure of the pod cgroup; `sampled_max_memory` backs up a missing v2 memory.peak."""
    reading = parse.Reading()
    source: MaxMemorySource | None
    if pod.version == "v2":
        reading.merge(read_file(pod.cpu / "cpu.stat", CPU_FIGURES, parse.cpu_from_v2_stat))
        reading.merge(
            read_file(pod.memory / "memory.stat", MEMORY_FIGURES, parse.memory_from_v2_stat)
        )
        peak = read_file(
            pod.memory / "memory.peak",
            ("max_memory",),
            lambda t: parse.max_memory_from_file(t, source="memory.peak"),
        )
        source = "memory.peak"
        if "max_memory" in peak.missing:
            # memory.peak exists from Linux 5.19 on; before that, the largest sample we took.
            samples = [s for s in (sampled_max_memory, read_memory_current(pod)) if s is not None]
            if samples:
                peak = parse.Reading(values={"max_memory": max(samples)})
                source = "sampled"
        reading.merge(peak)
    else:
        reading.merge(
            read_file(pod.cpu / "cpuacct.usage", ("cpu_time",), parse.cpu_time_from_v1_usage)
        )
        reading.merge(
            read_file(
                pod.cpu / "cpuacct.stat",
                ("cpu_user", "cpu_system"),
                lambda t: parse.cpu_split_from_v1_stat(t, clk_tck=clk_tck),
            )
        )
        reading.merge(
            read_file(pod.memory / "memory.stat", MEMORY_FIGURES, parse.memory_from_v1_stat)
        )
        reading.merge(
            read_file(
                pod.memory / "memory.max_usage_in_bytes",
                ("max_memory",),
                lambda t: parse.max_memory_from_file(t, source="memory.max_usage_in_bytes"),
            )
        )
        source = "memory.max_usage_in_bytes"
    return figures_from_reading(reading, max_memory_source=source)


def figures_from_reading(
    reading: parse.Reading, *, max_memory_source: MaxMemorySource | None
) -> PodFigures:
    """PURE: the flat Reading -> typed PodFigures."""
    values = reading.values

    def seconds(name: str) -> float | None:
        value = values.get(name)
        return None if value is None else float(value)

    max_memory = values.get("max_memory")
    return PodFigures(
        cpu_time=seconds("cpu_time"),
        cpu_user=seconds("cpu_user"),
        cpu_system=seconds("cpu_system"),
        max_memory=None if max_memory is None else int(max_memory),
        max_memory_source=max_memory_source if max_memory is not None else None,
        memory={
            name.removeprefix("memory."): int(values[name])
            for name in MEMORY_FIGURES
            if name in values
        },
        missing=dict(reading.missing),
    )


def figures_unavailable(reason: str) -> PodFigures:
    """No pod cgroup at all: every figure missing for one reason."""
    names = (*CPU_FIGURES, "max_memory", *MEMORY_FIGURES)
    return figures_from_reading(parse.missing_all(names, reason), max_memory_source=None)
