"""Monitor stats POSTed to the servo: checked against the pod that sends them, then handed to
the tracker of the scope that measures that job.

A POST counts only with the monitor's projected service-account token (audience
STATS_AUDIENCE, mounted into the monitor container alone): a TokenReview says which pod it was
issued for, and that must be the pod the stats are for. The pod IP proves nothing (the job
container shares it). Accepted stats are only held by the tracker (the termination message
wins); a measurement they complete goes to `send`. receiver.py owns the HTTP side.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from servo.core.errors import KubeError
from servo.core.models import Measurement, PodFacts
from servo.core.monitor_stats import MonitorStats
from servo.core.tracker import StatsVerdict, Tracker
from servo.kube.client import TokenIdentity
from servo.run.metrics import ServoMetrics
from servo.run.receiver import Answer
from servo.system.logs import pod_logger

logger = logging.getLogger(__name__)

# TokenReviews in flight at once; more POSTs meanwhile get 503 (the monitor tries again).
MAX_REVIEWS = 4
# token -> what the API server says of it (KubeError when it cannot say now)
Review = Callable[[str], TokenIdentity]
_STATUS = {
    StatsVerdict.MEASURED: 200,
    StatsVerdict.HELD: 202,
    StatsVerdict.ALREADY_REPORTED: 200,
    StatsVerdict.EARLY: 409,
    StatsVerdict.UNKNOWN: 404,
}


def refusal(identity: TokenIdentity, facts: PodFacts) -> str:
    """Why a reviewed token may not send this pod's stats ("" when it may)."""
    if not identity.authenticated:
        return f"token refused by the API server: {identity.error}"
    if identity.pod_uid != facts.uid or identity.pod_name != facts.name:
        return "the token was not issued for this pod"
    return ""


class StatsIntake:
    """`accept` is the stats receiver's handler; the trackers are read under `lock`."""

    def __init__(
        self,
        trackers: Callable[[], Sequence[Tracker]],
        lock: threading.Lock,
        metrics: ServoMetrics,
        send: Callable[[Measurement], None],
        *,
        review: Review,
        max_reviews: int = MAX_REVIEWS,
    ) -> None:
        self._trackers = trackers
        self._lock = lock
        self._metrics = metrics
        self._send = send
        self._review = review
        self._reviews = threading.BoundedSemaphore(max_reviews)

    def _find(self, uid: str) -> tuple[PodFacts | None, Answer | None]:
        with self._lock:
            trackers = self._trackers()
            facts = next((f for t in trackers if (f := t.job(uid)) is not None), None)
            if facts is None and any(uid in t.reported for t in trackers):
                return None, Answer(200, "already measured")
        if facts is None:
            return None, Answer(404, f"no job pod with uid {uid} is being measured")
        return facts, None

    def accept(self, uid: str, stats: MonitorStats, client_ip: str, token: str | None) -> Answer:
        """A monitor's POST: only with its own pod's token, for a job being measured."""
        # When it arrived, not when its token review ended: that can take seconds, and the
        # time decides whether the POST came before the job's end.
        received_s = time.time()
        facts, answer = self._find(uid)
        if answer is not None or facts is None:
            return answer or Answer(404, "no such job pod")
        if not token:
            return Answer(403, "a bearer token is required: the monitor's service-account token")
        # A flood of POSTs must not become a flood of TokenReviews against the API server.
        if not self._reviews.acquire(blocking=False):
            return Answer(503, "too many stats being checked; try again")
        try:
            # Outside the lock: one slow API call must not hold up the watch threads.
            identity = self._review(token)
        except KubeError as e:
            pod_logger(logger, facts).warning("token review failed", extra={"error": str(e)})
            return Answer(503, "the token could not be reviewed now; try again")
        finally:
            self._reviews.release()
        why = refusal(identity, facts)
        if why:
            pod_logger(logger, facts).warning(
                "stats refused", extra={"why": why, "client": client_ip}
            )
            return Answer(403, why)
        with self._lock:
            tracker = next((t for t in self._trackers() if t.job(uid)), None)
            if tracker is None:
                return Answer(200, "already measured")
            waiting = tracker.awaiting.get(uid)
            waited = (
                time.monotonic() - (waiting.deadline_s - tracker.stats_wait_s)
                if waiting is not None
                else None
            )
            verdict, due = tracker.post_arrived(uid, stats, received_s=received_s)
        self._metrics.stats_arrived(stats.channel, waited)
        pod_logger(logger, facts).info(
            "stats received", extra={"channel": stats.channel, "verdict": str(verdict)}
        )
        if due is not None:
            self._send(due)
        return Answer(_STATUS[verdict], str(verdict))
