"""Who may POST a pod's stats: the pure checks of servo.run.stats_intake."""

from __future__ import annotations

from typing import Any

from msgspec.structs import replace

from servo.core.errors import KubeError
from servo.core.models import ContainerState, PodFacts
from servo.core.monitor_stats import CHANNEL_POST, MonitorStats
from servo.core.tracker import Tracker
from servo.kube.client import TokenIdentity
from servo.run.jobs import JobBook
from servo.run.metrics import ServoMetrics
from servo.run.receiver import Answer
from servo.run.stats_intake import StatsIntake, refusal

FACTS = PodFacts(
    uid="u1",
    namespace="ns",
    name="p1",
    app_id="A",
    monitor="servo-monitor",
    restart_policy="Never",
    state=ContainerState.RUNNING,
    started_s=1.0,
)
MINE = TokenIdentity(True, pod_uid="u1", pod_name="p1")
STATS = MonitorStats(channel=CHANNEL_POST)


def test_refusal_names_why() -> None:
    assert refusal(MINE, FACTS) == ""
    assert "not issued for this pod" in refusal(replace_identity(pod_uid="u2"), FACTS)
    # Same name, another pod (a Job's pod recreated under its old name): still refused.
    assert refusal(replace_identity(pod_uid="old"), FACTS)
    assert refusal(TokenIdentity(False, error="expired"), FACTS).endswith("expired")


def replace_identity(**kw: Any) -> TokenIdentity:
    fields = {"authenticated": True, "pod_uid": "u1", "pod_name": "p1", **kw}
    return TokenIdentity(**fields)


def intake_with(review: Any, tracker: Tracker, **kw: Any) -> StatsIntake:
    book = JobBook()
    book.add(tracker)
    return StatsIntake(book, ServoMetrics(), lambda m: None, review=review, **kw)


def test_reviews_in_flight_are_bounded() -> None:
    tracker = Tracker()
    tracker.observe("MODIFIED", FACTS)
    nested: list[Answer] = []

    def review(token: str) -> TokenIdentity:
        if not nested:  # while this review holds the only slot, another POST comes
            nested.append(intake.accept("u1", STATS, "10.0.0.1", "t"))
        return MINE

    intake = intake_with(review, tracker, max_reviews=1)
    assert intake.accept("u1", STATS, "10.0.0.1", "t").status == 202
    assert nested[0].status == 503 and "try again" in nested[0].message
    # The slot was given back.
    assert intake.accept("u1", STATS, "10.0.0.1", "t").status == 202


def test_a_failed_review_is_a_503_and_no_token_a_403() -> None:
    tracker = Tracker()
    tracker.observe("MODIFIED", replace(FACTS, uid="u1"))

    def review(token: str) -> TokenIdentity:
        raise KubeError(403, "Forbidden", "cannot create tokenreviews")

    intake = intake_with(review, tracker)
    assert intake.accept("u1", STATS, "10.0.0.1", "t").status == 503
    assert intake.accept("u1", STATS, "10.0.0.1", None).status == 403
    assert intake.accept("nope", STATS, "10.0.0.1", "t").status == 404
