"""Group-committed acks: what reaches the disk when, and what a crash (acks not flushed) costs.

A second Outbox on the same directory stands for the next start after a SIGKILL: it reads the
file as committed, without the first one's memory (the first is never closed, so nothing in its
memory is flushed by a close)."""

from __future__ import annotations

from pathlib import Path

from servo.core.models import Event
from servo.report.outbox import ACK_BATCH, ACK_MAX_DELAY_S, Outbox
from tests.support.helpers import pending_ids


def ev(i: int) -> Event:
    return Event(id=f"u{i}:MEASUREMENT", event="MEASUREMENT", app_id="A", param={"n": i})


class FakeMonotonic:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def filled(path: Path, n: int, **kw: FakeMonotonic) -> Outbox:
    box = Outbox(path, **kw)
    for i in range(n):
        assert box.put(ev(i), now_s=10.0 + i)
    return box


def test_acks_close_commits_them_and_a_reopened_outbox_sends_none_again(tmp_path: Path) -> None:
    box = filled(tmp_path, 3)
    for i in range(3):
        box.delivered(f"u{i}:MEASUREMENT", now_s=20.0)
    box.close()
    again = Outbox(tmp_path)
    assert again.depth() == 0 and again.due(now_s=100, limit=10) == []
    assert again.put(ev(1), now_s=30.0) is False  # the tombstone is on disk


def test_an_ack_not_yet_committed_means_the_event_is_sent_again_after_a_crash(
    tmp_path: Path,
) -> None:
    box = filled(tmp_path, 2, monotonic=FakeMonotonic())
    box.delivered("u0:MEASUREMENT", now_s=20.0)
    crashed_then_restarted = Outbox(tmp_path)
    assert [p.event.id for p in crashed_then_restarted.due(now_s=100, limit=10)] == [
        "u0:MEASUREMENT",
        "u1:MEASUREMENT",
    ]
    box.flush()
    assert [p.event.id for p in crashed_then_restarted.due(now_s=100, limit=10)] == [
        "u1:MEASUREMENT"
    ]


def test_this_process_never_sees_a_delivered_event_as_waiting(tmp_path: Path) -> None:
    box = filled(tmp_path, 3, monotonic=FakeMonotonic())
    box.delivered("u1:MEASUREMENT", now_s=20.0)
    # Every read commits the waiting acks first: the pump never hands u1 to a worker again.
    assert [p.event.id for p in box.due(now_s=100, limit=10)] == [
        "u0:MEASUREMENT",
        "u2:MEASUREMENT",
    ]
    box.delivered("u0:MEASUREMENT", now_s=21.0)
    assert box.depth() == 1 and pending_ids(box) == {"u2:MEASUREMENT"}
    assert box.put(ev(0), now_s=22.0) is False  # acked, not yet committed: still not sent again
    assert pending_ids(Outbox(tmp_path)) == {"u2:MEASUREMENT"}


def test_a_full_batch_commits_without_a_flush(tmp_path: Path) -> None:
    box = filled(tmp_path, ACK_BATCH + 1, monotonic=FakeMonotonic())
    other = Outbox(tmp_path)
    for i in range(ACK_BATCH - 1):
        box.delivered(f"u{i}:MEASUREMENT", now_s=20.0)
    assert other.depth() == ACK_BATCH + 1
    box.delivered(f"u{ACK_BATCH - 1}:MEASUREMENT", now_s=20.0)
    assert pending_ids(other) == {f"u{ACK_BATCH}:MEASUREMENT"}


def test_an_ack_waits_at_most_the_maximum_delay_for_the_next(tmp_path: Path) -> None:
    clock = FakeMonotonic()
    box = filled(tmp_path, 3, monotonic=clock)
    other = Outbox(tmp_path)
    box.delivered("u0:MEASUREMENT", now_s=20.0)
    clock.now_s += ACK_MAX_DELAY_S * 0.6
    box.delivered("u1:MEASUREMENT", now_s=20.0)
    assert other.depth() == 3
    clock.now_s += ACK_MAX_DELAY_S * 0.6
    box.delivered("u2:MEASUREMENT", now_s=20.0)
    assert other.depth() == 0


def test_batched_tombstones_are_pruned_like_single_ones(tmp_path: Path) -> None:
    box = filled(tmp_path, 2, monotonic=FakeMonotonic())
    box.delivered("u0:MEASUREMENT", now_s=100.0)
    box.delivered("u1:MEASUREMENT", now_s=105.0)
    assert box.prune(now_s=105.0 + 7000, keep_s=7200) == 0
    assert box.prune(now_s=105.0 + 7201, keep_s=7200) == 2


def test_due_leaves_out_more_in_flight_ids_than_sqlite_takes_parameters(tmp_path: Path) -> None:
    box = filled(tmp_path, 3)
    in_flight = {f"other{i}" for i in range(40_000)} | {"u1:MEASUREMENT"}
    got = box.due(now_s=100, limit=10, skip=in_flight)
    assert [p.event.id for p in got] == ["u0:MEASUREMENT", "u2:MEASUREMENT"]
    assert got[0].event == ev(0) and got[0].created_at == 10.0 and got[0].attempts == 0
