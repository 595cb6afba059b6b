from __future__ import annotations

from msgspec.structs import replace

from servo.core.models import ContainerState, PodFacts
from servo.core.pod_measurement import NEVER_RAN_MESSAGE, VANISHED_MESSAGE
from servo.core.tracker import Tracker

PENDING = PodFacts(uid="u1", namespace="ns", name="p1", app_id="A", restart_policy="Never")
RUNNING = replace(PENDING, state=ContainerState.RUNNING, phase="Running", started_s=10.0)
DONE = replace(RUNNING, state=ContainerState.TERMINATED, finished_s=15.0, exit_code=0)


def test_one_measurement_per_pod_whatever_the_events() -> None:
    t = Tracker()
    assert t.observe("ADDED", PENDING) is None
    assert t.observe("MODIFIED", RUNNING) is None
    m = t.observe("MODIFIED", DONE)
    assert m is not None and m.metrics["duration"].value == 5
    assert t.observe("MODIFIED", DONE) is None
    assert t.observe("ADDED", DONE) is None  # replayed by a relist
    assert t.observe("DELETED", DONE) is None
    assert len(t) == 0  # forgotten once deleted


def test_pod_first_seen_finished_is_measured() -> None:
    assert Tracker().observe("ADDED", DONE) is not None


def test_deleted_before_it_ran() -> None:
    t = Tracker()
    t.observe("ADDED", PENDING)
    m = t.observe("DELETED", PENDING)
    assert m is not None and m.failure == NEVER_RAN_MESSAGE
    assert len(t) == 0


def test_failed_before_it_ran_reports_once() -> None:
    t = Tracker()
    evicted = replace(PENDING, phase="Failed", pod_reason="Evicted")
    m = t.observe("MODIFIED", evicted)
    assert m is not None and m.failure == NEVER_RAN_MESSAGE and m.annotations["reason"] == "Evicted"
    assert t.observe("DELETED", evicted) is None


def test_relist_reports_pods_that_vanished_unwatched_and_forgets_reported_ones() -> None:
    t = Tracker()
    other = replace(RUNNING, uid="u2", name="p2")
    t.observe("ADDED", RUNNING)
    t.observe("ADDED", other)
    t.observe("ADDED", replace(DONE, uid="u3", name="p3"))
    vanished = t.relisted({"u2"})
    assert [m.job.uid for m in vanished] == ["u1"]
    assert vanished[0].failure == VANISHED_MESSAGE
    assert set(t.pending) == {"u2"} and t.reported == set()


def test_forget_drops_a_pod_that_is_no_longer_a_job() -> None:
    t = Tracker()
    t.observe("ADDED", PENDING)
    t.forget("u1")
    assert len(t) == 0
