"""Where a due measurement goes: `Outlet.report` is the one verb the run loop hands it on with.

While this replica leads (always, without leader election) a measurement is counted, logged
and submitted to the reporter (durable in its outbox), and the pod's guard finalizer removed.
Standing by, it is held until the leader's reported annotation shows on the pod; on taking
the lead the held ones go out (the leader may have died before sending them; a backend drops
a repeat by its id). HELLO and GOODBYE, the servo's own lifecycle events, go out here too.
"""

from __future__ import annotations

import logging
import threading
import uuid

from servo.core.models import GLOBAL_APP_ID, Event, Measurement, PodRef
from servo.core.monitor_stats import CHANNEL_MESSAGE
from servo.report.reporter import Reporter
from servo.run.metrics import ServoMetrics
from servo.run.pod_marks import Marks

logger = logging.getLogger(__name__)

GOODBYE_DEADLINE_S = 5.0


def measurement_event(m: Measurement) -> Event:
    # Stable id (pod uid + event) so a backend can drop a duplicate delivery.
    job = m.job
    return Event(
        id=f"{job.uid}:MEASUREMENT",
        event="MEASUREMENT",
        app_id=job.app_id,
        param=m.to_param(),
        pod=PodRef(job.namespace, job.name, job.uid),
    )


class Outlet:
    def __init__(
        self,
        reporter: Reporter,
        metrics: ServoMetrics,
        marks: Marks,
        *,
        leading: threading.Event,
        account: str | None,
        guarded: bool,
    ) -> None:
        self._reporter, self._metrics, self._marks = reporter, metrics, marks
        self._account, self._guarded = account, guarded
        # Set while this replica reports; the probes read it too.
        self.leading = leading
        self._said_hello = False
        # Standby: measurements by pod uid that the leader has not yet marked as reported.
        self._held: dict[str, Measurement] = {}
        self._lock = threading.Lock()
        self._instance_id = uuid.uuid4().hex

    def report(self, due: Measurement, stop: threading.Event | None = None) -> None:
        if not self.leading.is_set():
            with self._lock:
                self._held[due.job.uid] = due
            return
        self._submit(due, stop)

    def seen_reported(self, uid: str) -> None:
        """The pod carries the reported annotation: nothing held for it is needed any more."""
        with self._lock:
            self._held.pop(uid, None)

    def lead(self) -> None:
        """This replica reports from now on: HELLO, then what it measured while standing by."""
        self.leading.set()
        if not self._said_hello:
            self._reporter.submit(self._lifecycle_event("HELLO", None))
            self._said_hello = True
        with self._lock:
            held, self._held = list(self._held.values()), {}
        if held:
            logger.info("sending what was measured while standing by", extra={"count": len(held)})
        for m in held:
            self._submit(m, None)

    def follow(self) -> None:
        self.leading.clear()

    def goodbye(self, reason: str) -> None:
        """Once the reporter is closed: GOODBYE, sent directly, if HELLO went out."""
        if not self._said_hello:
            return
        try:
            self._reporter.send(
                self._lifecycle_event("GOODBYE", reason), deadline_s=GOODBYE_DEADLINE_S
            )
        except Exception as e:  # noqa: BLE001 - shutdown goes on whatever the backend says
            logger.warning("GOODBYE not delivered", extra={"error": str(e)})

    def _lifecycle_event(self, name: str, reason: str | None) -> Event:
        param: dict[str, str | None] = {"account": self._account}
        if reason is not None:
            param["reason"] = reason
        return Event(
            id=f"{self._instance_id}:{name}", event=name, app_id=GLOBAL_APP_ID, param=param
        )

    def _submit(self, due: Measurement, stop: threading.Event | None) -> None:
        # Metrics and the log line are side effects: whatever goes wrong in them, the
        # measurement itself is still queued.
        try:
            self._count(due)
        except Exception:  # noqa: BLE001 - one bad figure must not lose the pod's report
            logger.exception(
                "metrics or logging of a measurement failed",
                extra={"pod": due.job.key, "uid": due.job.uid},
            )
        if self._reporter.submit(measurement_event(due), stop=stop) and (
            self._guarded and due.job.finalizers
        ):
            self._marks.release(due.job, "measured")

    def _count(self, due: Measurement) -> None:
        self._metrics.observe(due)
        if due.annotations.get("stats_channel") == CHANNEL_MESSAGE:
            self._metrics.stats_arrived(CHANNEL_MESSAGE, None)
        # The one INFO line per job: through the logger directly (not a PodLogger), as this
        # runs for every completion on the watch thread.
        job = due.job
        if due.failure is None:
            metrics = {k: v.value for k, v in due.metrics.items()}
            logger.info(
                "job measured",
                extra={
                    "pod": job.key,
                    "uid": job.uid,
                    "app_id": job.app_id,
                    "metrics": metrics,
                    "exitcode": due.annotations.get("exitcode"),
                },
            )
        else:
            logger.info(
                "job failed before it could be measured",
                extra={
                    "pod": job.key,
                    "uid": job.uid,
                    "app_id": job.app_id,
                    "why": due.failure,
                    "reason": due.annotations.get("reason"),
                },
            )
