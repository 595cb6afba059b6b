"""Every scope's tracker behind one lock: the lock's one home.

Watch threads, stats POSTs (the intake), the wait timer and the probes all read or change
trackers; each goes through a `JobBook` method, which holds the lock for exactly its own step.
No one else holds the lock, so no caller can forget it or keep it across an API call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from servo.core.models import Measurement, PodFacts
from servo.core.monitor_stats import MonitorStats
from servo.core.tracker import StatsVerdict, Tracker


@dataclass(frozen=True, slots=True)
class Observed:
    """What one job-pod event did to its tracker."""

    due: Measurement | None
    waiting: bool  # the job ended; its monitor's stats are awaited
    done_before: bool  # measured already (this pod's event comes after its report)


@dataclass(frozen=True, slots=True)
class PostOutcome:
    verdict: StatsVerdict
    due: Measurement | None
    waited_s: float | None  # from the job's end to these stats, when they were awaited


@dataclass(frozen=True, slots=True)
class TrackerSizes:
    seen: int
    pending: int
    awaiting: int


class JobBook:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._trackers: list[Tracker] = []

    def add(self, tracker: Tracker) -> Tracker:
        """Keep a scope's tracker (the intake and the timer look through all of them)."""
        with self._lock:
            self._trackers.append(tracker)
        return tracker

    def observe(self, tracker: Tracker, event_type: str, facts: PodFacts, now_s: float) -> Observed:
        with self._lock:
            due = tracker.observe(event_type, facts, now_s)
            return Observed(
                due,
                waiting=due is None and facts.uid in tracker.awaiting,
                done_before=due is None and facts.uid in tracker.reported,
            )

    def relisted(self, tracker: Tracker, listed_uids: Iterable[str]) -> list[Measurement]:
        with self._lock:
            return tracker.relisted(listed_uids)

    def forget(self, tracker: Tracker, uid: str) -> None:
        with self._lock:
            tracker.forget(uid)

    def expire(self, now_s: float, why: str | None = None) -> list[Measurement]:
        with self._lock:
            return [m for t in self._trackers for m in t.expire(now_s, why=why)]

    def stuck(self, due: Callable[[PodFacts], bool]) -> list[PodFacts]:
        """Pending job pods for which `due` says yes (the finalizer valve's question)."""
        with self._lock:
            return [f for t in self._trackers for f in t.pending.values() if due(f)]

    def unpend(self, uid: str) -> None:
        """Stop waiting for a pod (its finalizer was let go; its next event says the rest)."""
        with self._lock:
            for t in self._trackers:
                t.pending.pop(uid, None)

    def find(self, uid: str) -> tuple[PodFacts | None, bool]:
        """The facts of a job pod being measured, and whether it was measured already."""
        with self._lock:
            facts = next((f for t in self._trackers if (f := t.job(uid)) is not None), None)
            return facts, facts is None and any(uid in t.reported for t in self._trackers)

    def post_arrived(
        self, uid: str, stats: MonitorStats, *, received_s: float, now_s: float
    ) -> PostOutcome | None:
        """Checked stats for a job pod; None when no tracker holds it any more."""
        with self._lock:
            tracker = next((t for t in self._trackers if t.job(uid)), None)
            if tracker is None:
                return None
            waiting = tracker.awaiting.get(uid)
            waited = (
                now_s - (waiting.deadline_s - tracker.stats_wait_s) if waiting is not None else None
            )
            verdict, due = tracker.post_arrived(uid, stats, received_s=received_s)
        return PostOutcome(verdict, due, waited)

    def sizes(self, tracker: Tracker) -> TrackerSizes:
        with self._lock:
            return TrackerSizes(tracker.seen, len(tracker.pending), len(tracker.awaiting))
