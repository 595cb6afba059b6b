"""The sections of the servo's configuration: report, watch, stats, metrics, leader, guard.

Each is a frozen dataclass whose defaults come from `servo.core.settings` (one home for every
default and range); `config.load_config` fills them from the environment, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from servo.core import settings as S
from servo.core.models import DEFAULT_MONITOR_NAME
from servo.system.secretfile import SecretFile

ALL_NAMESPACES = "*"
DEFAULT_LEADER_NAMESPACE = "servo"
DEFAULT_LEADER_LEASE = "servo-leader"
# The receiver and the metrics port are reached at the pod IP, by monitors and Prometheus.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104


@dataclass(frozen=True, slots=True)
class ReportConfig:
    """Where and how measurements are sent."""

    # Template with {acct} and {app_id}; default: the bundled collector in the cluster.
    url_template: str
    # Fills {acct}; required only when the template uses it.
    account: str | None
    # Bearer token (OPTUNE_AUTH_TOKEN); None, and no auth_token_file, means no Authorization
    # header at all.
    auth_token: str | None
    # Per-request timeout; the original used 10 s.
    timeout_s: float = S.SEND_TIMEOUT.default
    # Give up on one send after this long (backend outage); the durable outbox keeps it.
    deadline_s: float = S.SEND_DEADLINE.default
    # Cap on one backoff wait, Retry-After included, so a hostile header cannot park a worker.
    max_backoff_s: float = S.SEND_MAX_BACKOFF.default
    # Concurrent senders; the original ran 4 worker threads.
    workers: int = S.SEND_WORKERS.default
    # Events waiting to be sent; when full the watch waits rather than drop a measurement.
    queue_size: int = S.SEND_QUEUE.default
    # Directory of the durable outbox (SQLite); survives restarts when it is a volume.
    outbox_dir: str = ""
    # An event still undelivered after this long is given up (ERROR line, counter): a week
    # covers a long weekend's backend outage without keeping events forever.
    outbox_max_age_s: float = S.OUTBOX_MAX_AGE.default
    # The bearer token from a file (OPTUNE_AUTH_TOKEN_FILE, a Secret volume), re-read when it
    # changes; set instead of auth_token, never beside it.
    auth_token_file: SecretFile | None = None

    def bearer_token(self) -> str | None:
        """The token to send now (the file's current one, when the token is in a file)."""
        if self.auth_token_file is not None:
            return self.auth_token_file.current()
        return self.auth_token

    @property
    def has_token(self) -> bool:
        return self.auth_token_file is not None or bool(self.auth_token)

    def url_for(self, app_id: str) -> str:
        """The URL for one app id (quoted, so an id cannot change the path)."""
        return self.url_template.format(acct=self.account or "", app_id=quote(app_id, safe=""))


@dataclass(frozen=True, slots=True)
class WatchConfig:
    """Which pods are watched and how the watch keeps itself healthy."""

    # Namespaces to watch; ("*",) means one cluster-wide watch.
    namespaces: tuple[str, ...] = ("default",)
    # timeoutSeconds asked of the API server per watch; a normal end just re-watches.
    timeout_s: int = S.WATCH_TIMEOUT.default
    # No byte for this long means a dead stream (kopf uses 70 s: a bit over a bookmark period).
    idle_timeout_s: float = S.WATCH_IDLE_TIMEOUT.default
    # Cap on reconnect backoff after connection errors and 5xx.
    max_backoff_s: float = S.WATCH_MAX_BACKOFF.default
    # Page size of the initial list, so a huge namespace is not one giant response.
    list_page_size: int = S.LIST_PAGE_SIZE.default

    @property
    def all_namespaces(self) -> bool:
        return self.namespaces == (ALL_NAMESPACES,)


@dataclass(frozen=True, slots=True)
class StatsConfig:
    """How the servo gets CPU and memory figures from the monitor sidecar."""

    # Container name that marks a pod's monitor (the name the webhook injects it under).
    monitor_container: str = DEFAULT_MONITOR_NAME
    # After the job container ends, how long to wait for the monitor's stats before measuring
    # without them: the monitor needs a moment to get its cue, read the cgroup and deliver.
    wait_s: float = S.STATS_WAIT.default
    # Port of the stats receiver; 8080 as in the original. 0 = any free port (tests).
    port: int = S.STATS_PORT.default
    # Address the receiver binds; all interfaces, since monitors reach it at the pod IP.
    bind: str = ALL_INTERFACES


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """The operations endpoint: /metrics, /healthz, /readyz."""

    # Port for Prometheus and the kubelet's probes; 0 = any free port (tests).
    port: int = S.METRICS_PORT.default
    # All interfaces: Prometheus and the kubelet reach it at the pod IP.
    bind: str = ALL_INTERFACES
    # Last-value gauges per app id: off by default, app ids are unbounded label values.
    per_app: bool = False


@dataclass(frozen=True, slots=True)
class LeaderSettings:
    """Leader election among replicas (off: this replica always reports)."""

    enabled: bool = False
    # Where the coordination.k8s.io Lease lives (the servo's own namespace) and its name.
    namespace: str = DEFAULT_LEADER_NAMESPACE
    name: str = DEFAULT_LEADER_LEASE
    # This replica's name in the lease: the pod name (Downward API), else host name + pid.
    identity: str = ""
    # A standby takes over after this long without a renewal; the holder renews every retry_s.
    lease_s: float = S.LEADER_LEASE.default
    retry_s: float = S.LEADER_RETRY.default


@dataclass(frozen=True, slots=True)
class GuardConfig:
    """The finalizer guard (off by default: it needs the finalizer added at admission)."""

    # Remove servo.optune.io/measure from job pods once their measurement is in the outbox.
    enabled: bool = False
    # Safety valve: release pods that have waited this long for deletion, measured or not.
    max_age_s: float = S.FINALIZER_MAX_AGE.default
