"""PURE: the job container's resources in the WHATS_NEXT exchange: DESCRIPTION and ADJUST.

DESCRIPTION states the container's current cpu and memory and the ranges the backend may choose
from; ADJUST checks the backend's settings against those ranges and turns them into patch
operations on the container's resources. No I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from servo.core.quantities import format_cpu, format_memory, parse_quantity
from servo.webhook.admission import as_list, as_map

GIB = 1024**3
# The protocol's metrics (DESIGN.md) and their units, for DESCRIPTION.
METRICS = {
    "duration": "s",
    "perf": "1/s",
    "est_duration": "s",
    "cpu_time": "s",
    "max_memory": "bytes",
}


@dataclass(frozen=True, slots=True)
class SettingRange:
    """A DESCRIPTION range; cpu in cores, mem in GiB (the Opsani servo's units)."""

    min: float
    max: float
    step: float


@dataclass(frozen=True, slots=True)
class Ranges:
    cpu: SettingRange = SettingRange(0.125, 16.0, 0.125)
    mem: SettingRange = SettingRange(0.125, 64.0, 0.125)


def job_container(pod: Mapping[str, Any], index: int) -> Mapping[str, Any]:
    """The job container (the one the app-id path points into), or {} when there is none."""
    containers = as_list(as_map(pod.get("spec")).get("containers"))
    return as_map(containers[index]) if 0 <= index < len(containers) else {}


def _current(resources: Mapping[str, Any], key: str) -> Decimal | None:
    for part in ("limits", "requests"):
        raw = as_map(resources.get(part)).get(key)
        if raw is not None:
            try:
                return parse_quantity(str(raw))
            except ValueError:
                return None
    return None


def build_description(container: Mapping[str, Any], ranges: Ranges) -> dict[str, Any]:
    """DESCRIPTION param: the job container's cpu (cores) and mem (GiB), and the metrics."""
    res = as_map(container.get("resources"))
    cpu = _current(res, "cpu")
    mem = _current(res, "memory")
    settings: dict[str, Any] = {}
    for key, value, rng in (
        ("cpu", None if cpu is None else float(cpu), ranges.cpu),
        ("mem", None if mem is None else float(mem / GIB), ranges.mem),
    ):
        settings[key] = {
            "value": value,
            "min": rng.min,
            "max": rng.max,
            "step": rng.step,
            "type": "range",
        }
    name = str(container.get("name") or "")
    return {
        "application": {"components": {name: {"settings": settings}}},
        "measurement": {"metrics": {k: {"unit": u} for k, u in METRICS.items()}},
    }


@dataclass(frozen=True, slots=True)
class Adjustment:
    """The outcome of an ADJUST: JSON-Patch ops and the ADJUSTMENT param to send back."""

    ops: list[Any]
    reply: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.reply.get("status") == "ok"


def _failed(reason: str, message: str) -> Adjustment:
    return Adjustment([], {"status": "failed", "reason": reason, "message": message})


def _setting_value(key: str, raw: Any, rng: SettingRange) -> Decimal:
    """cpu: cores or a quantity string; mem: GiB or a quantity string. Raises ValueError."""
    if isinstance(raw, Mapping):
        raw = raw.get("value")
    if isinstance(raw, bool) or raw is None:
        raise ValueError(f"{key}: expected a number, got {raw!r}")
    if isinstance(raw, int | float):
        if not math.isfinite(raw):
            raise ValueError(f"{key}: {raw!r} is not a finite number")
        value = Decimal(str(raw)) * (GIB if key == "mem" else 1)
    elif isinstance(raw, str):
        value = parse_quantity(raw)
    else:
        raise ValueError(f"{key}: expected a number or a quantity, got {type(raw).__name__}")
    scaled = float(value / GIB) if key == "mem" else float(value)
    if not rng.min <= scaled <= rng.max:
        raise ValueError(f"{key}: {raw!r} is outside {rng.min:g}..{rng.max:g}")
    return value


def build_adjustment(
    pod: Mapping[str, Any], param: Any, *, index: int, ranges: Ranges
) -> Adjustment:
    """Apply an ADJUST param to the job container: all settings, or none (status failed)."""
    container = job_container(pod, index)
    name = container.get("name")
    state = as_map(as_map(as_map(param).get("state")).get("application"))
    components = state.get("components")
    if not isinstance(components, Mapping) or not isinstance(name, str):
        return _failed("bad-value", "ADJUST param has no state.application.components")
    unknown = sorted(str(c) for c in components if c != name)
    if unknown:
        return _failed("unknown-component", f"no component {', '.join(unknown)} (have {name})")
    settings = as_map(as_map(components.get(name)).get("settings"))
    bad = sorted(str(k) for k in settings if k not in ("cpu", "mem"))
    if bad:
        return _failed("bad-value", f"unknown setting {', '.join(bad)} (have cpu, mem)")
    new: dict[str, Decimal] = {}
    try:
        for key in ("cpu", "mem"):
            if key in settings:
                new[key] = _setting_value(key, settings[key], getattr(ranges, key))
    except ValueError as e:
        return _failed("bad-value", str(e))
    resources = {k: dict(as_map(v)) for k, v in as_map(container.get("resources")).items()}
    limits = resources.setdefault("limits", {})
    requests = resources.setdefault("requests", {})
    applied: dict[str, Any] = {}
    for key, value in new.items():
        res_key = "cpu" if key == "cpu" else "memory"
        text = format_cpu(value) if key == "cpu" else format_memory(int(value))
        old_limit = _quantity_or_none(limits.get(res_key))
        old_request = _quantity_or_none(requests.get(res_key))
        limits[res_key] = text
        new_limit = parse_quantity(text)
        # Keep requests <= limits; a request equal to its old limit (Guaranteed) follows it.
        if old_request is None or old_request == old_limit or old_request > new_limit:
            requests[res_key] = text
        applied[key] = {"value": float(new_limit / GIB) if key == "mem" else float(new_limit)}
    if not new:
        return Adjustment([], {"status": "ok", "state": _state(name, {})})
    op = {"op": "add", "path": f"/spec/containers/{index}/resources", "value": resources}
    return Adjustment([op], {"status": "ok", "state": _state(name, applied)})


def _state(name: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    return {"application": {"components": {name: {"settings": dict(settings)}}}}


def _quantity_or_none(raw: Any) -> Decimal | None:
    try:
        return None if raw is None else parse_quantity(str(raw))
    except ValueError:
        return None
