"""Plain values passed between the servo's parts: pod facts, measurements and report events."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgspec

# The app id of the servo's own events (HELLO, GOODBYE, a check's HELLO), not of any job.
GLOBAL_APP_ID = "_global_"
# The container name under which the webhook injects the monitor (OPTUNE_MONITOR_CONTAINER).
DEFAULT_MONITOR_NAME = "servo-monitor"


class ContainerState(StrEnum):
    """What the job container is doing, as its status says."""

    UNKNOWN = "unknown"  # no status yet (pod pending, not scheduled)
    WAITING = "waiting"
    RUNNING = "running"
    TERMINATED = "terminated"


class PodFacts(msgspec.Struct, frozen=True, gc=False):
    """The small record the servo keeps of a job pod: what a measurement needs, nothing more.

    A msgspec Struct rather than a frozen dataclass: built for every job-pod event, and a
    frozen dataclass's __init__ (one object.__setattr__ per field) cost six times as much.
    gc=False: it holds only strings, numbers and a tuple of strings, never a cycle.
    """

    uid: str
    namespace: str
    name: str
    app_id: str
    node: str = ""
    created_s: float | None = None
    deleting: bool = False
    phase: str = ""
    pod_reason: str = ""
    restart_policy: str = "Always"
    container: str = ""
    resources_json: str = "{}"
    state: ContainerState = ContainerState.UNKNOWN
    started_s: float | None = None
    finished_s: float | None = None
    exit_code: int | None = None
    term_reason: str = ""
    done_at: str | None = None
    # The pod's IP (for log lines; it proves nothing about who sent stats).
    pod_ip: str = ""
    # Name of the monitor container when the pod has one ("" = no monitor: measure at once).
    monitor: str = ""
    # The monitor's termination message (its stats as JSON) once it has terminated.
    monitor_message: str = ""
    # The monitor container has terminated (its message, if any, is in monitor_message).
    monitor_terminated: bool = False
    monitor_finished_s: float | None = None
    # (container id, container name) from containerStatuses[].containerID "<runtime>://<id>".
    container_ids: tuple[tuple[str, str], ...] = ()
    # A servo already delivered this pod's MEASUREMENT (the reported annotation is set).
    reported: bool = False
    # The pod's finalizers when it carries the servo's guard finalizer, else empty.
    finalizers: tuple[str, ...] = ()
    # When deletion was asked for (deletionTimestamp), epoch seconds.
    deleted_s: float | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


class Metric(msgspec.Struct, frozen=True, gc=False):
    value: float
    unit: str


class Measurement(msgspec.Struct, frozen=True, gc=False):
    """One job's MEASUREMENT; `failure` is set (and metrics empty) for a job that never ran.

    Structs, like PodFacts: one is built per completion on the watch thread. gc=False: the
    maps hold strings and Metrics, never a cycle.
    """

    job: PodFacts
    metrics: Mapping[str, Metric] = msgspec.field(default_factory=dict)
    annotations: Mapping[str, str] = msgspec.field(default_factory=dict)
    failure: str | None = None

    def to_param(self) -> dict[str, Any]:
        """The protocol's MEASUREMENT param."""
        annotations = dict(self.annotations)
        if self.failure is not None:
            return {"status": "failed", "message": self.failure, "annotations": annotations}
        metrics = {k: {"value": m.value, "unit": m.unit} for k, m in self.metrics.items()}
        return {"metrics": metrics, "annotations": annotations}


@dataclass(frozen=True, slots=True)
class PodRef:
    """The pod a MEASUREMENT is of: what its reported annotation is patched onto."""

    namespace: str
    name: str
    uid: str


@dataclass(frozen=True, slots=True)
class Event:
    """One protocol call: POST {"id", "event", "param"} to the URL of `app_id`; `pod` (not
    sent) names the pod it measures, from the measurement to the annotation."""

    id: str
    event: str
    app_id: str
    param: Any
    pod: PodRef | None = None

    def body(self) -> dict[str, Any]:
        return {"id": self.id, "event": self.event, "param": self.param}
