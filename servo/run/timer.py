"""The stats-wait timer: jobs whose monitor did not deliver in time are measured without its
stats; marks the API server refused are tried again; the guard's safety valve opens for pods
that wait for their measurement too long (no event may come for them)."""

from __future__ import annotations

import logging
import threading
import time

from servo.run.guard import Valve
from servo.run.jobs import JobBook
from servo.run.outlet import Outlet
from servo.run.pod_marks import Marks
from servo.system.logs import pod_logger

logger = logging.getLogger(__name__)

# How often waits for monitor stats are checked for their deadline.
STATS_WAIT_TICK_S = 0.25
# How often guard finalizers that could not be removed, and reported annotations that could
# not be set, are tried again.
RELEASE_RETRY_S = 5.0


class WaitTimer:
    def __init__(
        self,
        book: JobBook,
        outlet: Outlet,
        marks: Marks,
        *,
        stats_wait_s: float,
        valve: Valve | None,
    ) -> None:
        self._book, self._outlet, self._marks = book, outlet, marks
        self._stats_wait_s = stats_wait_s
        self._valve = valve  # None: the guard is off
        self._retry_at = 0.0

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(STATS_WAIT_TICK_S):
            try:
                self.tick(stop)
            except Exception:  # noqa: BLE001 - the timer must outlive any one bad pod
                logger.exception("stats wait timer failed; going on")

    def tick(self, stop: threading.Event) -> None:
        for m in self._book.expire(time.monotonic()):
            try:
                pod_logger(logger, m.job).warning(
                    "no stats from the monitor in time; measuring without them",
                    extra={"wait_s": self._stats_wait_s},
                )
                self._outlet.report(m, stop)
            except Exception:  # noqa: BLE001 - the others still go out
                logger.exception("sending a measurement failed", extra={"uid": m.job.uid})
        if time.monotonic() >= self._retry_at:
            # Every few seconds, not every tick: a lasting refusal must not flood the API.
            self._retry_at = time.monotonic() + RELEASE_RETRY_S
            self._marks.retry_refused()
        if self._valve is not None:
            self._open_valves(self._valve)

    def _open_valves(self, valve: Valve) -> None:
        """Guarded pods that waited too long for their measurement are let go."""
        now = time.time()
        for facts in self._book.stuck(lambda f: valve.due(f, now)):
            valve.open(facts)
            self._book.unpend(facts.uid)  # released once; its next event says what became of it

    def flush(self, why: str) -> None:
        """At shutdown: jobs still waiting for stats go out now without them."""
        for m in self._book.expire(float("inf"), why):
            self._outlet.report(m, None)
