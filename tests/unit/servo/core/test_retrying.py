from __future__ import annotations

from datetime import UTC, datetime

import pytest

from servo.core.errors import KubeError, ReportError, WatchExpiredError
from servo.core.retrying import backoff_s, is_retryable, parse_retry_after, retry_after


@pytest.mark.parametrize(
    ("exc", "retry"),
    [
        (ReportError("reset", transient=True), True),
        (ReportError("bad url"), False),
        (ReportError("x", status=408), True),
        (ReportError("x", status=429), True),
        (ReportError("x", status=500), True),
        (ReportError("x", status=503), True),
        (ReportError("x", status=599), True),
        (ReportError("x", status=400), False),
        (ReportError("x", status=401), False),
        (ReportError("x", status=404), False),
        (ReportError("x", status=422), False),
        (KubeError(0, "ConnectionError"), True),
        (KubeError(500, "InternalError"), True),
        (KubeError(429, "TooManyRequests"), True),
        (KubeError(403, "Forbidden"), False),
        (WatchExpiredError(), False),
        (ValueError("x"), False),
    ],
)
def test_is_retryable_table(exc: BaseException, retry: bool) -> None:
    assert is_retryable(exc) is retry


NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        (" 120 ", 120.0),
        ("Tue, 24 Nov 2026 12:00:07 GMT", 7.0),
        ("Tue, 24 Nov 2026 11:00:00 GMT", 0.0),
        ("-1", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


def test_retry_after_comes_from_report_errors_only() -> None:
    assert retry_after(ReportError("x", status=429, retry_after_s=2.0)) == 2.0
    assert retry_after(KubeError(429, "x")) is None
    assert retry_after(None) is None


def test_backoff_grows_is_capped_and_jittered() -> None:
    assert backoff_s(1, max_s=30, jitter=0.999) < backoff_s(3, max_s=30, jitter=0.0) * 2
    assert [backoff_s(n, max_s=30, jitter=1.0) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert backoff_s(50, max_s=30, jitter=1.0) == 30
    assert backoff_s(50, max_s=30, jitter=0.0) == 15
