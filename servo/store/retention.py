"""How much of the event store is kept: events younger than an age, at most so many of each
event type per application, at most so many bytes per application and in the whole file.

Applied by the store now and then as it stores (after a number of events or bytes, so that one
insert never pays for a scan), oldest events first. An application is an (account, app id).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Retention:
    # Events older than this are deleted: a quarter of history is what right-sizing looks at.
    max_age_s: float = 90 * 86400.0
    # Events of one type kept per application: 10,000 runs of an hourly job is over a year.
    max_runs: int = 10_000
    # Stored body bytes per application: 10,000 runs of ~2 KiB fit with room to spare.
    max_app_bytes: int = 64 * MIB
    # Stored body bytes in the whole file: half of the 1 GiB volume of example/collector.yaml,
    # leaving room for SQLite's own pages and the WAL.
    max_db_bytes: int = 512 * MIB
    # Prune after this many new events or bytes, whichever comes first: bounds how far the
    # file may overshoot the limits (every_bytes plus one event) and keeps inserts cheap.
    every_events: int = 200
    every_bytes: int = MIB

    def due(self, events: int, bytes_: int) -> bool:
        return events >= self.every_events or bytes_ >= self.every_bytes


def _delete_beyond(
    db: sqlite3.Connection, where: str, args: tuple[object, ...], limit_bytes: int
) -> int:
    """Delete the oldest rows matching `where` until their bytes are within limit_bytes."""
    (total,) = db.execute(
        f"SELECT COALESCE(SUM(size), 0) FROM events WHERE {where}", args
    ).fetchone()
    if total <= limit_bytes:
        return 0
    cur = db.execute(
        "DELETE FROM events WHERE seq IN (SELECT seq FROM (SELECT seq, SUM(size) OVER"
        " (ORDER BY received_at DESC, seq DESC) AS kept FROM events"
        f" WHERE {where}) WHERE kept > ?)",
        (*args, limit_bytes),
    )
    return cur.rowcount


def _prune_app(db: sqlite3.Connection, r: Retention, account: str, app_id: str) -> int:
    deleted = 0
    app = "app_id = ? AND account = ?"
    kinds = db.execute(
        f"SELECT event, COUNT(*) FROM events WHERE {app} GROUP BY event", (app_id, account)
    ).fetchall()
    for event, count in kinds:
        if count <= r.max_runs:
            continue
        deleted += db.execute(
            "DELETE FROM events WHERE seq IN (SELECT seq FROM events"
            f" WHERE {app} AND event = ? ORDER BY received_at DESC LIMIT -1 OFFSET ?)",
            (app_id, account, event, r.max_runs),
        ).rowcount
    return deleted + _delete_beyond(db, app, (app_id, account), r.max_app_bytes)


def prune(
    db: sqlite3.Connection, r: Retention, *, now_s: float, apps: Iterable[tuple[str, str]] | None
) -> int:
    """Apply the retention in one transaction: the age everywhere, the per-app bounds to
    `apps` (None: every app), then the whole file's bound. The number of events deleted."""
    db.execute("BEGIN IMMEDIATE")
    try:
        deleted = db.execute(
            "DELETE FROM events WHERE received_at < ?", (now_s - r.max_age_s,)
        ).rowcount
        if apps is None:
            apps = db.execute("SELECT DISTINCT account, app_id FROM events").fetchall()
        for account, app_id in apps:
            deleted += _prune_app(db, r, account, app_id)
        deleted += _delete_beyond(db, "1 = 1", (), r.max_db_bytes)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return deleted
