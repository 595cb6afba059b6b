"""Pure pod logic: a decoded pod (podwire Structs) -> PodFacts -> "finished?" -> Measurement.

Pods arrive partial and sometimes wrong (watch events, hand-made objects): every missing or
mistyped field yields a default or None, never an exception. No I/O, no clock, no logging.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Mapping
from datetime import datetime
from decimal import ROUND_CEILING
from typing import Any, NamedTuple

import msgspec

from servo.core.appid import AppIdQuery, AppIdResult, resolve_app_id
from servo.core.models import ContainerState, Measurement, Metric, PodFacts
from servo.core.podwire import (
    Container,
    ContainerStatus,
    Meta,
    Pod,
    Spec,
    Status,
    Terminated,
    to_pod,
)
from servo.core.quantities import parse_quantity

# The protocol's failure for a job that never ran (backends match on this text).
NEVER_RAN_MESSAGE = "job deleted before it ran"
# A running job whose pod vanished: there is no finish time, so no duration.
DELETED_RUNNING_MESSAGE = "job deleted before it finished"
# A job pod deleted while no watch was open: it may have run, but nothing can be measured now.
VANISHED_MESSAGE = "job deleted while the servo was not watching"
DONE_AT_ANNOTATION = "done-at"
PERF_OMITTED = "duration is 0 s (API timestamps have one-second resolution)"
# The kubelet's reason for a container the kernel killed for memory.
OOM_REASON = "OOMKilled"
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
# The container name under which the webhook injects the monitor (OPTUNE_MONITOR_CONTAINER).
DEFAULT_MONITOR_NAME = "servo-monitor"
# Set (by merge patch) once a pod's MEASUREMENT was delivered: a restarted servo skips it.
REPORTED_ANNOTATION = "servo.optune.io/reported"
# The finalizer that keeps a job pod until its measurement is safely in the outbox.
GUARD_FINALIZER = "servo.optune.io/measure"


class FactsResult(NamedTuple):
    """PodFacts for a job pod, or None and why it is not one (built only when asked)."""

    facts: PodFacts | None
    miss: AppIdResult | str = ""

    @property
    def why(self) -> str:
        return self.miss if isinstance(self.miss, str) else self.miss.why


_NO_SPEC, _NO_STATUS, _NO_CONTAINER, _NO_META = Spec(), Status(), Container(), Meta()


# Strings many pods repeat (namespace, node, phase, container name, resources) are interned:
# one copy for all of them, so a tracked pod costs well under a KiB.
_intern = sys.intern


def _epoch(t: datetime | None) -> float | None:
    """API time -> epoch seconds; None when absent or the zero time (a container that failed
    to start reports startedAt "1970-01-01T00:00:00Z")."""
    if t is None:
        return None
    ts = t.timestamp()
    return ts if ts > 0 else None


def facts_from_pod(
    pod: Pod | Mapping[str, Any],
    query: AppIdQuery,
    *,
    doc: Mapping[str, Any] | None = None,
    monitor_name: str = DEFAULT_MONITOR_NAME,
) -> FactsResult:
    """Extract the small record of a job pod; pods without an app id are not jobs.

    `pod` is the typed Struct (or plain JSON, converted here); the app-id path is followed
    through `doc`, the whole pod as plain JSON, when there is one.
    """
    if not isinstance(pod, Pod):
        doc, pod = pod, to_pod(pod)
    meta = pod.metadata or _NO_META
    uid, name = meta.uid, meta.name
    if not uid or not name:
        return FactsResult(None, "pod has no metadata.uid or metadata.name")
    found = resolve_app_id(pod if doc is None else doc, query)
    if found.value is None:
        return FactsResult(None, found)
    spec = pod.spec or _NO_SPEC
    status = pod.status or _NO_STATUS
    containers = spec.containers or ()
    index = query.job_container_index
    container = containers[index] if index < len(containers) else _NO_CONTAINER
    cname = container.name or ""
    state, term = _state_of(_container_status(status.container_statuses, cname))
    annotations = meta.annotations or {}
    finalizers = meta.finalizers or ()
    monitor = _monitor(spec, status, monitor_name)
    ended = state is ContainerState.TERMINATED
    return FactsResult(
        PodFacts(
            uid=uid,
            namespace=_intern(meta.namespace or ""),
            name=name,
            app_id=_intern(found.value or ""),
            node=_intern(spec.node_name or ""),
            created_s=_epoch(meta.creation_timestamp),
            deleting=meta.deletion_timestamp is not None,
            phase=_intern(status.phase or ""),
            pod_reason=_intern(status.reason or ""),
            restart_policy=_intern(spec.restart_policy or "") or "Always",
            container=_intern(cname or ""),
            resources_json=_resources_json(container.resources),
            state=state,
            started_s=_epoch(term.started_at),
            finished_s=_epoch(term.finished_at),
            exit_code=term.exit_code,
            term_reason=_intern(term.reason or ""),
            done_at=annotations.get(DONE_AT_ANNOTATION),
            pod_ip=status.pod_ip or "",
            reported=REPORTED_ANNOTATION in annotations,
            # All finalizers, when ours is among them (the servo must remove it); else ().
            finalizers=tuple(finalizers) if GUARD_FINALIZER in finalizers else (),
            deleted_s=_epoch(meta.deletion_timestamp),
            monitor=monitor.name,
            monitor_message=monitor.message,
            monitor_terminated=monitor.terminated,
            monitor_finished_s=monitor.finished_s,
            # Only a monitored job's end needs them (to name the monitor's per-container
            # figures); a running pod keeps none, so a tracked pod stays small.
            container_ids=_container_ids(status) if monitor.name and ended else (),
        )
    )


class _MonitorState(NamedTuple):
    name: str = ""
    message: str = ""
    terminated: bool = False
    finished_s: float | None = None


_NO_MONITOR = _MonitorState()
# containerID is "<runtime>://<id>"; the monitor names containers by the id.
_ID_SEP = "://"
MAX_CONTAINER_IDS = 32


def _container_ids(status: Status) -> tuple[tuple[str, str], ...]:
    out = []
    for statuses in (status.container_statuses, status.init_container_statuses):
        for cs in statuses or ():
            cid, name = cs.container_id, cs.name
            if isinstance(cid, str) and name and _ID_SEP in cid:
                out.append((cid.split(_ID_SEP, 1)[1][:128], name))
    return tuple(out[:MAX_CONTAINER_IDS])


def _monitor(spec: Spec, status: Status, name: str) -> _MonitorState:
    """The monitor container (a plain container or a native sidecar, i.e. an init
    container): its name, termination message and whether it has terminated."""
    if not name:
        return _NO_MONITOR
    for containers, statuses in (
        (spec.containers, status.container_statuses),
        (spec.init_containers, status.init_container_statuses),
    ):
        for c in containers or ():
            if c.name != name:
                continue
            state, term = _state_of(_container_status(statuses, name))
            ended = state is ContainerState.TERMINATED
            return _MonitorState(name, term.message or "", ended, _epoch(term.finished_at))
    return _NO_MONITOR


def _container_status(statuses: list[ContainerStatus] | None, name: str) -> ContainerStatus:
    # Find the status by name: the order of containerStatuses is not the order of the spec.
    if name:
        for cs in statuses or ():
            if cs.name == name:
                return cs
    return _NO_CONTAINER_STATUS


_NO_CONTAINER_STATUS, _NO_TERMINATED = ContainerStatus(), Terminated()


def _state_of(cstatus: ContainerStatus) -> tuple[ContainerState, Terminated]:
    state = cstatus.state
    if state is None:
        return ContainerState.UNKNOWN, _NO_TERMINATED
    if state.terminated is not None:
        return ContainerState.TERMINATED, state.terminated
    if state.running is not None:
        return ContainerState.RUNNING, _NO_TERMINATED
    if state.waiting is not None:
        # A container restarted in place (OnFailure) waits with its last run in lastState:
        # keep that run, so a pod deleted in back-off is still measured by its last attempt.
        last = cstatus.last_state
        return ContainerState.WAITING, (last.terminated if last else None) or _NO_TERMINATED
    return ContainerState.UNKNOWN, _NO_TERMINATED


@functools.lru_cache(maxsize=1024)
def _resources_json_of(encoded: bytes) -> str:
    return sys.intern(encoded.decode())


def _resources_json(resources: dict[str, Any] | None) -> str:
    """The container's resources as compact JSON with sorted keys (one shared copy)."""
    if not resources:
        return "{}"
    try:
        return _resources_json_of(msgspec.json.encode(resources, order="sorted"))
    except (TypeError, ValueError, msgspec.EncodeError):
        return "{}"


