"""Monitor stats POSTed to the servo: checked against the pod that sends them, then handed to
the tracker of the scope that measures that job.

Stats are accepted only from the job pod itself (its IP, or its per-pod token) and only for a job
pod some scope tracks; a measurement they complete goes to `send`. receiver.py owns the HTTP
side; this module decides what an accepted body means.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from servo.logs import pod_logger
from servo.metrics import ServoMetrics
from servo.models import Measurement
from servo.receiver import Answer
from servo.stats import MonitorStats
from servo.tracker import StatsVerdict, Tracker

logger = logging.getLogger(__name__)


class StatsIntake:
    """`accept` is the stats receiver's handler; the trackers are read under `lock`."""

    def __init__(
        self,
        trackers: Callable[[], Sequence[Tracker]],
        lock: threading.Lock,
        metrics: ServoMetrics,
        send: Callable[[Measurement], None],
    ) -> None:
        self._trackers = trackers
        self._lock = lock
        self._metrics = metrics
        self._send = send

    def accept(self, uid: str, stats: MonitorStats, client_ip: str, token: str | None) -> Answer:
        """A monitor's POST: only from its own pod (IP or per-pod token), for a known job."""
        with self._lock:
            trackers = self._trackers()
            tracker = next((t for t in trackers if t.job(uid)), None)
            if tracker is None:
                if any(uid in t.reported for t in trackers):
                    return Answer(200, "already measured")
                return Answer(404, f"no job pod with uid {uid} is being measured")
            facts = tracker.job(uid)
            assert facts is not None
            by_ip = bool(facts.pod_ip) and client_ip == facts.pod_ip
            by_token = False
            if not (by_ip or by_token):
                return Answer(403, "stats are accepted only from the pod itself or with its token")
            waiting = tracker.awaiting.get(uid)
            waited = (
                time.monotonic() - (waiting.deadline_s - tracker.stats_wait_s)
                if waiting is not None
                else None
            )
            verdict, due = tracker.stats_arrived(uid, stats)
        self._metrics.stats_arrived(stats.channel, waited)
        pod_logger(logger, facts).info("stats received", extra={
            "channel": stats.channel, "verdict": str(verdict),
            "by": "ip" if by_ip else "token"})  # fmt: skip
        if due is not None:
            self._send(due)
        return Answer(200 if verdict is not StatsVerdict.KEPT else 202, str(verdict))
