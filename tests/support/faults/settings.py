"""Fixed settings of the fault rig: address, namespace, account and token, the servo's short
timeouts (FAST_ENV), the pod grace period; and the polling helpers everything waits with
(`wait_until`, and `budget` for timeouts that grow with the job count).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

HOST = "127.0.0.1"
NAMESPACE = "default"
ACCOUNT = "acme"
TOKEN = "fault-t0ken"
# The servo's per-request timeout; the proxy's "timeout" faults sleep past it.
SEND_TIMEOUT_S = 1.0
FAULT_SLEEP_S = SEND_TIMEOUT_S + 0.5
# Small timeouts so retries, reconnects and relists happen within seconds.
FAST_ENV = {
    "OPTUNE_ACCOUNT": ACCOUNT,
    "OPTUNE_AUTH_TOKEN": TOKEN,
    "POD_NAMESPACES": NAMESPACE,
    "OPTUNE_STATS_PORT": "0",
    "OPTUNE_STATS_BIND": HOST,
    "OPTUNE_METRICS_PORT": "0",
    "OPTUNE_METRICS_BIND": HOST,
    "OPTUNE_WATCH_TIMEOUT": "2",
    "OPTUNE_WATCH_IDLE_TIMEOUT": "3",
    "OPTUNE_WATCH_MAX_BACKOFF": "0.2",
    "OPTUNE_SEND_MAX_BACKOFF": "0.2",
    "OPTUNE_SEND_TIMEOUT": f"{SEND_TIMEOUT_S:g}",
    "OPTUNE_SEND_DEADLINE": "2",
}
# Kubernetes' default terminationGracePeriodSeconds (also example/deployment.yaml's).
POD_GRACE_S = 30.0


def budget(jobs: int, per_job_s: float = 0.3) -> float:
    """A settle timeout that grows with the job count (the bench runs thousands)."""
    return 60 + jobs * per_job_s


def wait_until(
    predicate: Callable[[], Any],
    timeout_s: float,
    what: str,
    detail: Callable[[], str] | None = None,
) -> None:
    """Poll `predicate` every 20 ms; AssertionError naming `what` (and `detail()`) on timeout."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            more = f"; {detail()}" if detail is not None else ""
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}{more}")
        time.sleep(0.02)