def is_finished(facts: PodFacts) -> bool:
    """Has the job container terminated for good?"""
    if facts.state is not ContainerState.TERMINATED:
        return False
    if facts.phase in TERMINAL_PHASES or facts.deleting:
        return True
    # restartPolicy OnFailure restarts a failed container in place: only exit 0 is final then.
    if facts.restart_policy in ("OnFailure", "Always") and facts.exit_code != 0:
        return False
    return True


def never_started(facts: PodFacts) -> bool:
    """Did the pod fail without its job container ever starting (evicted, deadline, bad image),
    or is it being deleted before its job container started (the kubelet starts no container
    in a pod marked for deletion; a finalizer may keep such a pod around)?"""
    if (
        facts.deleting
        and facts.started_s is None
        and facts.state
        in (
            ContainerState.UNKNOWN,
            ContainerState.WAITING,
        )
    ):
        return True
    if facts.phase != "Failed":
        return False
    if facts.state is ContainerState.TERMINATED:
        return facts.started_s is None
    return facts.state is not ContainerState.RUNNING


def base_annotations(facts: PodFacts) -> dict[str, str]:
    """Annotations every measurement carries: where the job ran."""
    return {
        "namespace": facts.namespace,
        "pod": facts.name,
        "uid": facts.uid,
        "node": facts.node,
        "container": facts.container,
    }


