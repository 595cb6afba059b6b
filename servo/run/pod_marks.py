"""Marks the servo leaves on pods: the reported annotation and the guard finalizer's removal.

`PodMarks` tries each once through the kube client (what the patches say is pure:
core/patches.py); `Marks` keeps the ones the API server refused for now and tries them again
(no event may come for that pod). A pod that is gone, or was replaced by another of the same
name, needs no mark: those answers are quiet; anything else is a WARNING.
"""

from __future__ import annotations

import logging
import threading

from servo.core.errors import KubeError
from servo.core.models import Event, PodFacts
from servo.core.patches import release_patch, reported_patch
from servo.core.pods import GUARD_FINALIZER
from servo.kube.client import KubeClient
from servo.system.logs import pod_logger

logger = logging.getLogger(__name__)


class PodMarks:
    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube

    def try_mark_reported(self, event: Event) -> bool:
        """Annotate the pod of a delivered MEASUREMENT; False when the API server refused for
        now (the caller retries: an unmarked pod would be measured again after a restart)."""
        pod = event.pod
        if event.event != "MEASUREMENT" or pod is None:
            return True
        try:
            self.kube.patch_pod(
                pod.namespace,
                pod.name,
                reported_patch(pod.uid, event.id),
                content_type="application/merge-patch+json",
            )
        except KubeError as e:
            if e.status in (404, 409, 422):
                # Gone, or replaced by another pod of that name: nothing to measure twice.
                return True
            logger.warning(
                "could not mark the pod as reported; will retry",
                extra={
                    "pod": f"{pod.namespace}/{pod.name}",
                    "status": e.status,
                    "error": e.message,
                },
            )
            return False
        return True

    def try_release(self, facts: PodFacts, why: str) -> bool:
        """Remove the guard finalizer (the measurement is in the outbox, or the valve opened).
        A concurrent change to the finalizers fails the patch's test: read again, retry.
        False when it could not be done now (the caller retries later)."""
        finalizers = facts.finalizers
        try:
            for _attempt in range(3):
                try:
                    self.kube.patch_pod(
                        facts.namespace,
                        facts.name,
                        release_patch(facts.uid, finalizers),
                        content_type="application/json-patch+json",
                    )
                    pod_logger(logger, facts).info("guard finalizer removed", extra={"why": why})
                    return True
                except KubeError as e:
                    if e.status == 404:
                        return True
                    if e.status not in (409, 422):
                        raise
                current = self.kube.get_pod(facts.namespace, facts.name)
                meta = (current or {}).get("metadata") or {}
                if current is None or meta.get("uid") != facts.uid:
                    return True  # gone, or another pod took the name: nothing of ours is left
                finalizers = tuple(f for f in meta.get("finalizers") or [] if isinstance(f, str))
                if GUARD_FINALIZER not in finalizers:
                    return True
        except KubeError as e:
            pod_logger(logger, facts).warning(
                "could not remove the guard finalizer; will retry",
                extra={"status": e.status, "error": e.message},
            )
            return False
        pod_logger(logger, facts).warning("guard finalizer kept changing; will retry")
        return False


class Marks:
    """The marks to leave, each tried until done: `retry_refused` tries the refused ones again."""

    def __init__(self, pods: PodMarks) -> None:
        self._pods = pods
        self._lock = threading.Lock()  # fed by report workers, watch threads and the timer
        # Guarded pods whose finalizer could not be removed yet (API errors).
        self._to_release: dict[str, PodFacts] = {}
        # Delivered measurements whose pod could not be annotated yet.
        self._to_mark: dict[str, Event] = {}

    def mark_reported(self, event: Event) -> None:
        """After a 2xx for a MEASUREMENT: annotate the pod, so no later start measures it."""
        done = self._pods.try_mark_reported(event)
        with self._lock:
            if done:
                self._to_mark.pop(event.id, None)
            else:
                self._to_mark[event.id] = event

    def release(self, facts: PodFacts, why: str) -> None:
        """Remove the guard finalizer (measured, or the safety valve opened)."""
        done = self._pods.try_release(facts, why)
        with self._lock:
            if done:
                self._to_release.pop(facts.uid, None)
            else:
                self._to_release[facts.uid] = facts

    def retry_refused(self) -> None:
        with self._lock:
            releases = list(self._to_release.values())
            unmarked = list(self._to_mark.values())
        for facts in releases:
            self.release(facts, "measured (retry)")
        for event in unmarked:
            self.mark_reported(event)
