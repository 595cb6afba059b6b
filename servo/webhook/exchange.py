"""The WHATS_NEXT exchange with the backend before a job pod starts: DESCRIBE, ADJUST, MEASURE.

`Exchange` asks the backend within the review's time budget (one try per event: a retry would
not fit) and turns its answer into the ADJUST of the job container; any failure costs only the
patch, never the pod. `ReporterSender` sends through the servo's reporter.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from tenacity import wait_none

from servo.core.errors import ReportError
from servo.core.models import Event
from servo.system.config_sections import ReportConfig
from servo.webhook.config import MAX_WHATS_NEXT, MIN_SEND_S
from servo.webhook.metrics import WebhookMetrics
from servo.webhook.resources import (
    Adjustment,
    Ranges,
    build_adjustment,
    build_description,
    job_container,
)

Sender = Callable[[Event, float], Any]


class _OutOfTimeError(Exception):
    pass


class ReporterSender:
    """Sends one event through servo.report.reporter.Reporter, one try, timed to the time left."""

    def __init__(self, cfg: ReportConfig) -> None:
        import requests

        from servo.report.reporter import Reporter

        self._cfg = cfg
        self._reporter_cls = Reporter
        self._session = requests.Session()

    def __call__(self, event: Event, timeout_s: float) -> Any:
        # One attempt (deadline 0): a retry would not fit in the budget.
        cfg = replace(self._cfg, timeout_s=timeout_s, deadline_s=0.0, max_backoff_s=0.0)
        reporter = self._reporter_cls(cfg, session=self._session, wait=wait_none())
        return reporter.send(event, deadline_s=0.0)


class Exchange:
    """WHATS_NEXT for one app id before its pod starts: DESCRIBE, ADJUST, MEASURE or SLEEP."""

    def __init__(
        self,
        send: Sender,
        *,
        budget_s: float,
        ranges: Ranges,
        clock: Callable[[], float] = time.monotonic,
        metrics: WebhookMetrics | None = None,
    ) -> None:
        self._send = send
        self._budget_s = budget_s
        self._ranges = ranges
        self._clock = clock
        self._metrics = metrics

    def run(
        self,
        *,
        review_uid: str,
        app_id: str,
        pod: Mapping[str, Any],
        index: int,
        log: logging.LoggerAdapter[logging.Logger],
    ) -> Adjustment | None:
        """The adjustment the backend asked for, or None; never raises for backend trouble."""
        adj, outcome = self._exchange(
            review_uid=review_uid, app_id=app_id, pod=pod, index=index, log=log
        )
        if self._metrics is not None:
            self._metrics.exchanged(outcome)
        return adj

    def _exchange(
        self,
        *,
        review_uid: str,
        app_id: str,
        pod: Mapping[str, Any],
        index: int,
        log: logging.LoggerAdapter[logging.Logger],
    ) -> tuple[Adjustment | None, str]:
        """(the adjustment or None, the outcome for the metrics)."""
        deadline = self._clock() + self._budget_s
        n = 0

        def send(name: str, param: Any) -> Any:
            nonlocal n
            left = deadline - self._clock()
            if left < MIN_SEND_S:
                raise _OutOfTimeError
            n += 1
            return self._send(Event(f"{review_uid}:{name}:{n}", name, app_id, param), left)

        try:
            for _ in range(MAX_WHATS_NEXT):
                reply = send("WHATS_NEXT", None)
                cmd = reply.get("cmd") if isinstance(reply, dict) else None
                log.debug("backend answered", extra={"cmd": cmd})
                if cmd == "DESCRIBE":
                    send("DESCRIPTION", build_description(job_container(pod, index), self._ranges))
                    continue
                if cmd == "ADJUST":
                    return self._adjust(send, pod, reply.get("param"), index=index, log=log)
                if cmd not in ("MEASURE", "SLEEP"):
                    log.warning("backend answered an unknown command", extra={"cmd": str(cmd)})
                return None, "no-adjustment"
            log.warning("backend kept asking to DESCRIBE; pod goes on unchanged")
            return None, "describe-loop"
        except _OutOfTimeError:
            log.warning(
                "backend exchange out of time; pod goes on unchanged",
                extra={"budget_s": self._budget_s},
            )
            return None, "out-of-time"
        except ReportError as e:
            log.warning(
                "backend exchange failed; pod goes on unchanged",
                extra={"status": e.status, "error": str(e)},
            )
            return None, "backend-error"

    def _adjust(
        self,
        send: Callable[[str, Any], Any],
        pod: Mapping[str, Any],
        param: Any,
        *,
        index: int,
        log: logging.LoggerAdapter[logging.Logger],
    ) -> tuple[Adjustment | None, str]:
        """The backend's ADJUST: the adjustment (None when refused) and its outcome."""
        adj = build_adjustment(pod, param, index=index, ranges=self._ranges)
        log.info(
            "adjust asked",
            extra={"status": adj.reply.get("status"), "reason": adj.reply.get("reason")},
        )
        self._reply_adjustment(send, adj, log)
        return (adj, "adjusted") if adj.ok else (None, "no-adjustment")

    @staticmethod
    def _reply_adjustment(
        send: Callable[[str, Any], Any], adj: Adjustment, log: logging.LoggerAdapter[logging.Logger]
    ) -> None:
        # The backend asked; the pod gets the settings even if the ADJUSTMENT is not delivered.
        try:
            send("ADJUSTMENT", adj.reply)
        except (ReportError, _OutOfTimeError) as e:
            log.warning("ADJUSTMENT not delivered", extra={"error": str(e) or "out of time"})
