"""Pure retry decisions shared by every sender: what is worth retrying and how long to wait."""

from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime

from servo.core.errors import KubeError, ReportError

# 408 Request Timeout and 429 Too Many Requests are the only 4xx a retry can fix.
RETRYABLE_4XX = frozenset({408, 429})


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_4XX or 500 <= status <= 599


def is_retryable(exc: BaseException) -> bool:
    """Retry connection errors, timeouts, 408, 429 and 5xx; never other 4xx (bugs, bad data)."""
    if isinstance(exc, ReportError):
        return exc.transient or (exc.status is not None and is_retryable_status(exc.status))
    if isinstance(exc, KubeError):
        return exc.status == 0 or is_retryable_status(exc.status)
    return False


def retry_after(exc: BaseException | None) -> float | None:
    """The wait a server asked for, if the error carries one."""
    if isinstance(exc, ReportError):
        return exc.retry_after_s
    return None


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """`Retry-After` as seconds or an HTTP-date -> seconds from `now`; None when absent or bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


def backoff_s(failures: int, *, max_s: float, jitter: float) -> float:
    """Exponential backoff for the `failures`-th consecutive failure (1-based), with jitter.

    `jitter` is a random number in [0, 1) supplied by the caller, which keeps this function pure.
    """
    base = min(max_s, 0.5 * 2.0 ** max(0, failures - 1))
    return base * (0.5 + jitter / 2)
