"""What the servo says about itself: liveness, readiness and the views its metrics read.

Kept apart from the run loop (servo/run/app.py): these only read the state the loop shares with
them (the scopes, the loop threads, the reporter, the leadership flag).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from servo.report.reporter import Reporter
from servo.run.jobs import JobBook
from servo.run.metrics import ReportView, ScopeView, age_s
from servo.system.config import Config

if TYPE_CHECKING:
    from servo.run.scope import Scope


class ServoProbes:
    def __init__(
        self,
        cfg: Config,
        scopes: list[Scope],
        threads: list[threading.Thread],
        reporter: Reporter,
        leading: threading.Event,
        book: JobBook,
    ) -> None:
        # The servo's own list objects: they fill as it starts.
        self.cfg, self.scopes, self._threads = cfg, scopes, threads
        self.reporter, self.leading, self._book = reporter, leading, book

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Alive: every watch loop, the stats timer and the report workers still run."""
        loops = {
            f"watch {s.watch.scope}": bool(s.thread and s.thread.is_alive()) for s in self.scopes
        }
        loops.update({t.name: t.is_alive() for t in self._threads})
        loops["report workers"] = self.reporter.alive()
        return all(loops.values()) and bool(self.scopes), {"loops": loops}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """Ready: every scope listed once, and its API server contact is recent."""
        now = time.monotonic()
        limit_s = 2 * self.cfg.watch.idle_timeout_s
        scopes = {}
        for s in self.scopes:
            if not s.watch.synced.is_set():
                scopes[s.watch.scope] = "not listed yet"
            elif now - s.watch.stats.last_contact_s > limit_s:
                scopes[s.watch.scope] = f"no answer from the API server for over {limit_s:g} s"
            else:
                scopes[s.watch.scope] = "current"
        ok = bool(scopes) and all(v == "current" for v in scopes.values())
        # A standby is not ready, so the Service sends monitors' stats to the leader only.
        role = "leader" if self.leading.is_set() else "standby"
        return ok and role == "leader", {"scopes": scopes, "role": role}

    def scope_views(self) -> list[ScopeView]:
        return [self._view(s) for s in self.scopes]

    def _view(self, s: Scope) -> ScopeView:
        sizes = self._book.sizes(s.tracker)
        return ScopeView(
            namespace=s.watch.scope,
            jobs_seen=sizes.seen,
            lists=s.watch.stats.lists,
            watches=s.watch.stats.watches,
            expired=s.watch.stats.expired,
            errors=s.watch.stats.errors,
            pending=sizes.pending,
            awaiting_stats=sizes.awaiting,
        )

    def report_view(self) -> ReportView:
        c = self.reporter.counts
        box = self.reporter.outbox
        return ReportView(
            sent=c.sent,
            failed=c.failed,
            lost=c.lost,
            expired=c.expired,
            postponed=c.postponed,
            outbox_depth=box.depth() if box is not None else None,
            outbox_oldest_age_s=age_s(box.oldest_created()) if box is not None else None,
        )
