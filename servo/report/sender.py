"""One event's POST to the backend: a `requests` Session, prepared requests, a tenacity policy.

Retried: connection errors, timeouts, 408, 429, 5xx (Retry-After honoured), until the deadline;
another 4xx raises ReportError at once. The Reporter's workers call `send`; so do HELLO and
GOODBYE directly. An abort (shutdown) cuts a backoff sleep short.
"""

from __future__ import annotations

import logging
import threading
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
from servo.core.errors import ReportError
from servo.core.models import Event
from servo.core.retrying import is_retryable, parse_retry_after, retry_after
from servo.system.config_sections import ReportConfig

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


# URLs (one per app id) whose prepared request and send settings are kept; past this, start over.
PREPARED_URLS = 1024


class Sender:
    """POSTs one event at a time with retries; safe to share between threads."""

    def __init__(
        self,
        cfg: ReportConfig,
        *,
        abort: threading.Event,
        session: requests.Session | None = None,
        wait: wait_base | None = None,
    ) -> None:
        self.cfg = cfg
        self._abort = abort
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self._prepared: dict[str, requests.PreparedRequest] = {}
        self._settings: dict[str, dict[str, Any]] = {}
        self._wait = wait or RetryAfterWait(
            wait_exponential_jitter(max=cfg.max_backoff_s), cfg.max_backoff_s
        )

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
        try:
            request, settings = self._prepare(url, event)
            resp = self.session.send(request, timeout=self.cfg.timeout_s, **settings)
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

    def _prepare(self, url: str, event: Event) -> tuple[requests.PreparedRequest, dict[str, Any]]:
        """What `session.post(url, json=event.body(), headers=...)` would send, and how.

        `Session.request` walks os.environ twice (proxies, CA bundle), looks for ~/.netrc and
        merges the session's settings on every call: 40% of a POST's CPU, and the same for every
        POST to a URL. So each URL's request is prepared once and copied with its own body and
        key; while the session holds cookies (an affinity cookie), afresh, as requests does.
        """
        if len(self._prepared) >= PREPARED_URLS or len(self._settings) >= PREPARED_URLS:
            self._prepared.clear()
            self._settings.clear()
        settings = self._settings.get(url)
        if settings is None:
            settings = dict(self.session.merge_environment_settings(url, {}, None, None, None))
            self._settings[url] = settings
        if self.session.cookies:
            request = self._request(url)
        else:
            base = self._prepared.get(url) or self._prepared.setdefault(url, self._request(url))
            request = base.copy()
        request.prepare_body(data=None, files=None, json=event.body())
        request.headers["Idempotency-Key"] = event.id
        # Per request, not in the prepared base: a token from a file may have been rotated.
        token = self.cfg.bearer_token()
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        return request, settings

    def _request(self, url: str) -> requests.PreparedRequest:
        return self.session.prepare_request(requests.Request("POST", url))

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
