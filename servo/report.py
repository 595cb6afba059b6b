"""Sends protocol events to the backend: a `requests` Session, a tenacity policy, worker threads.

Events are queued (bounded) and sent by workers, so a slow backend never stalls the watch.
Retried: connection errors, timeouts, 408, 429, 5xx (Retry-After honoured), until the deadline.
Other 4xx are logged at ERROR with a body excerpt and dropped. Nothing here is durable yet: an
event still queued when the process ends is logged as lost (the durable outbox is issue #5).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    stop_when_event_set,
    wait_exponential_jitter,
)
from tenacity.wait import wait_base

from servo import __version__
from servo.config import ReportConfig
from servo.errors import ReportError
from servo.models import Event
from servo.retrying import is_retryable, parse_retry_after, retry_after

logger = logging.getLogger(__name__)

BODY_EXCERPT_CHARS = 200
USER_AGENT = f"k8s-job-servo/{__version__}"


class RetryAfterWait(wait_base):
    """Wait what the server asked for (Retry-After), else back off; never longer than `cap_s`."""

    def __init__(self, fallback: wait_base, cap_s: float) -> None:
        self.fallback = fallback
        self.cap_s = cap_s

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        asked = retry_after(outcome.exception() if outcome is not None else None)
        wait_s = asked if asked is not None else self.fallback(retry_state)
        return min(wait_s, self.cap_s)


@dataclass(slots=True)
class ReportCounts:
    """Running totals, for logs, tests and (issue #7) metrics."""

    sent: int = 0
    failed: int = 0
    lost: int = 0


class Reporter:
    """Queue + workers + one HTTP session; `send()` is also usable directly (HELLO, GOODBYE)."""

    def __init__(
        self,
        cfg: ReportConfig,
        *,
        session: requests.Session | None = None,
        wait: wait_base | None = None,
    ) -> None:
        self.cfg = cfg
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.counts = ReportCounts()
        self._lock = threading.Lock()
        self._queue: queue.Queue[Event | None] = queue.Queue(maxsize=cfg.queue_size)
        self._abort = threading.Event()
        self._workers: list[threading.Thread] = []
        self._wait = wait or RetryAfterWait(
            wait_exponential_jitter(max=cfg.max_backoff_s), cfg.max_backoff_s
        )

    # -- one send, with retries -------------------------------------------------------------
    def _policy(self, deadline_s: float) -> Retrying:
        return Retrying(
            retry=retry_if_exception(is_retryable),
            wait=self._wait,
            stop=stop_after_delay(deadline_s) | stop_when_event_set(self._abort),
            # An abort (shutdown) cuts a backoff sleep short instead of waiting it out.
            sleep=self._sleep,
            reraise=True,
            before_sleep=self._log_retry,
        )

    def _sleep(self, seconds: float) -> None:
        self._abort.wait(seconds)

    def send(self, event: Event, *, deadline_s: float | None = None) -> Any:
        """POST one event with retries; return the backend's JSON reply (None if not JSON).

        Raises ReportError when the backend refused it or the deadline passed.
        """
        policy = self._policy(self.cfg.deadline_s if deadline_s is None else deadline_s)
        return policy(self._post, event)

    def _post(self, event: Event) -> Any:
        url = self.cfg.url_for(event.app_id)
        headers = {"Idempotency-Key": event.id}
        if self.cfg.auth_token:
            headers["Authorization"] = f"Bearer {self.cfg.auth_token}"
        try:
            resp = self.session.post(
                url, json=event.body(), headers=headers, timeout=self.cfg.timeout_s
            )
        except (requests.ConnectionError, requests.Timeout) as e:
            raise ReportError(f"{type(e).__name__}: {e}", transient=True) from e
        except requests.RequestException as e:
            raise ReportError(f"{type(e).__name__}: {e}") from e
        if not 200 <= resp.status_code < 300:
            raise ReportError(
                f"HTTP {resp.status_code}",
                status=resp.status_code,
                retry_after_s=parse_retry_after(
                    resp.headers.get("Retry-After"), now=datetime.now(UTC)
                ),
                body_excerpt=resp.text[:BODY_EXCERPT_CHARS],
            )
        try:
            return resp.json()
        except ValueError:
            return None

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        event: Event = state.args[0]
        logger.warning(
            "report failed, will retry",
            extra={
                "event": event.event,
                "event_id": event.id,
                "app_id": event.app_id,
                "attempt": state.attempt_number,
                "status": getattr(exc, "status", None),
                "error": str(exc),
                "wait_s": round(state.upcoming_sleep, 3),
            },
        )

    # -- the queue and its workers ----------------------------------------------------------
    def start(self) -> None:
        for i in range(self.cfg.workers):
            t = threading.Thread(target=self._work, name=f"report-{i}", daemon=True)
            t.start()
            self._workers.append(t)

    def submit(self, event: Event, *, stop: threading.Event | None = None) -> bool:
        """Queue an event; when the queue is full, wait (never drop). False if stopped first."""
        warned = False
        while True:
            try:
                self._queue.put(event, timeout=1.0)
                return True
            except queue.Full:
                if not warned:
                    logger.warning("report queue full, watch waits", extra={"size": self.depth})
                    warned = True
                if (stop is not None and stop.is_set()) or self._abort.is_set():
                    return False

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def _work(self) -> None:
        while True:
            event = self._queue.get()
            try:
                if event is None:
                    return
                self._deliver(event)
            finally:
                self._queue.task_done()

    def _deliver(self, event: Event) -> None:
        if self._abort.is_set():
            self._count(lost=1)
            logger.error(
                "report lost at shutdown", extra={"event": event.event, "event_id": event.id}
            )
            return
        started = time.monotonic()
        try:
            self.send(event)
        except ReportError as e:
            self._count(failed=1)
            logger.error(
                "report gave up",
                extra={
                    "event": event.event,
                    "event_id": event.id,
                    "app_id": event.app_id,
                    "status": e.status,
                    "error": str(e),
                    "body": e.body_excerpt,
                    "elapsed_s": round(time.monotonic() - started, 3),
                },
            )
        except Exception:
            self._count(failed=1)
            logger.exception("report crashed", extra={"event": event.event, "event_id": event.id})
        else:
            self._count(sent=1)
            logger.info(
                "report sent",
                extra={
                    "event": event.event,
                    "event_id": event.id,
                    "app_id": event.app_id,
                    "elapsed_s": round(time.monotonic() - started, 3),
                },
            )

    def _count(self, *, sent: int = 0, failed: int = 0, lost: int = 0) -> None:
        with self._lock:
            self.counts.sent += sent
            self.counts.failed += failed
            self.counts.lost += lost

    def close(self, *, grace_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        """Let the workers empty the queue for up to `grace_s`, then abort what is left."""
        deadline = clock() + grace_s
        while self._queue.unfinished_tasks and clock() < deadline:
            time.sleep(0.05)
        self._abort.set()
        for _ in self._workers:
            self._queue.put(None)
        for t in self._workers:
            t.join(timeout=max(1.0, self.cfg.timeout_s + 1))
        self._workers.clear()
