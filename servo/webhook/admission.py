"""PURE admission logic for the monitor: a pod spec and settings in, JSON-Patch operations out.

Owns the monitor container (native sidecar or plain container), its volumes and its projected
service-account token (the kubelet makes it). The job container's DESCRIPTION and ADJUST are
resources.py's; no I/O, no clock (review.py does the I/O).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from servo.core.monitor_stats import STATS_AUDIENCE, STATS_TOKEN_DIR, STATS_TOKEN_PATH
from servo.core.quantities import parse_quantity

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


def as_map(x: Any) -> Mapping[str, Any]:
    """x when it is a JSON object, else {} (a pod field of the wrong type reads as empty)."""
    return x if isinstance(x, Mapping) else {}


def as_list(x: Any) -> list[Any]:
    """x when it is a JSON array, else []."""
    return x if isinstance(x, list) else []


def has_monitor(pod: Mapping[str, Any], name: str) -> bool:
    """Is a container or init container of this name already in the pod (injected before)?"""
    spec = as_map(pod.get("spec"))
    return any(
        as_map(c).get("name") == name
        for key in ("containers", "initContainers", "ephemeralContainers")
        for c in as_list(spec.get(key))
    )


def is_windows(pod: Mapping[str, Any]) -> bool:
    """Windows pods have no cgroups and no /sys: nothing for the monitor to read."""
    return as_map(as_map(pod.get("spec")).get("os")).get("name") == "windows"


def is_guaranteed(pod: Mapping[str, Any]) -> bool:
    """Guaranteed QoS: every container has cpu and memory limits equal to its requests."""
    spec = as_map(pod.get("spec"))
    containers = as_list(spec.get("containers")) + as_list(spec.get("initContainers"))
    if not containers:
        return False
    for c in containers:
        res = as_map(as_map(c).get("resources"))
        limits, requests = as_map(res.get("limits")), as_map(res.get("requests"))
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
    taken = {as_map(v).get("name") for v in as_list(pod_spec.get("volumes"))}
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
    pod_spec = as_map(pod.get("spec"))
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
