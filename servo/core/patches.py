"""PURE: the finalizer guard and the reported mark, as patches.

With the guard on, job pods carry GUARD_FINALIZER from admission (the webhook, or the job
template), so a pod deleted before the servo saw it finish stays until it is measured. The servo
removes the finalizer once the measurement is in the outbox; a safety valve removes it from pods
that have waited for deletion longer than the maximum age, whatever became of them, so a servo
outage never leaves pods stuck for good. After a 2xx the pod gets REPORTED_ANNOTATION, so a
restarted servo measures it no more.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from servo.core.models import PodFacts
from servo.core.pods import GUARD_FINALIZER, REPORTED_ANNOTATION


def release_patch(uid: str, finalizers: tuple[str, ...]) -> list[dict[str, Any]]:
    """JSON patch removing our finalizer; the tests make it fail (422) if the pod was replaced
    or its finalizers changed since we read them, so nobody else's finalizer is lost."""
    return [
        {"op": "test", "path": "/metadata/uid", "value": uid},
        {"op": "test", "path": "/metadata/finalizers", "value": list(finalizers)},
        {
            "op": "replace",
            "path": "/metadata/finalizers",
            "value": [f for f in finalizers if f != GUARD_FINALIZER],
        },
    ]


def reported_patch(uid: str, event_id: str) -> dict[str, Any]:
    """Merge patch marking a pod as reported; the uid makes it fail on a different pod that
    took the name."""
    return {"metadata": {"uid": uid, "annotations": {REPORTED_ANNOTATION: event_id}}}


def valve_due(facts: PodFacts, now_s: float, max_age_s: float) -> bool:
    """Has a guarded pod waited for deletion longer than the maximum age?"""
    return (
        bool(facts.finalizers)
        and facts.deleted_s is not None
        and (now_s - facts.deleted_s >= max_age_s)
    )


def guard_patch(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    """JSON patch adding the guard finalizer at admission (none if the pod has it already)."""
    meta = pod.get("metadata")
    current = meta.get("finalizers") if isinstance(meta, Mapping) else None
    if not isinstance(current, list) or not current:
        return [{"op": "add", "path": "/metadata/finalizers", "value": [GUARD_FINALIZER]}]
    if GUARD_FINALIZER in current:
        return []
    return [{"op": "add", "path": "/metadata/finalizers/-", "value": GUARD_FINALIZER}]
