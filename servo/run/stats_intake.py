"""Monitor stats POSTed to the servo: checked against the pod that sends them, then handed to
the tracker of the scope that measures that job.

A POST counts only with the monitor's projected service-account token (audience
STATS_AUDIENCE, mounted into the monitor container alone): a TokenReview says which pod it was
issued for, and that must be the pod the stats are for. The pod IP proves nothing (the job
container shares it). Accepted stats are only held by the tracker (the termination message
wins); a measurement they complete goes to `report`. receiver.py owns the HTTP side.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from servo.core.errors import KubeError
from servo.core.models import Measurement, PodFacts
from servo.core.monitor_stats import MonitorStats
from servo.core.tracker import StatsVerdict
from servo.kube.client import TokenIdentity
from servo.run.jobs import JobBook
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
    """`accept` is the stats receiver's handler; the trackers are read through the book."""

    def __init__(
        self,
        book: JobBook,
        metrics: ServoMetrics,
        report: Callable[[Measurement], None],
        *,
        review: Review,
        max_reviews: int = MAX_REVIEWS,
    ) -> None:
        self._book = book
        self._metrics = metrics
        self._report = report
        self._review = review
        self._reviews = threading.BoundedSemaphore(max_reviews)

    def _find(self, uid: str) -> tuple[PodFacts | None, Answer | None]:
        facts, measured = self._book.find(uid)
        if measured:
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
        outcome = self._book.post_arrived(uid, stats, received_s=received_s, now_s=time.monotonic())
        if outcome is None:
            return Answer(200, "already measured")
        verdict = outcome.verdict
        self._metrics.stats_arrived(stats.channel, outcome.waited_s)
        pod_logger(logger, facts).info(
            "stats received", extra={"channel": stats.channel, "verdict": str(verdict)}
        )
        if outcome.due is not None:
            self._report(outcome.due)
        return Answer(_STATUS[verdict], str(verdict))
