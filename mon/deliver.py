"""Delivery: the termination message file first, then a POST to the servo's stats receiver.

The file needs no network and no credentials, so it is written before anything can fail on the
wire. The POST is retried briefly (the pod is dying): connection errors, timeouts, 408, 429 and
5xx; other answers are final. Nothing here raises: each channel reports success as a bool.
"""

from __future__ import annotations

import logging
from pathlib import Path

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_random,
)
from tenacity.wait import wait_base

from mon.errors import DeliveryError
from mon.wire import Stats, StatsPost, fit_termination_message

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def write_termination_message(path: Path, stats: Stats) -> bool:
    """Write the stats, shrunk to fit 4096 bytes, where Kubernetes picks them up."""
    data = fit_termination_message(stats)
    try:
        with path.open("wb") as f:
            f.write(data)
    except OSError as e:
        logger.error("termination message not written", extra={"path": str(path), "error": str(e)})
        return False
    logger.info("termination message written", extra={"path": str(path), "bytes": len(data)})
    return True


def is_retryable(exc: BaseException) -> bool:
    """PURE: worth another try? Connection trouble and server-side or rate-limit answers."""
    if isinstance(exc, DeliveryError):
        return exc.status is None or exc.status in RETRYABLE_STATUSES or exc.status >= 500
    return False


def _post_once(
    session: requests.Session, url: str, body: StatsPost, headers: dict[str, str], timeout_s: float
) -> int:
    try:
        response = session.post(url, json=body, headers=headers, timeout=timeout_s)
    except requests.RequestException as e:
        raise DeliveryError(f"POST failed: {type(e).__name__}: {e}") from e
    if response.status_code >= 300:
        raise DeliveryError(f"POST answered {response.status_code}", status=response.status_code)
    return response.status_code


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    logger.warning(
        "stats POST failed, will retry",
        extra={"attempt": state.attempt_number, "error": str(exc)},
    )


def post_stats(
    *,
    url: str,
    body: StatsPost,
    token: str | None,
    timeout_s: float,
    attempts: int = 3,
    deadline_s: float = 3.0,
    wait: wait_base | None = None,
) -> bool:
    """POST `{"id", "stats"}` with a short retry; True when the receiver accepted it."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    retrying = Retrying(
        retry=retry_if_exception(is_retryable),
        wait=wait or wait_exponential(multiplier=0.2, max=1.0) + wait_random(0, 0.2),
        stop=stop_after_attempt(attempts) | stop_after_delay(deadline_s),
        before_sleep=_log_retry,
        reraise=True,
    )
    try:
        with requests.Session() as session:
            status = retrying(_post_once, session, url, body, headers, timeout_s)
    except DeliveryError as e:
        logger.error("stats POST gave up", extra={"url": url, "error": str(e), "status": e.status})
        return False
    logger.info("stats POST accepted", extra={"url": url, "status": status})
    return True
