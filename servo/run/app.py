"""The servo's run loop: one watch thread per scope feeding a tracker, a reporter sending events.

Owns start-up order (reporter, HELLO, watches) and shutdown (stop watches, flush the queue
within the grace period, GOODBYE). One pod's error is logged at the per-event boundary and
the loop goes on.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid

from servo.core.models import GLOBAL_APP_ID, Event, Measurement, PodFacts
from servo.core.monitor_stats import CHANNEL_MESSAGE, STATS_AUDIENCE
from servo.core.patches import valve_due
from servo.core.pods import facts_from_pod
from servo.core.podwire import pod_key, typed_covers
from servo.core.tracker import Tracker
from servo.http.ops import OpsServer
from servo.kube.client import KubeClient
from servo.kube.lease import LeaderElector
from servo.report.reporter import Reporter
from servo.run.metrics import ServoMetrics
from servo.run.pod_marks import PodMarks
from servo.run.probes import ServoProbes
from servo.run.receiver import StatsReceiver
from servo.run.scope import Scope
from servo.run.stats_intake import StatsIntake
from servo.system.config import Config
from servo.system.logs import pod_logger
from servo.watch.loop import LISTED, PodWatch, WatchEvent

logger = logging.getLogger(__name__)

# How long shutdown waits for queued reports before giving up on them (Kubernetes' default
# terminationGracePeriodSeconds is 30 s; keep a margin for GOODBYE).
DEFAULT_GRACE_S = 20.0
GOODBYE_DEADLINE_S = 5.0
# How often waits for monitor stats are checked for their deadline.
STATS_WAIT_TICK_S = 0.25
# How often guard finalizers that could not be removed, and reported annotations that could
# not be set, are tried again.
RELEASE_RETRY_S = 5.0


def measurement_event(m: Measurement) -> Event:
    # Stable id (pod uid + event) so a backend can drop a duplicate delivery.
    return Event(
        id=f"{m.job.uid}:MEASUREMENT", event="MEASUREMENT", app_id=m.job.app_id, param=m.to_param()
    )


class Servo:
    """Wires watches, trackers and the reporter; `run(stop)` returns after a clean shutdown."""

    def __init__(
        self, cfg: Config, kube: KubeClient, reporter: Reporter, *, with_receiver: bool = True
    ) -> None:
        self.cfg = cfg
        self.kube = kube
        self.reporter = reporter
        self.marks = PodMarks(kube)
        # Pods decoded typed (only the fields read) when the app-id path stays within them.
        kube.whole_pods = not typed_covers(cfg.app_id)
        self.with_receiver = with_receiver
        self._monitor_name = cfg.stats.monitor_container
        if reporter.on_delivered is None:
            # After a 2xx the pod is annotated, so no later start measures it again.
            reporter.on_delivered = self.mark_reported
        self.receiver: StatsReceiver | None = None
        self.ops: OpsServer | None = None
        self.metrics = ServoMetrics(per_app=cfg.metrics.per_app)
        self._threads: list[threading.Thread] = []
        # Set while this replica reports (always, without leader election).
        self.leading = threading.Event()
        self.elector: LeaderElector | None = None
        self.elector_thread = threading.Thread()
        self.said_hello = False
        # Standby: measurements by pod uid that the leader has not yet marked as reported.
        self._shadow: dict[str, Measurement] = {}
        # Guarded pods whose finalizer could not be removed yet (API errors): retried.
        self._to_release: dict[str, PodFacts] = {}
        # Delivered measurements whose pod could not be annotated yet: retried.
        self._to_mark: dict[str, Event] = {}
        self._release_retry_at = 0.0
        # Trackers are fed by watch threads, receiver threads and the wait timer.
        self._lock = threading.Lock()
        self.instance_id = uuid.uuid4().hex
        self.scopes: list[Scope] = []
        self.probes = ServoProbes(
            cfg, self.scopes, self._threads, reporter, self.leading, self._lock
        )
        self.metrics.bind(self.probes.scope_views, self.probes.report_view)
        self.intake = StatsIntake(
            lambda: [s.tracker for s in self.scopes],
            self._lock,
            self.metrics,
            lambda m: self._send(m, None),
            review=lambda token: kube.review_token(token, audience=STATS_AUDIENCE),
        )
        self.stop_reason = "exit"
        # Set once run() has started everything: watches, receiver, metrics and probes.
        self.started = threading.Event()

    def run(self, stop: threading.Event, *, grace_s: float = DEFAULT_GRACE_S) -> None:
        self.reporter.start()
        self._start_receiver()
        if self.cfg.leader.enabled:
            self._start_election(stop)
        else:
            self._lead()
        waits = threading.Thread(
            target=self._expire_waits, args=(stop,), name="stats-waits", daemon=True
        )
        waits.start()
        self._threads.append(waits)
        namespaces: list[str | None] = (
            [None] if self.cfg.watch.all_namespaces else list(self.cfg.watch.namespaces)
        )
        for ns in namespaces:
            scope = Scope(
                PodWatch(self.kube, ns, self.cfg.watch, stop),
                Tracker(stats_wait_s=self.cfg.stats.wait_s),
            )
            scope.thread = threading.Thread(
                target=self._run_scope,
                args=(scope, stop),
                name=f"watch-{ns or 'all'}",
                daemon=True,
            )
            self.scopes.append(scope)
            scope.thread.start()
        self._start_ops()
        self.started.set()
        logger.info("servo running", extra={"namespaces": [s.watch.scope for s in self.scopes]})
        stop.wait()
        logger.info("servo stopping", extra={"reason": self.stop_reason})
        self.kube.close_streams()
        for scope in self.scopes:
            if scope.thread is not None:
                scope.thread.join(timeout=5.0)
        if self.receiver is not None:
            self.receiver.stop()
        if self.ops is not None:
            self.ops.stop()
        waits.join(timeout=5.0)
        # Jobs still waiting for stats go out now without them rather than be lost (until
        # the durable outbox keeps them across restarts).
        for m in self._expired(math.inf, "the servo stopped before the monitor's stats came"):
            self._send(m, None)
        self.reporter.close(grace_s=grace_s)
        if self.elector is not None:
            self.elector_thread.join(timeout=self.cfg.leader.retry_s + 10)
        if self.said_hello:
            try:
                self.reporter.send(
                    self._lifecycle_event("GOODBYE", self.stop_reason),
                    deadline_s=GOODBYE_DEADLINE_S,
                )
            except Exception as e:  # noqa: BLE001 - shutdown goes on whatever the backend says
                logger.warning("GOODBYE not delivered", extra={"error": str(e)})
        counts = self.reporter.counts
        logger.info(
            "servo stopped",
            extra={"sent": counts.sent, "failed": counts.failed, "lost": counts.lost},
        )

    def _lifecycle_event(self, name: str, reason: str | None) -> Event:
        param: dict[str, str | None] = {"account": self.cfg.report.account}
        if reason is not None:
            param["reason"] = reason
        return Event(id=f"{self.instance_id}:{name}", event=name, app_id=GLOBAL_APP_ID, param=param)

    def _run_scope(self, scope: Scope, stop: threading.Event) -> None:
        for event in scope.watch.events():
            try:
                self.handle(scope.tracker, event, stop)
            except Exception:
                logger.exception(
                    "pod event handling failed",
                    extra={"pod": pod_key(event.pod), "type": event.type},
                )

    def handle(self, tracker: Tracker, event: WatchEvent, stop: threading.Event) -> None:
        """Feed one watch event to the tracker and queue what it says is due."""
        if event.type == LISTED:
            with self._lock:
                vanished = tracker.relisted(event.listed_uids)
            for m in vanished:
                pod_logger(logger, m.job).warning(
                    "job pod vanished unmeasured", extra={"message_": m.failure}
                )
                self._send(m, stop)
            return
        found = facts_from_pod(
            event.pod, self.cfg.app_id, doc=event.doc, monitor_name=self._monitor_name
        )
        if found.facts is None:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("not a job pod", extra={"pod": pod_key(event.pod), "why": found.why})
            uid = event.pod.metadata.uid if event.pod.metadata is not None else None
            if uid:
                with self._lock:
                    tracker.forget(uid)
            return
        facts = found.facts
        with self._lock:
            if facts.reported:
                self._shadow.pop(facts.uid, None)
            due = tracker.observe(event.type, facts, time.monotonic())
            waiting = due is None and facts.uid in tracker.awaiting
            done_before = due is None and facts.uid in tracker.reported
        if waiting and logger.isEnabledFor(logging.DEBUG):
            pod_logger(logger, facts).debug(
                "job ended; waiting for the monitor's stats",
                extra={"wait_s": self.cfg.stats.wait_s},
            )
        if due is not None:
            self._send(due, stop)
        elif self.cfg.guard.enabled and facts.finalizers and event.type != "DELETED":
            if done_before:
                self.release(facts, "measured before")
            elif valve_due(facts, time.time(), self.cfg.guard.max_age_s):
                pod_logger(logger, facts).warning(
                    "releasing a job pod that waited too long for its measurement",
                    extra={"max_age_s": self.cfg.guard.max_age_s},
                )
                self.release(facts, "safety valve")

    # --- restart recovery and the finalizer guard -------------------------------------------

    def mark_reported(self, event: Event) -> None:
        """After a 2xx for a MEASUREMENT: annotate the pod, so no later start measures it;
        when the API server refuses for now, the timer tries again."""
        done = self.marks.mark_reported(event)
        with self._lock:
            if done:
                self._to_mark.pop(event.id, None)
            else:
                self._to_mark[event.id] = event

    def release(self, facts: PodFacts, why: str) -> None:
        """Remove the guard finalizer (measured, or the safety valve opened); when the API
        server refuses for now, the timer tries again (no event may come for that pod)."""
        done = self.marks.release(facts, why)
        with self._lock:
            if done:
                self._to_release.pop(facts.uid, None)
            else:
                self._to_release[facts.uid] = facts

    # --- leadership: of several replicas, one reports --------------------------------------

    def _start_election(self, stop: threading.Event) -> None:
        self.elector = LeaderElector(
            self.kube.api,
            self.cfg.leader,
            on_start=self._lead,
            on_stop=self._follow,
        )
        self.elector_thread = threading.Thread(
            target=self.elector.run, args=(stop,), name="leader-election", daemon=True
        )
        self.elector_thread.start()
        self._threads.append(self.elector_thread)

    def _lead(self) -> None:
        """This replica reports from now on: HELLO, then what it measured while standing by
        (its leader may have died before sending those; a backend drops a repeat by its id)."""
        self.leading.set()
        if not self.said_hello:
            self.reporter.submit(self._lifecycle_event("HELLO", None))
            self.said_hello = True
        with self._lock:
            held, self._shadow = list(self._shadow.values()), {}
        if held:
            logger.info("sending what was measured while standing by", extra={"count": len(held)})
        for m in held:
            self._submit(m, None)

    def _follow(self) -> None:
        self.leading.clear()

    def _send(self, due: Measurement, stop: threading.Event | None) -> None:
        if not self.leading.is_set():
            # Standing by: keep it until the leader's reported annotation shows on the pod.
            with self._lock:
                self._shadow[due.job.uid] = due
            return
        self._submit(due, stop)

    def _submit(self, due: Measurement, stop: threading.Event | None) -> None:
        # Metrics and the log line are side effects: whatever goes wrong in them, the
        # measurement itself is still queued.
        try:
            self._account(due)
        except Exception:  # noqa: BLE001 - one bad figure must not lose the pod's report
            logger.exception(
                "metrics or logging of a measurement failed",
                extra={"pod": due.job.key, "uid": due.job.uid},
            )
        if self.reporter.submit(measurement_event(due), stop=stop) and (
            self.cfg.guard.enabled and due.job.finalizers
        ):
            self.release(due.job, "measured")

    def _account(self, due: Measurement) -> None:
        self.metrics.observe(due)
        if due.annotations.get("stats_channel") == CHANNEL_MESSAGE:
            self.metrics.stats_arrived(CHANNEL_MESSAGE, None)
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

    # --- operations: metrics and probes -------------------------------------------------

    def _start_ops(self) -> None:
        if not self.with_receiver:
            return
        ops = OpsServer(
            self.metrics.registry,
            health=self.probes.health,
            ready=self.probes.ready,
            bind=self.cfg.metrics.bind,
            port=self.cfg.metrics.port,
        )
        try:
            ops.start()
        except OSError as e:
            logger.error(
                "metrics and probes cannot listen",
                extra={"port": self.cfg.metrics.port, "error": str(e)},
            )
            return
        self.ops = ops

    # --- monitor stats --------------------------------------------------------------------

    def _start_receiver(self) -> None:
        if not self.with_receiver:
            return
        receiver = StatsReceiver(
            self.intake.accept, bind=self.cfg.stats.bind, port=self.cfg.stats.port
        )
        try:
            receiver.start()
        except OSError as e:
            # Termination messages still bring stats; only the POST channel is lost.
            logger.error(
                "stats receiver cannot listen; monitors' POSTs will fail, termination messages"
                " still work",
                extra={"bind": self.cfg.stats.bind, "port": self.cfg.stats.port, "error": str(e)},
            )
            return
        self.receiver = receiver

    def _expired(self, now_s: float, why: str | None = None) -> list[Measurement]:
        with self._lock:
            return [m for s in self.scopes for m in s.tracker.expire(now_s, why=why)]

    def _expire_waits(self, stop: threading.Event) -> None:
        """Measure, without stats, the jobs whose monitor did not deliver in time; open the
        guard's safety valve for pods that wait for deletion too long (no event may come)."""
        while not stop.wait(STATS_WAIT_TICK_S):
            try:
                self._tick(stop)
            except Exception:  # noqa: BLE001 - the timer must outlive any one bad pod
                logger.exception("stats wait timer failed; going on")

    def _tick(self, stop: threading.Event) -> None:
        for m in self._expired(time.monotonic()):
            try:
                pod_logger(logger, m.job).warning(
                    "no stats from the monitor in time; measuring without them",
                    extra={"wait_s": self.cfg.stats.wait_s},
                )
                self._send(m, stop)
            except Exception:  # noqa: BLE001 - the others still go out
                logger.exception("sending a measurement failed", extra={"uid": m.job.uid})
        if time.monotonic() >= self._release_retry_at:
            # Every few seconds, not every tick: a lasting refusal must not flood the API.
            self._release_retry_at = time.monotonic() + RELEASE_RETRY_S
            with self._lock:
                retry = list(self._to_release.values())
                unmarked = list(self._to_mark.values())
            for facts in retry:
                self.release(facts, "measured (retry)")
            for event in unmarked:
                self.mark_reported(event)
        if self.cfg.guard.enabled:
            self._open_valves()

    def _open_valves(self) -> None:
        """Guarded pods that waited too long for their measurement are let go."""
        now = time.time()
        with self._lock:
            stuck = [
                f
                for s in self.scopes
                for f in s.tracker.pending.values()
                if valve_due(f, now, self.cfg.guard.max_age_s)
            ]
        for facts in stuck:
            pod_logger(logger, facts).warning(
                "releasing a job pod that waited too long for its measurement",
                extra={"max_age_s": self.cfg.guard.max_age_s},
            )
            self.release(facts, "safety valve")
            with self._lock:  # released once; its next event says what became of it
                for s in self.scopes:
                    s.tracker.pending.pop(facts.uid, None)
