"""PURE: a job pod's facts -> "finished?" -> its MEASUREMENT (or the failure that stands for it).

The facts come from `servo.core.pods`; this module decides when a job is over and what its
measurement says: duration, perf, the memory limit, the kubelet's reason, and the failures of a
job that never ran or vanished. No I/O, no clock.
"""

from __future__ import annotations

import functools
import json
from decimal import ROUND_CEILING

from servo.core.figure_bounds import BYTES_LIMIT
from servo.core.models import ContainerState, Measurement, Metric, PodFacts
from servo.core.pods import DONE_AT_ANNOTATION
from servo.core.quantities import parse_quantity

# The protocol's failure for a job that never ran (backends match on this text).
NEVER_RAN_MESSAGE = "job deleted before it ran"
# A running job whose pod vanished: there is no finish time, so no duration.
DELETED_RUNNING_MESSAGE = "job deleted before it finished"
# A job pod deleted while no watch was open: it may have run, but nothing can be measured now.
VANISHED_MESSAGE = "job deleted while the servo was not watching"
PERF_OMITTED = "duration is 0 s (API timestamps have one-second resolution)"
# The kubelet's reason for a container the kernel killed for memory.
OOM_REASON = "OOMKilled"
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


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
        if not 0 <= quantity < BYTES_LIMIT:
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
