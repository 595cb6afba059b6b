"""The Reporter's running totals of what became of each event, for logs, tests and metrics.

Workers and the outbox pump add to them from their own threads; readers take the fields as
they are (each is one int, a torn read across fields does not matter for a total).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Literal

Outcome = Literal["sent", "failed", "lost", "expired", "postponed"]


@dataclass(slots=True)
class ReportCounts:
    """Running totals, for logs, tests and metrics."""

    sent: int = 0
    failed: int = 0  # refused by the backend (a 4xx other than 408/429): never retried
    lost: int = 0  # no outbox, and still queued at shutdown
    expired: int = 0  # outbox: older than the maximum age, given up
    postponed: int = 0  # outbox: retries ran out for now; tried again later
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, outcome: Outcome) -> None:
        with self._lock:
            setattr(self, outcome, getattr(self, outcome) + 1)
