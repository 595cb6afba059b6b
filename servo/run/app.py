"""The servo's assembly: every piece built with what it needs, in `Servo.__init__`, top to
bottom; `Servo.run` starts them in order (reporter, HELLO, watches) and stops them in order
(watches, the stats timer, the queue flushed within the grace period, GOODBYE).

The pieces: `JobBook` (the trackers and their lock), `Marks` (annotations and finalizers, tried
until done), `Outlet` (where a due measurement goes, standby included), `PodEvents` (one watch
event), `WaitTimer` (stats deadlines, retries, the finalizer valve), `ServoProbes` and
`ServoMetrics` (what the servo says about itself), `StatsIntake` (POSTed monitor stats).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from kubernetes import client as k8s

from servo.core.monitor_stats import STATS_AUDIENCE
from servo.core.podwire import pod_key, typed_covers
from servo.core.tracker import Tracker
from servo.http.ops import OpsServer
from servo.kube.client import KubeClient
from servo.kube.lease import LeaderElector
from servo.report.outbox import Outbox
from servo.report.reporter import Reporter
from servo.run.events import PodEvents
from servo.run.guard import Valve
from servo.run.jobs import JobBook
from servo.run.metrics import ServoMetrics
from servo.run.outlet import Outlet
from servo.run.pod_marks import Marks, PodMarks
from servo.run.probes import ServoProbes
from servo.run.receiver import StatsReceiver
from servo.run.scope import Scope
from servo.run.servers import Servers
from servo.run.stats_intake import StatsIntake
from servo.run.timer import WaitTimer
from servo.system.config import Config
from servo.watch.loop import PodWatch, WatchEvent

logger = logging.getLogger(__name__)

# How long shutdown waits for queued reports before giving up on them (Kubernetes' default
# terminationGracePeriodSeconds is 30 s; keep a margin for GOODBYE).
DEFAULT_GRACE_S = 20.0


class StopRequest(threading.Event):
    """The stop event, carrying why it was set (a signal's name; "exit" when not said)."""

    def __init__(self) -> None:
        super().__init__()
        self.reason = "exit"

    def request(self, reason: str) -> None:
        self.reason = reason
        self.set()


class Servo:
    """`run(stop)` returns after a clean shutdown."""

    def __init__(
        self,
        cfg: Config,
        api: k8s.ApiClient,
        *,
        outbox: Outbox | None = None,
        with_receiver: bool = True,
    ) -> None:
        self.cfg = cfg
        # Pods decoded typed (only the fields read) when the app-id path stays within them.
        self.kube = KubeClient(api, whole_pods=not typed_covers(cfg.app_id))
        marks = Marks(PodMarks(self.kube))
        # After a 2xx the pod is annotated, so no later start measures it again.
        self.reporter = Reporter(cfg.report, outbox=outbox, on_delivered=marks.mark_reported)
        self.book = book = JobBook()
        # Filled as run() starts them; the probes read them.
        self.scopes: list[Scope] = []
        self.threads: list[threading.Thread] = []
        # Set while this replica reports (always, without leader election).
        self.leading = threading.Event()
        probes = ServoProbes(cfg, self.scopes, self.threads, self.reporter, self.leading, book)
        self.metrics = ServoMetrics(
            per_app=cfg.metrics.per_app, scopes=probes.scope_views, report=probes.report_view
        )
        self.outlet = Outlet(
            self.reporter,
            self.metrics,
            marks,
            leading=self.leading,
            account=cfg.report.account,
            guarded=cfg.guard.enabled,
        )
        valve = Valve(marks, max_age_s=cfg.guard.max_age_s) if cfg.guard.enabled else None
        self.events = PodEvents(
            book,
            self.outlet,
            marks,
            app_id=cfg.app_id,
            monitor_name=cfg.stats.monitor_container,
            stats_wait_s=cfg.stats.wait_s,
            valve=valve,
        )
        self.timer = WaitTimer(book, self.outlet, marks, stats_wait_s=cfg.stats.wait_s, valve=valve)
        intake = StatsIntake(
            book,
            self.metrics,
            self.outlet.report,
            review=lambda token: self.kube.review_token(token, audience=STATS_AUDIENCE),
        )
        self.servers = Servers(
            cfg, intake.accept, self.metrics.registry, probes, listen=with_receiver
        )
        # Set once run() has started everything: watches, receiver, metrics and probes.
        self.started = threading.Event()

    def run(self, stop: threading.Event, *, grace_s: float = DEFAULT_GRACE_S) -> None:
        self.reporter.start()
        self.servers.start_receiver()
        elector = self._start_election(stop) if self.cfg.leader.enabled else None
        if elector is None:
            self.outlet.lead()
        timer = self._start_thread(self.timer.run, stop, name="stats-waits")
        for ns in [None] if self.cfg.watch.all_namespaces else list(self.cfg.watch.namespaces):
            self._start_scope(ns, stop)
        self.servers.start_ops()
        self.started.set()
        logger.info("servo running", extra={"namespaces": [s.watch.scope for s in self.scopes]})
        stop.wait()
        reason = stop.reason if isinstance(stop, StopRequest) else "exit"
        logger.info("servo stopping", extra={"reason": reason})
        self._shut_down(grace_s, timer=timer, elector=elector, reason=reason)

    def _shut_down(
        self,
        grace_s: float,
        *,
        timer: threading.Thread,
        elector: threading.Thread | None,
        reason: str,
    ) -> None:
        self.kube.close_streams()
        for scope in self.scopes:
            if scope.thread is not None:
                scope.thread.join(timeout=5.0)
        self.servers.stop()
        timer.join(timeout=5.0)
        # Jobs still waiting for stats go out now without them rather than be lost.
        self.timer.flush("the servo stopped before the monitor's stats came")
        self.reporter.close(grace_s=grace_s)
        if elector is not None:
            elector.join(timeout=self.cfg.leader.retry_s + 10)
        self.outlet.goodbye(reason)
        counts = self.reporter.counts
        logger.info(
            "servo stopped",
            extra={"sent": counts.sent, "failed": counts.failed, "lost": counts.lost},
        )

    def _start_thread(
        self, target: Callable[[threading.Event], None], stop: threading.Event, *, name: str
    ) -> threading.Thread:
        thread = threading.Thread(target=target, args=(stop,), name=name, daemon=True)
        thread.start()
        self.threads.append(thread)
        return thread

    def _start_scope(self, ns: str | None, stop: threading.Event) -> None:
        tracker = self.book.add(Tracker(stats_wait_s=self.cfg.stats.wait_s))
        scope = Scope(PodWatch(self.kube, ns, self.cfg.watch, stop), tracker)
        scope.thread = threading.Thread(
            target=self._run_scope, args=(scope, stop), name=f"watch-{ns or 'all'}", daemon=True
        )
        self.scopes.append(scope)
        scope.thread.start()

    def _run_scope(self, scope: Scope, stop: threading.Event) -> None:
        for event in scope.watch.events():
            try:
                self.handle(scope.tracker, event, stop)
            except Exception:
                logger.exception(
                    "pod event handling failed",
                    extra={"pod": pod_key(event.pod), "type": event.type},
                )

    @property
    def receiver(self) -> StatsReceiver | None:
        return self.servers.receiver

    @property
    def ops(self) -> OpsServer | None:
        return self.servers.ops

    def handle(self, tracker: Tracker, event: WatchEvent, stop: threading.Event) -> None:
        """One watch event (the benches drive this directly)."""
        self.events.handle(tracker, event, stop)

    def _start_election(self, stop: threading.Event) -> threading.Thread:
        """Of several replicas, one reports: the elector says when this one leads."""
        elector = LeaderElector(
            self.kube.api,
            self.cfg.leader,
            on_start=self.outlet.lead,
            on_stop=self.outlet.follow,
        )
        return self._start_thread(elector.run, stop, name="leader-election")
