"""The servo's run loop: one watch thread per scope feeding a tracker, a reporter sending events.

Owns start-up order (reporter, HELLO, watches) and shutdown (stop watches, flush the queue
within the grace period, GOODBYE). One pod's error is logged at the per-event boundary and
the loop goes on.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from servo.config import Config
from servo.kube import KubeClient
from servo.logs import pod_logger
from servo.models import Event, Measurement
from servo.pods import facts_from_pod
from servo.report import Reporter
from servo.tracker import Tracker
from servo.watch import LISTED, PodWatch, WatchEvent

logger = logging.getLogger(__name__)

GLOBAL_APP_ID = "_global_"
# How long shutdown waits for queued reports before giving up on them (Kubernetes' default
# terminationGracePeriodSeconds is 30 s; keep a margin for GOODBYE).
DEFAULT_GRACE_S = 20.0
GOODBYE_DEADLINE_S = 5.0


def pod_key(pod: Mapping[str, Any]) -> str:
    """`namespace/name` of any pod object, however broken, for log lines."""
    meta = pod.get("metadata")
    if not isinstance(meta, Mapping):
        return "?"
    return f"{meta.get('namespace')}/{meta.get('name')}"


def measurement_event(m: Measurement) -> Event:
    # Stable id (pod uid + event) so a backend can drop a duplicate delivery.
    return Event(
        id=f"{m.job.uid}:MEASUREMENT", event="MEASUREMENT", app_id=m.job.app_id, param=m.to_param()
    )


@dataclass(slots=True)
class Scope:
    watch: PodWatch
    tracker: Tracker
    thread: threading.Thread | None = None


class Servo:
    """Wires watches, trackers and the reporter; `run(stop)` returns after a clean shutdown."""

    def __init__(self, cfg: Config, kube: KubeClient, reporter: Reporter) -> None:
        self.cfg = cfg
        self.kube = kube
        self.reporter = reporter
        self.instance_id = uuid.uuid4().hex
        self.scopes: list[Scope] = []
        self.stop_reason = "exit"

    def run(self, stop: threading.Event, *, grace_s: float = DEFAULT_GRACE_S) -> None:
        self.reporter.start()
        self.reporter.submit(self._lifecycle_event("HELLO", None))
        namespaces: list[str | None] = (
            [None] if self.cfg.watch.all_namespaces else list(self.cfg.watch.namespaces)
        )
        for ns in namespaces:
            scope = Scope(PodWatch(self.kube, ns, self.cfg.watch, stop), Tracker())
            scope.thread = threading.Thread(
                target=self._run_scope,
                args=(scope, stop),
                name=f"watch-{ns or 'all'}",
                daemon=True,
            )
            self.scopes.append(scope)
            scope.thread.start()
        logger.info("servo running", extra={"namespaces": [s.watch.scope for s in self.scopes]})
        stop.wait()
        logger.info("servo stopping", extra={"reason": self.stop_reason})
        self.kube.close_streams()
        for scope in self.scopes:
            if scope.thread is not None:
                scope.thread.join(timeout=5.0)
        self.reporter.close(grace_s=grace_s)
        try:
            self.reporter.send(
                self._lifecycle_event("GOODBYE", self.stop_reason), deadline_s=GOODBYE_DEADLINE_S
            )
        except Exception as e:  # noqa: BLE001 - shutdown goes on whatever the backend says
            logger.warning("GOODBYE not delivered", extra={"error": str(e)})
        counts = self.reporter.counts
        logger.info(
            "servo stopped",
            extra={"sent": counts.sent, "failed": counts.failed, "lost": counts.lost},
        )

    def _lifecycle_event(self, name: str, reason: str | None) -> Event:
        param: dict[str, str | None] = {"account": self.cfg.report.account}
        if reason is not None:
            param["reason"] = reason
        return Event(id=f"{self.instance_id}:{name}", event=name, app_id=GLOBAL_APP_ID, param=param)

    def _run_scope(self, scope: Scope, stop: threading.Event) -> None:
        for event in scope.watch.events():
            try:
                self.handle(scope.tracker, event, stop)
            except Exception:
                logger.exception(
                    "pod event handling failed",
                    extra={"pod": pod_key(event.pod), "type": event.type},
                )

    def handle(self, tracker: Tracker, event: WatchEvent, stop: threading.Event) -> None:
        """Feed one watch event to the tracker and queue what it says is due."""
        if event.type == LISTED:
            for m in tracker.relisted(event.listed_uids):
                pod_logger(logger, m.job).warning(
                    "job pod vanished unmeasured", extra={"message_": m.failure}
                )
                self.reporter.submit(measurement_event(m), stop=stop)
            return
        found = facts_from_pod(event.pod, self.cfg.app_id)
        if found.facts is None:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("not a job pod", extra={"pod": pod_key(event.pod), "why": found.why})
            uid = (event.pod.get("metadata") or {}).get("uid")
            if isinstance(uid, str):
                tracker.forget(uid)
            return
        due = tracker.observe(event.type, found.facts)
        if due is None:
            return
        log = pod_logger(logger, due.job)
        if due.failure is None:
            metrics = {k: v.value for k, v in due.metrics.items()}
            log.info(
                "job measured",
                extra={"metrics": metrics, "exitcode": due.annotations.get("exitcode")},
            )
        else:
            log.info(
                "job failed before it could be measured",
                extra={"why": due.failure, "reason": due.annotations.get("reason")},
            )
        self.reporter.submit(measurement_event(due), stop=stop)
