"""Pure state of one watch scope: which job pods are pending, awaiting stats, or reported.

The watch loop feeds it events, the stats receiver feeds it monitor stats, and a timer asks it
which waits have run out; it answers with the measurement to send, at most once per pod uid.
It keeps a PodFacts record per unfinished job pod and only the uid of reported ones, never the
pod object. The clock comes in as `now_s`: nothing here reads time.

A job pod with a monitor is measured when its job container has terminated AND its monitor's
termination message (written by the kubelet from inside the pod: authoritative) came, or when
`stats_wait_s` has passed since the job ended. A POST from the monitor is only held: it decides
the figures when the wait runs out or when the monitor terminated without a usable message,
and never if it arrived before the job container's finishedAt.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from msgspec.structs import replace

from servo.core.models import Measurement, PodFacts
from servo.core.monitor_stats import MonitorStats, StatsError, parse_termination_message
from servo.core.pod_measurement import (
    VANISHED_MESSAGE,
    failure,
    is_finished,
    measurement_from_facts,
    measurement_never_started,
    measurement_on_delete,
    never_started,
)
from servo.core.stats_measurement import with_stats
from servo.core.stats_measurement import without_stats as _without_stats

DEFAULT_STATS_WAIT_S = 30.0
# Early POSTs kept per pod; a real monitor sends one (three tries of the same body).
MAX_EARLY_POSTS = 4


class StatsVerdict(StrEnum):
    """What became of stats POSTed to the tracker."""

    MEASURED = "measured"  # they completed a measurement (the monitor left no usable message)
    HELD = "held"  # kept until the termination message comes or the wait runs out
    EARLY = "sent-before-the-job-ended"  # never used: the job was still running
    ALREADY_REPORTED = "already-reported"  # the job was measured before they came
    UNKNOWN = "unknown"  # no such job pod in this scope


@dataclass(frozen=True, slots=True)
class HeldPost:
    """Stats POSTed by the monitor, with when they arrived (epoch seconds, the servo's clock)."""

    stats: MonitorStats
    received_s: float


@dataclass(slots=True)
class Awaiting:
    """A finished job whose measurement waits for the monitor's stats."""

    facts: PodFacts
    measurement: Measurement
    deadline_s: float
    message_error: str = ""  # why the termination message could not be used, if it could not
    post: HeldPost | None = None
    monitor_done: bool = False  # the monitor terminated (with no usable message)


@dataclass(slots=True)
class Tracker:
    """What was seen and reported in one watch scope (a namespace, or all of them)."""

    stats_wait_s: float = DEFAULT_STATS_WAIT_S
    pending: dict[str, PodFacts] = field(default_factory=dict)
    awaiting: dict[str, Awaiting] = field(default_factory=dict)
    # POSTs that came while the job still looked running: the first few, so a forged early
    # one cannot push out the monitor's (the watch may show the job's end after its POST).
    early_posts: dict[str, list[HeldPost]] = field(default_factory=dict)
    reported: set[str] = field(default_factory=set)
    seen: int = 0  # job pods first observed in this scope (for metrics)

    def observe(self, event_type: str, facts: PodFacts, now_s: float = 0.0) -> Measurement | None:
        """Take an ADDED/MODIFIED/DELETED job pod; return its measurement when it is due."""
        uid = facts.uid
        if uid not in self.pending and uid not in self.awaiting and uid not in self.reported:
            self.seen += 1
        if facts.reported and uid not in self.awaiting:
            # A servo (this one, or one before a restart) delivered it: never again.
            self.pending.pop(uid, None)
            self.early_posts.pop(uid, None)
            self.reported.add(uid)
        if uid in self.reported:
            if event_type == "DELETED":
                self.reported.discard(uid)
            return None
        waiting = self.awaiting.get(uid)
        if waiting is not None:
            # Only the monitor's termination message (or its end without one) can still
            # complete it; a deletion does not end the wait (the monitor gets SIGTERM then).
            return self._from_message(waiting, facts)
        if event_type == "DELETED":
            self.pending.pop(uid, None)
            due = self._finished(facts, measurement_on_delete(facts), now_s)
            # The pod is gone: no later event can repeat it, so keep no uid for it.
            self.reported.discard(uid)
            return due
        if is_finished(facts):
            return self._finished(facts, measurement_from_facts(facts), now_s)
        if never_started(facts):
            return self._done(facts, measurement_never_started(facts))
        self.pending[uid] = facts
        return None

    def _finished(self, facts: PodFacts, m: Measurement, now_s: float) -> Measurement | None:
        early = self.early_posts.pop(facts.uid, [])
        if m.failure is not None or not facts.monitor:
            return self._done(facts, m)
        self.pending.pop(facts.uid, None)
        waiting = Awaiting(facts, m, now_s + self.stats_wait_s)
        waiting.post = next((p for p in early if not _before_end(p, facts)), None)
        self.awaiting[facts.uid] = waiting
        return self._from_message(waiting, facts)

    def _from_message(self, waiting: Awaiting, facts: PodFacts) -> Measurement | None:
        if facts.monitor_message and _ended_before_the_job(facts):
            # A plain monitor that took a crash of the job container for the job's end (a
            # restartPolicy OnFailure pod) reported an earlier attempt: not this run's figures.
            waiting.message_error = "the monitor ended before the job's last run ended"
        elif facts.monitor_message:
            try:
                stats = parse_termination_message(facts.monitor_message)
            except StatsError as e:
                waiting.message_error = str(e)
            else:
                return self._done(waiting.facts, with_stats(waiting.measurement, stats))
        if facts.monitor_terminated:
            waiting.monitor_done = True
            if waiting.post is not None:
                return self._done(waiting.facts, _with_post(waiting))
        return None

    def _done(self, facts: PodFacts, measurement: Measurement) -> Measurement:
        self.pending.pop(facts.uid, None)
        self.awaiting.pop(facts.uid, None)
        self.early_posts.pop(facts.uid, None)
        self.reported.add(facts.uid)
        return measurement

    def job(self, uid: str) -> PodFacts | None:
        """The facts of a job pod still being tracked (for checking who sends its stats)."""
        waiting = self.awaiting.get(uid)
        return waiting.facts if waiting is not None else self.pending.get(uid)

    def post_arrived(
        self, uid: str, stats: MonitorStats, *, received_s: float
    ) -> tuple[StatsVerdict, Measurement | None]:
        """Stats POSTed by the pod's own monitor (checked by the caller): held, or used at
        once when the monitor has already terminated without a usable message."""
        post = HeldPost(stats, received_s)
        waiting = self.awaiting.get(uid)
        if waiting is not None:
            if _before_end(post, waiting.facts):
                return StatsVerdict.EARLY, None
            if waiting.post is None:  # the first one counts: a later one cannot replace it
                waiting.post = post
            if waiting.monitor_done:
                return StatsVerdict.MEASURED, self._done(waiting.facts, _with_post(waiting))
            return StatsVerdict.HELD, None
        if uid in self.pending:
            held = self.early_posts.setdefault(uid, [])
            if len(held) < MAX_EARLY_POSTS:
                held.append(post)
            return StatsVerdict.HELD, None
        if uid in self.reported:
            return StatsVerdict.ALREADY_REPORTED, None
        return StatsVerdict.UNKNOWN, None

    def expire(self, now_s: float, *, why: str | None = None) -> list[Measurement]:
        """Measurements whose termination message did not come in time: with the POSTed stats
        when the monitor sent some, else without (`why` overrides the reason, e.g. at
        shutdown)."""
        due = [w for w in self.awaiting.values() if w.deadline_s <= now_s]
        base = why or f"no stats from the monitor within {self.stats_wait_s:g} s"
        out = []
        for w in due:
            if w.post is not None:
                try:
                    out.append(self._done(w.facts, _with_post(w)))
                    continue
                except Exception as e:  # noqa: BLE001 - one pod's stats never cost its report
                    w.message_error = w.message_error or f"held stats unusable ({e!r:.80})"
            reason = base
            if w.message_error:
                reason += f"; its termination message was unusable ({w.message_error})"
            out.append(self._done(w.facts, _without_stats(w.measurement, reason)))
        return out

    def forget(self, uid: str) -> None:
        """Drop a pod that stopped being a job pod (its app id went away)."""
        self.pending.pop(uid, None)
        self.early_posts.pop(uid, None)

    def relisted(self, listed_uids: Iterable[str]) -> list[Measurement]:
        """After a full list: pods we knew that are gone were deleted while nobody watched.

        Finished pods awaiting stats stay: their measurement goes out when the stats come or
        the wait ends, whether the pod still exists or not.
        """
        present = set(listed_uids)
        vanished = [f for uid, f in self.pending.items() if uid not in present]
        for facts in vanished:
            del self.pending[facts.uid]
            self.early_posts.pop(facts.uid, None)
        self.reported &= present
        return [failure(f, VANISHED_MESSAGE, reason="Deleted") for f in vanished]

    def __len__(self) -> int:
        return len(self.pending) + len(self.awaiting) + len(self.reported)


def _ended_before_the_job(facts: PodFacts) -> bool:
    """The monitor container terminated a second or more before the job container finished
    (both times cut to the second by the API)."""
    ended, finished = facts.monitor_finished_s, facts.finished_s
    return ended is not None and finished is not None and ended < finished - 1


def _before_end(post: HeldPost, facts: PodFacts) -> bool:
    """Did the POST arrive before the job container's finishedAt? That time is cut to the
    second by the API, so the real end is never earlier: such stats cannot be the final ones."""
    return facts.finished_s is not None and post.received_s < facts.finished_s


def _with_post(waiting: Awaiting) -> Measurement:
    assert waiting.post is not None
    m = with_stats(waiting.measurement, waiting.post.stats)
    if m.failure is None and waiting.message_error:
        note = f"unusable: {waiting.message_error}"
        m = replace(m, annotations={**m.annotations, "termination_message": note})
    return m
