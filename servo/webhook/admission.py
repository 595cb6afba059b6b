"""PURE admission logic: a pod spec and settings in, JSON-Patch operations out.

Owns the monitor container (native sidecar or plain container),
the DESCRIPTION of the job container's resources and the ADJUST of its cpu and memory. It does
no I/O and reads no clock; the monitor's credential is a projected service-account token the
kubelet makes (servo/webhook/review.py does the I/O).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from servo.core.monitor_stats import STATS_AUDIENCE, STATS_TOKEN_DIR, STATS_TOKEN_PATH
from servo.core.quantities import format_cpu, format_memory, parse_quantity

# Kubernetes 1.29 turned the SidecarContainers feature on by default; before it an init
# container with restartPolicy Always is rejected or, worse, blocks the pod forever.
NATIVE_SIDECAR_SINCE = (1, 29)
# Seconds the monitor needs after SIGTERM to read the cgroup and deliver (mon/README.md).
MIN_GRACE_PERIOD_S = 30
VOLUME_NAME = "servo-rsys"
TOKEN_VOLUME_NAME = "servo-stats-token"
# The kubelet renews a projected token at 80% of its life; an hour is the usual choice.
TOKEN_EXPIRATION_S = 3600
SYS_MOUNT = "/rsys"
TERMINATION_LOG = "/dev/termination-log"
# The monitor's footprint is ~25-30 MiB RSS (mon/README.md): 48Mi requested, 64Mi cap.
MONITOR_REQUESTS = {"cpu": "10m", "memory": "48Mi"}
MONITOR_LIMITS = {"cpu": "100m", "memory": "64Mi"}
GIB = 1024**3
# The protocol's metrics (DESIGN.md) and their units, for DESCRIPTION.
METRICS = {
    "duration": "s",
    "perf": "1/s",
    "est_duration": "s",
    "cpu_time": "s",
    "max_memory": "bytes",
}


def parse_k8s_version(major: str, minor: str, git_version: str = "") -> tuple[int, int] | None:
    """(major, minor) of /version; minor may carry a '+' (GKE, EKS); None when unreadable."""
    digits_major = re.match(r"\d+", major or "")
    digits_minor = re.match(r"\d+", minor or "")
    if digits_major and digits_minor:
        return int(digits_major.group()), int(digits_minor.group())
    m = re.match(r"v?(\d+)\.(\d+)", git_version or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


# -- the monitor --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MonitorSpec:
    """What the injected monitor looks like (from config)."""

    name: str
    image: str
    # OPTUNE_STATS_URL of the monitor: the servo's stats receiver behind its Service.
    stats_url: str
    # Native sidecar (initContainers, restartPolicy Always) or a plain container.
    native: bool


def _map(x: Any) -> Mapping[str, Any]:
    return x if isinstance(x, Mapping) else {}


def _list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def has_monitor(pod: Mapping[str, Any], name: str) -> bool:
    """Is a container or init container of this name already in the pod (injected before)?"""
    spec = _map(pod.get("spec"))
    return any(
        _map(c).get("name") == name
        for key in ("containers", "initContainers", "ephemeralContainers")
        for c in _list(spec.get(key))
    )


def is_windows(pod: Mapping[str, Any]) -> bool:
    """Windows pods have no cgroups and no /sys: nothing for the monitor to read."""
    return _map(_map(pod.get("spec")).get("os")).get("name") == "windows"


def is_guaranteed(pod: Mapping[str, Any]) -> bool:
    """Guaranteed QoS: every container has cpu and memory limits equal to its requests."""
    spec = _map(pod.get("spec"))
    containers = _list(spec.get("containers")) + _list(spec.get("initContainers"))
    if not containers:
        return False
    for c in containers:
        res = _map(_map(c).get("resources"))
        limits, requests = _map(res.get("limits")), _map(res.get("requests"))
        for key in ("cpu", "memory"):
            if key not in limits:
                return False
            # The API server defaults a missing request to the limit before admission.
            request = requests.get(key, limits[key])
            try:
                if parse_quantity(str(request)) != parse_quantity(str(limits[key])):
                    return False
            except ValueError:
                return False
    return True


def token_volume(name: str) -> dict[str, Any]:
    """The monitor's credential for its POSTs: a service-account token the kubelet projects
    and rotates, for the servo's audience only (useless against the API server), mounted into
    the monitor container alone, so neither the pod spec nor the job container holds it."""
    source = {
        "audience": STATS_AUDIENCE,
        "expirationSeconds": TOKEN_EXPIRATION_S,
        "path": STATS_TOKEN_PATH.rsplit("/", 1)[1],
    }
    return {"name": name, "projected": {"sources": [{"serviceAccountToken": source}]}}


def build_monitor_container(
    spec: MonitorSpec, *, volume: str, token_volume: str, guaranteed: bool
) -> dict[str, Any]:
    """The monitor container; requests equal limits in a Guaranteed pod, so it stays one."""

    def field(name: str, path: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}

    container: dict[str, Any] = {
        "name": spec.name,
        "image": spec.image,
        "env": [
            field("OPTUNE_POD_UID", "metadata.uid"),
            field("OPTUNE_POD_NAME", "metadata.name"),
            field("OPTUNE_POD_NAMESPACE", "metadata.namespace"),
            {"name": "OPTUNE_STATS_URL", "value": spec.stats_url},
            {"name": "OPTUNE_STATS_TOKEN_FILE", "value": STATS_TOKEN_PATH},
            # How it was injected: a native sidecar gets SIGTERM, a plain one must notice.
            {"name": "OPTUNE_SIDECAR_STYLE", "value": "native" if spec.native else "plain"},
        ],
        "resources": {
            "requests": dict(MONITOR_LIMITS if guaranteed else MONITOR_REQUESTS),
            "limits": dict(MONITOR_LIMITS),
        },
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "File",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": volume, "mountPath": SYS_MOUNT, "readOnly": True},
            {"name": token_volume, "mountPath": STATS_TOKEN_DIR, "readOnly": True},
        ],
    }
    if spec.native:
        container["restartPolicy"] = "Always"
    return container


def _free_volume_name(pod_spec: Mapping[str, Any], base: str = VOLUME_NAME) -> str:
    taken = {_map(v).get("name") for v in _list(pod_spec.get("volumes"))}
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return name


def _append(pod_spec: Mapping[str, Any], key: str, item: Any, *, first: bool = False) -> Any:
    """One JSON-Patch op that adds `item` to the list `key`, creating the list if absent."""
    if not isinstance(pod_spec.get(key), list):
        return {"op": "add", "path": f"/spec/{key}", "value": [item]}
    return {"op": "add", "path": f"/spec/{key}/{'0' if first else '-'}", "value": item}


def monitor_patch(pod: Mapping[str, Any], spec: MonitorSpec) -> list[Any]:
    """Ops that inject the monitor, its /sys and token volumes and a long enough grace
    period."""
    pod_spec = _map(pod.get("spec"))
    volume = _free_volume_name(pod_spec)
    token = _free_volume_name(pod_spec, TOKEN_VOLUME_NAME)
    container = build_monitor_container(
        spec, volume=volume, token_volume=token, guaranteed=is_guaranteed(pod)
    )
    ops: list[Any] = []
    if spec.native:
        # First, so it starts before any other init container and sees the whole pod.
        ops.append(_append(pod_spec, "initContainers", container, first=True))
    else:
        # Appended, so container indexes (the app-id path names one) do not move.
        ops.append(_append(pod_spec, "containers", container))
    rsys = {"name": volume, "hostPath": {"path": "/sys", "type": "Directory"}}
    ops.append(_append(pod_spec, "volumes", rsys))
    # The op above made sure the list exists.
    ops.append({"op": "add", "path": "/spec/volumes/-", "value": token_volume(token)})
    grace = pod_spec.get("terminationGracePeriodSeconds")
    if isinstance(grace, int) and not isinstance(grace, bool) and grace < MIN_GRACE_PERIOD_S:
        ops.append(
            {
                "op": "replace",
                "path": "/spec/terminationGracePeriodSeconds",
                "value": MIN_GRACE_PERIOD_S,
            }
        )
    return ops


# -- DESCRIBE and ADJUST ------------------------------------------------------------------


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
    containers = _list(_map(pod.get("spec")).get("containers"))
    return _map(containers[index]) if 0 <= index < len(containers) else {}


def _current(resources: Mapping[str, Any], key: str) -> Decimal | None:
    for part in ("limits", "requests"):
        raw = _map(resources.get(part)).get(key)
        if raw is not None:
            try:
                return parse_quantity(str(raw))
            except ValueError:
                return None
    return None


def build_description(container: Mapping[str, Any], ranges: Ranges) -> dict[str, Any]:
    """DESCRIPTION param: the job container's cpu (cores) and mem (GiB), and the metrics."""
    res = _map(container.get("resources"))
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
    state = _map(_map(_map(param).get("state")).get("application"))
    components = state.get("components")
    if not isinstance(components, Mapping) or not isinstance(name, str):
        return _failed("bad-value", "ADJUST param has no state.application.components")
    unknown = sorted(str(c) for c in components if c != name)
    if unknown:
        return _failed("unknown-component", f"no component {', '.join(unknown)} (have {name})")
    settings = _map(_map(components.get(name)).get("settings"))
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
    resources = {k: dict(_map(v)) for k, v in _map(container.get("resources")).items()}
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
