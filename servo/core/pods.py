"""PURE: a decoded pod (podwire Structs) -> the PodFacts the servo tracks.

Pods arrive partial and sometimes wrong (watch events, hand-made objects): every missing or
mistyped field yields a default or None, never an exception. No I/O, no clock, no logging.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

import msgspec

from servo.core.appid import AppIdQuery, AppIdResult, resolve_app_id
from servo.core.models import DEFAULT_MONITOR_NAME, ContainerState, PodFacts
from servo.core.podstructs import (
    Container,
    ContainerStatus,
    Meta,
    Pod,
    Spec,
    Status,
    Terminated,
    to_pod,
)

DONE_AT_ANNOTATION = "done-at"
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
