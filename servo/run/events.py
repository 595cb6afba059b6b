"""One watch event at a time: the pod becomes facts, the facts feed the scope's tracker, and
what the tracker says is due goes to the outlet. A guarded pod measured before, or held too
long, has its finalizer let go here when its event shows it."""

from __future__ import annotations

import logging
import threading
import time

from servo.core.appid import AppIdQuery
from servo.core.pods import facts_from_pod
from servo.core.podwire import pod_key
from servo.core.tracker import Tracker
from servo.run.guard import Valve
from servo.run.jobs import JobBook
from servo.run.outlet import Outlet
from servo.run.pod_marks import Marks
from servo.system.logs import pod_logger
from servo.watch.loop import LISTED, WatchEvent

logger = logging.getLogger(__name__)


class PodEvents:
    def __init__(
        self,
        book: JobBook,
        outlet: Outlet,
        marks: Marks,
        *,
        app_id: AppIdQuery,
        monitor_name: str,
        stats_wait_s: float,
        valve: Valve | None,
    ) -> None:
        self._book, self._outlet, self._marks = book, outlet, marks
        self._app_id, self._monitor_name, self._stats_wait_s = app_id, monitor_name, stats_wait_s
        self._valve = valve  # None: the guard is off

    def handle(self, tracker: Tracker, event: WatchEvent, stop: threading.Event) -> None:
        """Feed one watch event to the tracker and report what it says is due."""
        if event.type == LISTED:
            for m in self._book.relisted(tracker, event.listed_uids):
                pod_logger(logger, m.job).warning(
                    "job pod vanished unmeasured", extra={"message_": m.failure}
                )
                self._outlet.report(m, stop)
            return
        found = facts_from_pod(
            event.pod, self._app_id, doc=event.doc, monitor_name=self._monitor_name
        )
        if found.facts is None:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("not a job pod", extra={"pod": pod_key(event.pod), "why": found.why})
            uid = event.pod.metadata.uid if event.pod.metadata is not None else None
            if uid:
                self._book.forget(tracker, uid)
            return
        facts = found.facts
        if facts.reported:
            self._outlet.seen_reported(facts.uid)
        seen = self._book.observe(tracker, event.type, facts, time.monotonic())
        if seen.waiting and logger.isEnabledFor(logging.DEBUG):
            pod_logger(logger, facts).debug(
                "job ended; waiting for the monitor's stats", extra={"wait_s": self._stats_wait_s}
            )
        if seen.due is not None:
            self._outlet.report(seen.due, stop)
        elif self._valve is not None and facts.finalizers and event.type != "DELETED":
            if seen.done_before:
                self._marks.release(facts, "measured before")
            elif self._valve.due(facts):
                self._valve.open(facts)
