"""The numeric settings of the servo and of its webhook, in one table: variable, type, range,
default and why. The config dataclasses take their defaults from here, EnvReader.setting checks
a value against its row (finite, in range, an integer where one is expected), and the README's
table is printed from it (`markdown_table`), so a default or a bound is written once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

N = TypeVar("N", int, float)

DAY_S = 86_400.0
MAX_PORT = 65_535


@dataclass(frozen=True, slots=True)
class Setting(Generic[N]):
    """One environment variable holding a number, with its inclusive range."""

    name: str
    kind: type[N]
    minimum: N
    maximum: N
    default: N
    why: str


def _float(name: str, low: float, high: float, default: float, why: str) -> Setting[float]:
    return Setting(name, float, low, high, default, why)


def _int(name: str, low: int, high: int, default: int, why: str) -> Setting[int]:
    return Setting(name, int, low, high, default, why)


# -- servo run (servo/system/config.py) -------------------------------------------------------
# Each row: the variable, its minimum, maximum and default, and why.
SEND_TIMEOUT = _float(
    "OPTUNE_SEND_TIMEOUT",
    0.1,
    300,
    10.0,
    "per-request timeout (the original's 10 s); longer parks a sender",
)
SEND_DEADLINE = _float(
    "OPTUNE_SEND_DEADLINE",
    0,
    DAY_S,
    600.0,
    "retries of one send stop after this; the outbox keeps the event",
)
SEND_MAX_BACKOFF = _float(
    "OPTUNE_SEND_MAX_BACKOFF", 0, 3600, 60.0, "cap on one wait between tries, Retry-After included"
)
SEND_WORKERS = _int(
    "OPTUNE_SEND_WORKERS",
    1,
    64,
    4,
    "sender threads (the original ran 4); thousands exhaust the process",
)
SEND_QUEUE = _int(
    "OPTUNE_SEND_QUEUE",
    1,
    1_000_000,
    10_000,
    "events waiting to be sent; when full the watch waits",
)
OUTBOX_MAX_AGE = _float(
    "OPTUNE_OUTBOX_MAX_AGE",
    60,
    90 * DAY_S,
    7 * DAY_S,
    "an undelivered event is given up after this; a week outlasts a long weekend's outage",
)
WATCH_TIMEOUT = _int(
    "OPTUNE_WATCH_TIMEOUT",
    1,
    3600,
    300,
    "timeoutSeconds of one watch request; its end just re-watches",
)
WATCH_IDLE_TIMEOUT = _float(
    "OPTUNE_WATCH_IDLE_TIMEOUT",
    1,
    3600,
    70.0,
    "no byte for this long is a dead stream: a bit over the ~60 s bookmarks, as kopf",
)
WATCH_MAX_BACKOFF = _float(
    "OPTUNE_WATCH_MAX_BACKOFF", 0, 3600, 30.0, "cap on the reconnect backoff after errors"
)
LIST_PAGE_SIZE = _int(
    "OPTUNE_LIST_PAGE_SIZE",
    1,
    10_000,
    500,
    "page size of the initial list, so a huge namespace is not one response",
)
DEBUG = _int("OPTUNE_DEBUG", 0, 5, 0, "log verbosity, as in the original")
STATS_WAIT = _float(
    "OPTUNE_STATS_WAIT",
    0,
    3600,
    30.0,
    "after the job ends, how long to wait for the monitor's stats",
)
STATS_PORT = _int(
    "OPTUNE_STATS_PORT", 0, MAX_PORT, 8080, "port of the stats receiver (0: any free port)"
)
FINALIZER_MAX_AGE = _float(
    "OPTUNE_FINALIZER_MAX_AGE",
    1,
    DAY_S,
    600.0,
    "the finalizer guard releases a deleted pod after this, measured or not",
)
METRICS_PORT = _int(
    "OPTUNE_METRICS_PORT",
    0,
    MAX_PORT,
    8081,
    "port of /metrics, /healthz and /readyz (0: any free port)",
)
LEADER_LEASE = _float(
    "OPTUNE_LEADER_LEASE_SECONDS",
    1,
    3600,
    10.0,
    "a standby takes over after this long without a renewal; longer than the retry period",
)
LEADER_RETRY = _float(
    "OPTUNE_LEADER_RETRY_SECONDS",
    0.1,
    600,
    2.0,
    "the holder renews this often; shorter than the lease",
)

# -- servo webhook (servo/webhook/config.py) -------------------------------------------------
WEBHOOK_PORT = _int(
    "OPTUNE_WEBHOOK_PORT", 0, MAX_PORT, 8443, "HTTPS port; 8443 so a non-root process may bind it"
)
WEBHOOK_CA_RECHECK = _float(
    "OPTUNE_WEBHOOK_CA_RECHECK",
    0,
    DAY_S,
    300.0,
    "how often the caBundle is checked; 0 turns it off, else at least 10 s",
)
# At most the API server's timeoutSeconds (5 s in the example) less 1 s for TLS and the patch.
WEBHOOK_BUDGET = _float(
    "OPTUNE_WEBHOOK_BUDGET", 0.1, 4, 2.0, "time for the WHATS_NEXT exchange of one pod"
)

SERVO_SETTINGS: tuple[Setting[int] | Setting[float], ...] = (
    SEND_TIMEOUT,
    SEND_DEADLINE,
    SEND_MAX_BACKOFF,
    SEND_WORKERS,
    SEND_QUEUE,
    OUTBOX_MAX_AGE,
    WATCH_TIMEOUT,
    WATCH_IDLE_TIMEOUT,
    WATCH_MAX_BACKOFF,
    LIST_PAGE_SIZE,
    DEBUG,
    STATS_WAIT,
    STATS_PORT,
    FINALIZER_MAX_AGE,
    METRICS_PORT,
    LEADER_LEASE,
    LEADER_RETRY,
)
WEBHOOK_SETTINGS: tuple[Setting[int] | Setting[float], ...] = (
    WEBHOOK_PORT,
    WEBHOOK_CA_RECHECK,
    WEBHOOK_BUDGET,
)


def markdown_table(settings: Iterable[Setting[int] | Setting[float]]) -> str:
    """The rows as a Markdown table (for the README)."""
    lines = ["| Variable | Type | Range | Default | Why |", "|---|---|---|---|---|"]
    for s in settings:
        kind = "integer" if s.kind is int else "seconds" if s.name.endswith(_SECONDS) else "number"
        low, high, default = (plain_number(v) for v in (s.minimum, s.maximum, s.default))
        lines.append(f"| `{s.name}` | {kind} | {low} .. {high} | {default} | {s.why} |")
    return "\n".join(lines) + "\n"


def plain_number(value: float) -> str:
    """1000000, not 1e+06; 0.1 as 0.1."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


_SECONDS = ("TIMEOUT", "DEADLINE", "BACKOFF", "AGE", "WAIT", "SECONDS", "RECHECK", "BUDGET")
