"""PURE parsers for cgroup file contents, v1 and v2, with the reason when a figure is missing.

Text in, figures out: no file access, no clock. A figure that cannot be had is not guessed; its
name goes into `missing` with a reason (empty file, half-written line, field absent).

Units: v1 cpuacct.usage is nanoseconds, v1 cpuacct.stat is USER_HZ ticks, v2 cpu.stat is
microseconds; memory files are bytes. Every CPU figure comes out in seconds.

v1 memory.stat -> breakdown (v1 has no exact equivalents for every v2 field):
  anon         total_rss    (anonymous + swap cache; the kernel docs say it already includes
                             transparent huge pages, so total_rss_huge is not added again)
  file         total_cache  (page cache, shmem included, as v2 `file`)
  kernel_stack total_kernel_stack if the kernel has it, else missing (v1 does not report it)
  pagetables   total_pagetables if present, else missing
The `total_` keys are hierarchical (the pod dir itself holds no tasks; its containers do); the
plain keys are used only when a kernel lacks the totals.
"""

from __future__ import annotations

from collections.abc import Mapping

from mon.errors import CgroupParseError

NS_PER_S = 1_000_000_000
US_PER_S = 1_000_000
# The CPU figures every cpu parser gives, in seconds.
CPU_FIGURES = ("cpu_time", "cpu_user", "cpu_system")
MEMORY_FIELDS = ("anon", "file", "kernel_stack", "pagetables")
_V1_MEMORY_KEYS: Mapping[str, tuple[str, ...]] = {
    "anon": ("total_rss", "rss"),
    "file": ("total_cache", "cache"),
    "kernel_stack": ("total_kernel_stack", "kernel_stack"),
    "pagetables": ("total_pagetables", "pagetables"),
}


class Reading:
    """Figures read so far and, for each one that could not be, the reason."""

    __slots__ = ("values", "missing")

    def __init__(
        self,
        values: dict[str, float | int] | None = None,
        missing: dict[str, str] | None = None,
    ) -> None:
        self.values: dict[str, float | int] = {} if values is None else values
        self.missing: dict[str, str] = {} if missing is None else missing

    def __repr__(self) -> str:
        return f"Reading(values={self.values!r}, missing={self.missing!r})"

    def merge(self, other: Reading) -> Reading:
        self.values.update(other.values)
        self.missing.update(other.missing)
        return self


def parse_int(text: str) -> int:
    """A file holding one non-negative integer (memory.peak, cpuacct.usage...)."""
    stripped = text.strip()
    if not stripped:
        raise CgroupParseError("empty")
    if not stripped.isdigit():
        raise CgroupParseError(f"not a non-negative integer: {stripped[:40]!r}")
    return int(stripped)


def parse_keyed(text: str) -> dict[str, int]:
    """A flat-keyed file (`key value` per line). Malformed or half-written lines are skipped."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def missing_all(names: tuple[str, ...], reason: str) -> Reading:
    """Every figure of one file missing for one reason (the file could not be read)."""
    return Reading(missing=dict.fromkeys(names, reason))


def _pick(
    fields: Mapping[str, int], *, figures: Mapping[str, str], source: str, scale: float
) -> Reading:
    reading = Reading()
    for figure, key in figures.items():
        if key in fields:
            reading.values[figure] = fields[key] / scale
        else:
            reading.missing[figure] = f"{source}: no {key} field"
    return reading


def cpu_from_v2_stat(text: str) -> Reading:
    """v2 cpu.stat (microseconds) -> cpu_time, cpu_user, cpu_system in seconds."""
    return _pick(
        parse_keyed(text),
        figures={"cpu_time": "usage_usec", "cpu_user": "user_usec", "cpu_system": "system_usec"},
        source="cpu.stat",
        scale=US_PER_S,
    )


def cpu_time_from_v1_usage(text: str) -> Reading:
    """v1 cpuacct.usage (nanoseconds, children included) -> cpu_time in seconds."""
    try:
        return Reading(values={"cpu_time": parse_int(text) / NS_PER_S})
    except CgroupParseError as e:
        return Reading(missing={"cpu_time": f"cpuacct.usage: {e}"})


def cpu_split_from_v1_stat(text: str, *, clk_tck: int) -> Reading:
    """v1 cpuacct.stat (USER_HZ ticks) -> cpu_user, cpu_system in seconds."""
    return _pick(
        parse_keyed(text),
        figures={"cpu_user": "user", "cpu_system": "system"},
        source="cpuacct.stat",
        scale=clk_tck,
    )


def memory_from_v2_stat(text: str) -> Reading:
    """v2 memory.stat -> memory.anon/file/kernel_stack/pagetables in bytes."""
    fields = parse_keyed(text)
    reading = Reading()
    for name in MEMORY_FIELDS:
        if name in fields:
            reading.values[f"memory.{name}"] = fields[name]
        else:
            reading.missing[f"memory.{name}"] = f"memory.stat: no {name} field"
    return reading


def memory_from_v1_stat(text: str) -> Reading:
    """v1 memory.stat -> the nearest breakdown (see the module docstring for the mapping)."""
    fields = parse_keyed(text)
    reading = Reading()
    for name, keys in _V1_MEMORY_KEYS.items():
        key = next((k for k in keys if k in fields), None)
        if key is not None:
            reading.values[f"memory.{name}"] = fields[key]
        elif name in ("kernel_stack", "pagetables") and fields:
            reading.missing[f"memory.{name}"] = "not reported by cgroup v1 memory.stat"
        else:
            reading.missing[f"memory.{name}"] = f"memory.stat: no {keys[0]} field"
    return reading


def max_memory_from_file(text: str, *, source: str) -> Reading:
    """memory.peak (v2) or memory.max_usage_in_bytes (v1) -> max_memory in bytes."""
    try:
        return Reading(values={"max_memory": parse_int(text)})
    except CgroupParseError as e:
        return Reading(missing={"max_memory": f"{source}: {e}"})


def oom_kills_from_events(text: str, *, source: str) -> Reading:
    """v1 memory.oom_control or v2 memory.events -> oom_kills (the `oom_kill` counter)."""
    value = parse_keyed(text).get("oom_kill")
    if value is None:
        return Reading(missing={"oom_kills": f"{source}: no oom_kill field"})
    return Reading(values={"oom_kills": value})


def is_populated(cgroup_events: str) -> bool | None:
    """v2 cgroup.events -> the `populated` flag; None when the file is half-written."""
    value = parse_keyed(cgroup_events).get("populated")
    return None if value is None else value != 0
