"""The durable outbox: every event is on disk before it is sent, and leaves only after a 2xx.

One SQLite file (WAL). `put` commits before it returns, so an event the servo has accepted
survives a crash (SIGKILL, OOM kill) and is sent by the next start; events are keyed by their
stable id, so putting the same event again (a relist after a restart) adds nothing. A delivered
event stays behind as a tombstone for a day, so that a pod measured again before its reported
annotation landed (a restart in between) is not sent twice. A failed send moves `next_at` back;
an event older than the maximum age is dropped by the reporter with an ERROR line.

Durability: synchronous=NORMAL in WAL mode survives a process crash (the page cache holds the
commit); a power cut may lose the last commits, never corrupt the file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servo.models import Event

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    event_id   TEXT PRIMARY KEY,
    event      TEXT NOT NULL,
    app_id     TEXT NOT NULL,
    param      TEXT NOT NULL,   -- JSON
    created_at REAL NOT NULL,   -- epoch seconds, first put
    next_at    REAL NOT NULL,   -- not to be sent before this
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    delivered_at REAL           -- NULL: waiting; else a tombstone (delivered then)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (delivered_at, next_at);
"""
# How long a delivered event's id is remembered (a pod's annotation lands within seconds).
TOMBSTONE_S = 24 * 3600.0
OUTBOX_FILE = "outbox.db"


@dataclass(frozen=True, slots=True)
class Pending:
    """An event waiting in the outbox."""

    event: Event
    created_at: float
    attempts: int


class Outbox:
    """Thread-safe (one connection under a lock: SQLite has one writer anyway)."""

    def __init__(self, directory: Path | str) -> None:
        self.path = Path(directory) / OUTBOX_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=10.0)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            self._db.commit()

    def put(self, event: Event, now_s: float) -> bool:
        """Store an event durably; False when an event with its id is already waiting, or was
        delivered within the tombstone period."""
        param = json.dumps(event.param, separators=(",", ":"))
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO outbox (event_id, event, app_id, param, created_at,"
                " next_at) VALUES (?, ?, ?, ?, ?, ?)",
                (event.id, event.event, event.app_id, param, now_s, now_s),
            )
            self._db.commit()
            return cur.rowcount == 1

    def due(self, now_s: float, *, limit: int, skip: Collection[str] = ()) -> list[Pending]:
        """Events whose time has come, oldest first, leaving out the ids in `skip`."""
        with self._lock:
            rows = self._db.execute(
                "SELECT event_id, event, app_id, param, created_at, attempts FROM outbox"
                " WHERE delivered_at IS NULL AND next_at <= ? ORDER BY next_at, created_at"
                " LIMIT ?",
                (now_s, limit + len(skip)),
            ).fetchall()
        out = []
        for event_id, name, app_id, param, created_at, attempts in rows:
            if event_id in skip:
                continue
            event = Event(id=event_id, event=name, app_id=app_id, param=_loads(param))
            out.append(Pending(event, created_at, attempts))
            if len(out) == limit:
                break
        return out

    def delivered(self, event_id: str, now_s: float) -> None:
        """Sent: keep only a tombstone, so the same event put again is not sent again."""
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET delivered_at = ?, param = '' WHERE event_id = ?",
                (now_s, event_id),
            )
            self._db.commit()

    def prune(self, now_s: float, keep_s: float = TOMBSTONE_S) -> int:
        """Forget tombstones older than `keep_s`; how many went."""
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?",
                (now_s - keep_s,),
            )
            self._db.commit()
            return cur.rowcount

    def drop(self, event_id: str) -> None:
        """Remove an event that will never be delivered (refused, or too old)."""
        self._delete(event_id)

    def _delete(self, event_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE event_id = ?", (event_id,))
            self._db.commit()

    def postpone(self, event_id: str, next_at_s: float, error: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET next_at = ?, attempts = attempts + 1, last_error = ?"
                " WHERE event_id = ?",
                (next_at_s, error[:500], event_id),
            )
            self._db.commit()

    def older_than(self, cutoff_s: float, *, limit: int = 100) -> list[Pending]:
        """Events first put before `cutoff_s` (past the maximum age)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT event_id, event, app_id, param, created_at, attempts FROM outbox"
                " WHERE delivered_at IS NULL AND created_at < ? ORDER BY created_at LIMIT ?",
                (cutoff_s, limit),
            ).fetchall()
        return [
            Pending(Event(id=i, event=n, app_id=a, param=_loads(p)), c, t)
            for i, n, a, p, c, t in rows
        ]

    def depth(self) -> int:
        with self._lock:
            (n,) = self._db.execute(
                "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL"
            ).fetchone()
        return int(n)

    def oldest_created(self) -> float | None:
        with self._lock:
            (oldest,) = self._db.execute(
                "SELECT MIN(created_at) FROM outbox WHERE delivered_at IS NULL"
            ).fetchone()
        return float(oldest) if oldest is not None else None

    def ids(self) -> set[str]:
        with self._lock:
            rows = self._db.execute("SELECT event_id FROM outbox WHERE delivered_at IS NULL")
            return {r[0] for r in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def event_pod(event: Event) -> Mapping[str, str] | None:
    """namespace, pod and uid a MEASUREMENT names (its base annotations), else None."""
    param = event.param if isinstance(event.param, Mapping) else {}
    ann = param.get("annotations")
    if not isinstance(ann, Mapping):
        return None
    keys = ("namespace", "pod", "uid")
    if not all(isinstance(ann.get(k), str) and ann.get(k) for k in keys):
        return None
    return {k: str(ann[k]) for k in keys}
