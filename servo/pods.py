"""Pure pod logic: raw pod JSON -> PodFacts -> "finished?" -> Measurement.

Pods arrive partial and sometimes wrong (watch events, hand-made objects): every missing or
mistyped field yields a default or None, never an exception. No I/O, no clock, no logging.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeGuard

import msgspec

from servo.appid import AppIdQuery, resolve_app_id
from servo.models import ContainerState, Measurement, Metric, PodFacts, RawPod

# The protocol's failure for a job that never ran (backends match on this text).
NEVER_RAN_MESSAGE = "job deleted before it ran"
# A running job whose pod vanished: there is no finish time, so no duration.
DELETED_RUNNING_MESSAGE = "job deleted before it finished"
# A job pod deleted while no watch was open: it may have run, but nothing can be measured now.
VANISHED_MESSAGE = "job deleted while the servo was not watching"
DONE_AT_ANNOTATION = "done-at"
PERF_OMITTED = "duration is 0 s (API timestamps have one-second resolution)"
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
# The container name under which the webhook injects the monitor (OPTUNE_MONITOR_CONTAINER).
DEFAULT_MONITOR_NAME = "servo-monitor"
# The monitor's env var holding its per-pod stats token.
STATS_TOKEN_ENV = "OPTUNE_STATS_TOKEN"
# Set (by merge patch) once a pod's MEASUREMENT was delivered: a restarted servo skips it.
REPORTED_ANNOTATION = "servo.optune.io/reported"
# The finalizer that keeps a job pod until its measurement is safely in the outbox.
GUARD_FINALIZER = "servo.optune.io/measure"


@dataclass(frozen=True, slots=True)
class FactsResult:
    """PodFacts for a job pod, or None and why it is not one."""

    facts: PodFacts | None
    why: str = ""


def _is_map(x: Any) -> TypeGuard[Mapping[str, Any]]:
    return type(x) is dict or isinstance(x, Mapping)


def _map(x: Any) -> Mapping[str, Any]:
    # Decoded JSON is a dict: check that first (isinstance against the Mapping ABC is slow,
    # and this runs for every field of every pod event).
    return x if _is_map(x) else {}


def _list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def _str(x: Any) -> str:
    return x if isinstance(x, str) else ""


def _shared(x: Any) -> str:
    """A string many pods repeat (namespace, node, phase, container name, resources): one
    copy for all of them, so a tracked pod costs well under a KiB."""
    return sys.intern(x) if type(x) is str else ""


def parse_timestamp(value: Any) -> float | None:
    """RFC 3339 API time -> epoch seconds; None when absent, malformed or the zero time."""
    if not isinstance(value, str) or not value:
        return None
    try:
        ts = datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None
    # A container that failed to start reports startedAt "1970-01-01T00:00:00Z".
    return ts if ts > 0 else None


def facts_from_pod(
    pod: RawPod, query: AppIdQuery, *, monitor_name: str = DEFAULT_MONITOR_NAME
) -> FactsResult:
    """Extract the small record of a job pod; pods without an app id are not jobs."""
    meta = _map(pod.get("metadata"))
    uid, name = _str(meta.get("uid")), _str(meta.get("name"))
    namespace = _shared(meta.get("namespace"))
    if not uid or not name:
        return FactsResult(None, "pod has no metadata.uid or metadata.name")
    found = resolve_app_id(pod, query)
    if found.value is None:
        return FactsResult(None, found.why)
    spec = _map(pod.get("spec"))
    status = _map(pod.get("status"))
    containers = _list(spec.get("containers"))
    index = query.job_container_index
    container = _map(containers[index]) if index < len(containers) else {}
    cname = _str(container.get("name"))
    cstatus = _container_status(status, cname)
    state, term = _state_of(cstatus)
    annotations = _map(meta.get("annotations"))
    done_at = annotations.get(DONE_AT_ANNOTATION)
    return FactsResult(
        PodFacts(
            uid=uid,
            namespace=namespace,
            name=name,
            app_id=_shared(found.value),
            node=_shared(spec.get("nodeName")),
            created_s=parse_timestamp(meta.get("creationTimestamp")),
            deleting=meta.get("deletionTimestamp") is not None,
            phase=_shared(status.get("phase")),
            pod_reason=_shared(status.get("reason")),
            restart_policy=_shared(spec.get("restartPolicy")) or "Always",
            container=_shared(cname),
            resources_json=_shared(_compact_json(container.get("resources") or {})),
            state=state,
            started_s=parse_timestamp(term.get("startedAt")),
            finished_s=parse_timestamp(term.get("finishedAt")),
            exit_code=_int_or_none(term.get("exitCode")),
            term_reason=_shared(term.get("reason")),
            done_at=done_at if isinstance(done_at, str) else None,
            pod_ip=_str(status.get("podIP")),
            reported=REPORTED_ANNOTATION in annotations,
            finalizers=_guard_finalizers(meta),
            deleted_s=parse_timestamp(meta.get("deletionTimestamp")),
            **_monitor_facts(spec, status, monitor_name),
        )
    )


def _guard_finalizers(meta: Mapping[str, Any]) -> tuple[str, ...]:
    """All finalizers, when ours is among them (the servo must remove it); else ()."""
    finalizers = tuple(f for f in _list(meta.get("finalizers")) if isinstance(f, str))
    return finalizers if GUARD_FINALIZER in finalizers else ()


def _monitor_facts(spec: Mapping[str, Any], status: Mapping[str, Any], name: str) -> dict[str, str]:
    """The monitor container, as a plain container or a native sidecar (init container)."""
    for containers, statuses in (
        ("containers", "containerStatuses"),
        ("initContainers", "initContainerStatuses"),
    ):
        for c in _list(spec.get(containers)):
            if _is_map(c) and c.get("name") == name and name:
                token = next(
                    (
                        _str(e.get("value"))
                        for e in _list(c.get("env"))
                        if _is_map(e) and e.get("name") == STATS_TOKEN_ENV
                    ),
                    "",
                )
                cstatus = next(
                    (
                        cs
                        for cs in _list(status.get(statuses))
                        if _is_map(cs) and cs.get("name") == name
                    ),
                    {},
                )
                term = _map(_map(cstatus.get("state")).get("terminated"))
                return {
                    "monitor": name,
                    "monitor_message": _str(term.get("message")),
                    "stats_token": token,
                }
    return {}


def _container_status(status: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    # Find the status by name: the order of containerStatuses is not the order of the spec.
    for cs in _list(status.get("containerStatuses")):
        if _is_map(cs) and cs.get("name") == name and name:
            return cs
    return {}


def _state_of(cstatus: Mapping[str, Any]) -> tuple[ContainerState, Mapping[str, Any]]:
    state = _map(cstatus.get("state"))
    if "terminated" in state:
        return ContainerState.TERMINATED, _map(state["terminated"])
    if "running" in state:
        return ContainerState.RUNNING, {}
    if "waiting" in state:
        # A container restarted in place (OnFailure) waits with its last run in lastState:
        # keep that run, so a pod deleted in back-off is still measured by its last attempt.
        return ContainerState.WAITING, _map(_map(cstatus.get("lastState")).get("terminated"))
    return ContainerState.UNKNOWN, {}


def _int_or_none(x: Any) -> int | None:
    return x if isinstance(x, int) and not isinstance(x, bool) else None


def _compact_json(x: Any) -> str:
    try:
        return msgspec.json.encode(x, order="sorted").decode()
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
    return Measurement(job=facts, metrics=metrics, annotations=annotations)


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