def measurement_from_facts(facts: PodFacts) -> Measurement:
    """The MEASUREMENT of a finished job container (see is_finished)."""
    annotations = base_annotations(facts)
    annotations["resources"] = facts.resources_json
    annotations["exitcode"] = "" if facts.exit_code is None else str(facts.exit_code)
    annotations["reason"] = facts.term_reason
    if facts.term_reason == OOM_REASON:
        annotations["oom_killed"] = "true"
    if facts.started_s is None:
        # Terminated without ever starting (StartError, ContainerCannotRun).
        return failure(facts, NEVER_RAN_MESSAGE, reason=facts.term_reason or "NeverStarted")
    metrics: dict[str, Metric] = {}
    if facts.finished_s is not None:
        duration_s = _whole(facts.finished_s - facts.started_s)
        if duration_s < 0:
            annotations["duration"] = "omitted: finishedAt is before startedAt"
        else:
            metrics["duration"] = Metric(duration_s, "s")
            if duration_s > 0:
                metrics["perf"] = Metric(1 / duration_s, "1/s")
            else:
                annotations["perf"] = f"omitted: {PERF_OMITTED}"
    est = _est_duration(facts, annotations)
    if est is not None:
        metrics["est_duration"] = Metric(est, "s")
    limit = memory_limit_bytes(facts.resources_json)
    if limit is not None:
        metrics["memory_limit"] = Metric(limit, "bytes")
    return Measurement(job=facts, metrics=metrics, annotations=annotations)


@functools.lru_cache(maxsize=1024)
def memory_limit_bytes(resources_json: str) -> int | None:
    """The job container's resources.limits.memory in bytes; None when unset or unreadable.
    Cached: the resources JSON is one shared string per distinct spec (see _resources_json)."""
    try:
        limits = json.loads(resources_json).get("limits")
        raw = limits.get("memory") if isinstance(limits, dict) else None
        if not isinstance(raw, str | int) or isinstance(raw, bool):
            return None
        # Compared as a Decimal first: "1e999999999" must not become a gigabyte integer.
        quantity = parse_quantity(str(raw))
        if not 0 <= quantity < 1 << 63:
            return None
        return int(quantity.to_integral_value(rounding=ROUND_CEILING))
    except (ValueError, ArithmeticError, AttributeError, RecursionError):
        return None


def _est_duration(facts: PodFacts, annotations: dict[str, str]) -> float | None:
    if facts.done_at is None or facts.created_s is None:
        return None
    try:
        done_at_s = int(facts.done_at.strip())
    except ValueError:
        annotations["est_duration"] = f"omitted: {DONE_AT_ANNOTATION} {facts.done_at[:40]!r}"
        annotations["est_duration"] += " is not an integer (epoch seconds)"
        return None
    return _whole(done_at_s - facts.created_s)


def _whole(seconds: float) -> float:
    # API times have one-second resolution: report 95, not 95.0.
    return int(seconds) if float(seconds).is_integer() else seconds


def failure(facts: PodFacts, message: str, *, reason: str) -> Measurement:
    """A failed MEASUREMENT ("job deleted before it ran" and its kin)."""
    annotations = base_annotations(facts)
    annotations["reason"] = reason
    return Measurement(job=facts, annotations=annotations, failure=message)


def measurement_on_delete(facts: PodFacts) -> Measurement:
    """What to report for a job pod deleted before it was reported."""
    ran = facts.state is ContainerState.WAITING and facts.started_s is not None
    if facts.state is ContainerState.TERMINATED or ran:
        return measurement_from_facts(facts)
    if facts.state is ContainerState.RUNNING:
        return failure(facts, DELETED_RUNNING_MESSAGE, reason="Deleted")
    return failure(facts, NEVER_RAN_MESSAGE, reason="Deleted")


def measurement_never_started(facts: PodFacts) -> Measurement:
    """The failure for a pod that failed, or is deleted, before its job container started."""
    reason = facts.pod_reason or facts.term_reason or ("Deleted" if facts.deleting else "Failed")
    return failure(facts, NEVER_RAN_MESSAGE, reason=reason)
