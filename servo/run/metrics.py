"""Prometheus metrics of the servo (prometheus_client), on a registry of its own.

Two kinds: what happens at one moment is recorded when it happens (a job measured: counters and
histograms of its figures); what the servo's parts already count (watch restarts and 410s,
reports sent and failed, the outbox) is read from them at scrape time by a custom collector, so
the hot paths carry no metric code. Labels stay bounded: namespace, event, outcome, channel;
per-app-id gauges only when asked for (OPTUNE_METRICS_PER_APP), since app ids are unbounded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from servo.core.models import Measurement

# Batch jobs run from seconds to a day: buckets from 1 s to 24 h.
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)
# Peak memory from 16 MiB to 256 GiB, by factors of 4.
MEMORY_BUCKETS = tuple(float(16 * 2**20 * 4**i) for i in range(8))
STATS_WAIT_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60)


@dataclass(frozen=True, slots=True)
class ScopeView:
    """What the collector reads of one watch scope at scrape time."""

    namespace: str
    jobs_seen: int
    lists: int
    watches: int
    expired: int
    errors: int
    pending: int
    awaiting_stats: int


@dataclass(frozen=True, slots=True)
class ReportView:
    sent: int
    failed: int
    lost: int
    expired: int
    postponed: int
    outbox_depth: int | None
    outbox_oldest_age_s: float | None


# Per scope (label: namespace): read from the views at scrape time.
_SCOPE_FAMILIES: list[tuple[str, str, str, Callable[[ScopeView], float]]] = [
    ("counter", "servo_jobs_seen", "Job pods seen", lambda v: v.jobs_seen),
    (
        "counter",
        "servo_watch_lists",
        "Full lists of pods (first and after 410)",
        lambda v: v.lists,
    ),
    ("counter", "servo_watch_restarts", "Watch streams opened", lambda v: v.watches),
    ("counter", "servo_watch_expired", "Watches ended by 410 Gone", lambda v: v.expired),
    (
        "counter",
        "servo_watch_errors",
        "List/watch failures (connection, 5xx, 401/403)",
        lambda v: v.errors,
    ),
    ("gauge", "servo_jobs_running", "Job pods tracked, not finished", lambda v: v.pending),
    (
        "gauge",
        "servo_jobs_awaiting_stats",
        "Finished jobs waiting for monitor stats",
        lambda v: v.awaiting_stats,
    ),
]


class _StateCollector(Collector):
    """Reads the servo's own counters when Prometheus scrapes."""

    def __init__(
        self, scopes: Callable[[], Sequence[ScopeView]], report: Callable[[], ReportView]
    ) -> None:
        self._scopes = scopes
        self._report = report

    def collect(self) -> Iterator[Metric]:
        views = self._scopes()
        for kind, name, doc, read in _SCOPE_FAMILIES:
            family: CounterMetricFamily | GaugeMetricFamily = (
                CounterMetricFamily(name, doc, labels=["namespace"])
                if kind == "counter"
                else GaugeMetricFamily(name, doc, labels=["namespace"])
            )
            for v in views:
                family.add_metric([v.namespace], read(v))
            yield family
        yield from _report_families(self._report())


def _report_families(r: ReportView) -> Iterator[Metric]:
    reports = CounterMetricFamily(
        "servo_reports", "Events by what became of them", labels=["result"]
    )
    for result in ("sent", "failed", "lost", "expired", "postponed"):
        reports.add_metric([result], getattr(r, result))
    yield reports
    if r.outbox_depth is not None:
        yield GaugeMetricFamily("servo_outbox_depth", "Events in the outbox", value=r.outbox_depth)
        yield GaugeMetricFamily(
            "servo_outbox_oldest_age_seconds",
            "Age of the oldest event in the outbox (0 when empty)",
            value=r.outbox_oldest_age_s or 0.0,
        )


@dataclass(frozen=True, slots=True)
class _NamespaceChildren:
    measured: Counter
    failed: Counter
    duration: Histogram
    cpu: Histogram
    memory: Histogram


class ServoMetrics:
    """The servo's metrics; `scopes` and `report` give the scrape-time view of its state."""

    def __init__(
        self,
        *,
        per_app: bool = False,
        scopes: Callable[[], Sequence[ScopeView]] | None = None,
        report: Callable[[], ReportView] | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs_measured = Counter(
            "servo_jobs_measured",
            "Measurements queued, by outcome (measured or failed)",
            ["namespace", "outcome"],
            registry=r,
        )
        self.job_duration = _by_namespace(
            r, "servo_job_duration_seconds", "Run time of measured jobs", DURATION_BUCKETS
        )
        self.job_cpu = _by_namespace(
            r,
            "servo_job_cpu_seconds",
            "CPU time of measured jobs (with a monitor)",
            DURATION_BUCKETS,
        )
        self.job_memory = _by_namespace(
            r,
            "servo_job_max_memory_bytes",
            "Peak memory of measured jobs (with a monitor)",
            MEMORY_BUCKETS,
        )
        self.stats_wait = Histogram(
            "servo_stats_wait_seconds",
            "From the job's end to its monitor's stats",
            buckets=STATS_WAIT_BUCKETS,
            registry=r,
        )
        self.stats_received = Counter(
            "servo_stats_received",
            "Monitor stats received, by channel",
            ["channel"],
            registry=r,
        )
        self._per_namespace: dict[str, _NamespaceChildren] = {}
        self.last_value: Gauge | None = None
        if per_app:
            self.last_value = Gauge(
                "servo_job_last_value",
                "The last measured value of each metric per app id",
                ["app_id", "metric"],
                registry=r,
            )
        if scopes is not None and report is not None:
            r.register(_StateCollector(scopes, report))

    def observe(self, m: Measurement) -> None:
        """One measurement queued."""
        ns = m.job.namespace
        per_ns = self._per_namespace.get(ns)
        if per_ns is None:
            # labels() takes a lock and builds a key on every call: look each child up once.
            per_ns = self._per_namespace[ns] = _NamespaceChildren(
                self.jobs_measured.labels(ns, "measured"),
                self.jobs_measured.labels(ns, "failed"),
                self.job_duration.labels(ns),
                self.job_cpu.labels(ns),
                self.job_memory.labels(ns),
            )
        (per_ns.failed if m.failure else per_ns.measured).inc()
        # Figures are bounded before they get here; a value a histogram cannot take is
        # still left out rather than fail the measurement.
        figures = {k: f for k, v in m.metrics.items() if (f := _finite(v.value)) is not None}
        if "duration" in figures:
            per_ns.duration.observe(figures["duration"])
        if "cpu_time" in figures:
            per_ns.cpu.observe(figures["cpu_time"])
        if "max_memory" in figures:
            per_ns.memory.observe(figures["max_memory"])
        if self.last_value is not None:
            for name, value in figures.items():
                self.last_value.labels(m.job.app_id, name).set(value)

    def stats_arrived(self, channel: str, waited_s: float | None) -> None:
        self.stats_received.labels(channel).inc()
        if waited_s is not None:
            self.stats_wait.observe(max(0.0, waited_s))


def _by_namespace(
    registry: CollectorRegistry, name: str, doc: str, buckets: Sequence[float]
) -> Histogram:
    return Histogram(name, doc, ["namespace"], buckets=buckets, registry=registry)


def _finite(value: float) -> float | None:
    try:
        f = float(value)
    except (OverflowError, TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def age_s(oldest_created: float | None, now_s: float | None = None) -> float | None:
    if oldest_created is None:
        return None
    return max(0.0, (time.time() if now_s is None else now_s) - oldest_created)
