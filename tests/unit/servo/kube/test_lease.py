from __future__ import annotations

from datetime import UTC, datetime

import pytest

from servo.kube.lease import Action, LeaseState, decide, lease_transitions, micro_time


def state(holder: str, seen_s: float) -> LeaseState:
    return LeaseState(holder=holder, resource_version="7", transitions=1, observed_change_s=seen_s)


@pytest.mark.parametrize(
    ("lease", "now", "expected"),
    [
        (None, 0, Action.CREATE),
        (state("me", 0), 100, Action.RENEW),  # ours, however old
        (state("other", 95), 100, Action.WAIT),  # renewed 5 s ago, lease 10 s
        (state("other", 90), 100, Action.TAKE_OVER),  # no change seen for a whole lease
        (state("", 99), 100, Action.TAKE_OVER),  # released
    ],
)
def test_decide(lease: LeaseState | None, now: float, expected: Action) -> None:
    assert decide(lease, "me", now, lease_s=10) is expected


def test_micro_time_always_has_six_decimals() -> None:
    assert micro_time(datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)) == "2026-11-25T10:00:00.000000Z"
    assert micro_time(datetime(2026, 11, 25, 10, 0, 0, 1234, tzinfo=UTC)).endswith(".001234Z")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, 3), (0, 0), (None, 0), ("abc", 0), (1e400, 0), (-1, 0), (2**31, 0), (True, 0), (2.5, 0)],
)
def test_lease_transitions_from_someone_elses_lease(value: object, expected: int) -> None:
    assert lease_transitions(value) == expected
