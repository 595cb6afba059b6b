"""Hands protocol events to the backend: a bounded queue, worker threads, the outbox's pump.

Workers send (`sender.py`: the POST and its retries), so a slow backend never stalls the watch;
a refusal (a 4xx other than 408/429) is logged at ERROR and dropped. With an outbox every event
is on disk first and only a 2xx, a refusal or the maximum age removes it; without one (tests,
`servo measure`) an event still queued when the process ends is logged as lost.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
from tenacity.wait import wait_base

from servo.core.errors import ReportError
from servo.core.models import Event
from servo.core.retrying import is_retryable
from servo.report.counts import ReportCounts
from servo.report.outbox import Outbox
from servo.report.sender import Sender
from servo.system.config_sections import ReportConfig

logger = logging.getLogger(__name__)


PUMP_INTERVAL_S = 0.5


class Reporter:
    """Queue + workers + one HTTP session; `send()` is also usable directly (HELLO, GOODBYE)."""

    def __init__(
        self,
        cfg: ReportConfig,
        *,
        session: requests.Session | None = None,
        wait: wait_base | None = None,
        outbox: Outbox | None = None,
        on_delivered: Callable[[Event], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.outbox = outbox
        # Called after a 2xx (e.g. to mark the pod as reported); errors are logged, not raised.
        self.on_delivered = on_delivered
        self._clock = clock
        # Ids queued or in flight, so the pump does not hand one event to two workers.
        self._queued: set[str] = set()
        self._wake = threading.Event()
        self._prune_at = 0.0
        self.counts = ReportCounts()
        self._lock = threading.Lock()
        self._queue: queue.Queue[Event | None] = queue.Queue(maxsize=cfg.queue_size)
        self._abort = threading.Event()
        self._workers: list[threading.Thread] = []
        self._sender = Sender(cfg, abort=self._abort, session=session, wait=wait)
        self.session = self._sender.session

    def send(self, event: Event, *, deadline_s: float | None = None) -> Any:
        """POST one event with retries; return the backend's JSON reply (None if not JSON).

        Raises ReportError when the backend refused it or the deadline passed.
        """
        return self._sender.send(event, deadline_s=deadline_s)

    # -- the queue and its workers ----------------------------------------------------------
    def start(self) -> None:
        for i in range(self.cfg.workers):
            t = threading.Thread(target=self._work, name=f"report-{i}", daemon=True)
            t.start()
            self._workers.append(t)
        if self.outbox is not None:
            waiting = self.outbox.depth()
            if waiting:
                logger.info(
                    "outbox holds events from before; sending them", extra={"count": waiting}
                )
            self._pump_thread = threading.Thread(target=self._pump, name="outbox", daemon=True)
            self._pump_thread.start()

    def submit(self, event: Event, *, stop: threading.Event | None = None) -> bool:
        """Hand over an event. With an outbox: on disk when this returns True, never blocks.
        Without: queued; when the queue is full, wait (never drop). False if stopped first."""
        if self.outbox is not None:
            if self.outbox.put(event, self._clock()):
                self._enqueue(event)
            elif self.on_delivered is not None and self.outbox.delivered_before(event.id):
                # Sent by an earlier run that stopped before its after-delivery step (the
                # pod's reported annotation): not sent again, but that step is done now, or
                # the pod would be measured again at every start. Doing it twice is harmless.
                self._after_delivery(event)
            # else: waiting already (the pump brings it)
            return True
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

    def _enqueue(self, event: Event) -> bool:
        """Queue an outbox event for a worker unless it is already queued or the queue is full
        (then the pump brings it later)."""
        with self._lock:
            if event.id in self._queued:
                return False
            try:
                self._queue.put_nowait(event)
            except queue.Full:
                return False
            self._queued.add(event.id)
            return True

    def _pump(self) -> None:
        """Feed the workers from the outbox: what is due, as far as the queue has room."""
        assert self.outbox is not None
        while not self._abort.is_set():
            now = self._clock()
            for old in self.outbox.older_than(now - self.cfg.outbox_max_age_s):
                if old.event.id in self._queued:
                    continue
                self.outbox.drop(old.event.id)
                self.counts.add("expired")
                logger.error(
                    "report given up: older than the outbox's maximum age",
                    extra={
                        "event": old.event.event,
                        "event_id": old.event.id,
                        "app_id": old.event.app_id,
                        "attempts": old.attempts,
                        "max_age_s": self.cfg.outbox_max_age_s,
                    },
                )
            if now >= self._prune_at:
                self._prune_at = now + 3600.0
                self.outbox.prune(now)
            room = self._queue.maxsize - self._queue.qsize()
            if room > 0:
                with self._lock:
                    busy = set(self._queued)
                for pending in self.outbox.due(now, limit=room, skip=busy):
                    self._enqueue(pending.event)
            self.outbox.flush()  # the acks of a steady trickle, at most PUMP_INTERVAL_S late
            self._wake.wait(PUMP_INTERVAL_S)
            self._wake.clear()

    def alive(self) -> bool:
        """Every worker (and the outbox pump) still runs."""
        pump = getattr(self, "_pump_thread", None)
        return all(t.is_alive() for t in self._workers) and (pump is None or pump.is_alive())

    @property
    def depth(self) -> int:
        """Events waiting: in the outbox when there is one, else in the memory queue."""
        return self.outbox.depth() if self.outbox is not None else self._queue.qsize()

    def _work(self) -> None:
        while True:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                # Nothing left to send for now: commit the acks waiting for a batch (group
                # commit, outbox.py), so an idle servo holds none in memory.
                if self.outbox is not None:
                    self.outbox.flush()
                event = self._queue.get()
            try:
                if event is None:
                    return
                self._deliver(event)
            finally:
                self._queue.task_done()

    def _deliver(self, event: Event) -> None:
        try:
            self._deliver_once(event)
        finally:
            with self._lock:
                self._queued.discard(event.id)

    def _deliver_once(self, event: Event) -> None:
        if self._abort.is_set():
            if self.outbox is not None:
                return  # stays in the outbox for the next start
            self.counts.add("lost")
            logger.error(
                "report lost at shutdown", extra={"event": event.event, "event_id": event.id}
            )
            return
        started = time.monotonic()
        try:
            self.send(event)
        except ReportError as e:
            self._not_delivered(event, e, started)
        except Exception:
            self.counts.add("failed")
            logger.exception("report crashed", extra={"event": event.event, "event_id": event.id})
        else:
            if self.outbox is not None:
                self.outbox.delivered(event.id, self._clock())
            self.counts.add("sent")
            self._after_delivery(event)
            logger.info(
                "report sent",
                extra={
                    "event": event.event,
                    "event_id": event.id,
                    "app_id": event.app_id,
                    "elapsed_s": round(time.monotonic() - started, 3),
                },
            )

    def _not_delivered(self, event: Event, e: ReportError, started: float) -> None:
        """A send that ended in ReportError: postponed in the outbox when it may yet succeed,
        else dropped as refused."""
        if self.outbox is not None and is_retryable(e):
            # Out of retries for now (or shutting down): keep it, try again later.
            self.outbox.postpone(event.id, self._clock() + self.cfg.max_backoff_s, str(e))
            self.counts.add("postponed")
            log = logger.info if self._abort.is_set() else logger.warning
            log(
                "report postponed; it stays in the outbox",
                extra={
                    "event": event.event,
                    "event_id": event.id,
                    "app_id": event.app_id,
                    "status": e.status,
                    "error": str(e),
                },
            )
            return
        if self.outbox is not None:
            self.outbox.drop(event.id)
        self.counts.add("failed")
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

    def _after_delivery(self, event: Event) -> None:
        if self.on_delivered is not None:
            try:
                self.on_delivered(event)
            except Exception:  # noqa: BLE001 - the event is delivered whatever this does
                logger.exception("after-delivery step failed", extra={"event_id": event.id})

    def close(self, *, grace_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        """Let the workers empty the queue (and the outbox) for up to `grace_s`, then abort:
        with an outbox, what is left stays there for the next start."""
        deadline = clock() + grace_s
        while clock() < deadline and (
            self._queue.unfinished_tasks or (self.outbox is not None and self.outbox.depth())
        ):
            self._wake.set()
            time.sleep(0.05)
        self._abort.set()
        self._wake.set()
        for _ in self._workers:
            self._queue.put(None)
        for t in self._workers:
            t.join(timeout=max(1.0, self.cfg.timeout_s + 1))
        self._workers.clear()
        # depth() commits the acks still waiting (group commit, outbox.py) before it counts.
        if self.outbox is not None and (left := self.outbox.depth()):
            logger.warning("events left in the outbox for the next start", extra={"count": left})
