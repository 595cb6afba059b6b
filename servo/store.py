"""The event store: every protocol event a backend received, in one SQLite file.

Used by the collector (events POSTed by servos), `servo measure` (a local run stored straight
away when no backend is configured) and `servo report` (reads). WAL mode, so readers never
block the writer and several processes can share the file; one row per event id, so a
duplicate delivery (a retry after a lost answer) is stored once.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at REAL    NOT NULL,  -- epoch seconds when stored
    account     TEXT    NOT NULL,
    app_id      TEXT    NOT NULL,
    event_id    TEXT    NOT NULL UNIQUE,  -- the sender's stable id: duplicates stored once
    event       TEXT    NOT NULL,
    pod_uid     TEXT,
    body        TEXT    NOT NULL   -- the JSON body as received
);
CREATE INDEX IF NOT EXISTS events_by_app ON events (app_id, event, received_at);
"""
# Env var naming the local store of `servo measure` and `servo report`.
DB_ENV = "SERVO_DB"


def default_db_path(environ: Mapping[str, str] | None = None) -> Path:
    """$SERVO_DB, else $XDG_DATA_HOME/servo/servo.db, else ~/.local/share/servo/servo.db."""
    env = os.environ if environ is None else environ
    if env.get(DB_ENV):
        return Path(env[DB_ENV]).expanduser()
    data_home = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "servo" / "servo.db"


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event as a backend received it."""

    received_at: float
    account: str
    app_id: str
    event_id: str
    event: str
    body: Mapping[str, Any]
    pod_uid: str | None = None


def pod_uid_of(body: Mapping[str, Any]) -> str | None:
    """The pod uid a MEASUREMENT names in its annotations, if any."""
    param = body.get("param")
    annotations = param.get("annotations") if isinstance(param, Mapping) else None
    uid = annotations.get("uid") if isinstance(annotations, Mapping) else None
    return uid if isinstance(uid, str) and uid else None


class EventStore:
    """A SQLite file of events; safe to share between threads (writes are serialised)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by threads under a lock: SQLite allows one writer anyway, and
        # a lock is cheaper than a connection per request thread.
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=10.0)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a power cut may lose the last commits but never corrupts.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            self._db.commit()

    def add(self, e: StoredEvent) -> bool:
        """Store one event; False when its event id was already stored (a duplicate)."""
        body = json.dumps(e.body, separators=(",", ":"), sort_keys=True)
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO events"
                " (received_at, account, app_id, event_id, event, pod_uid, body)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (e.received_at, e.account, e.app_id, e.event_id, e.event, e.pod_uid, body),
            )
            self._db.commit()
            return cur.rowcount == 1

    def events(
        self,
        *,
        event: str | None = None,
        app_id: str | None = None,
        since_s: float | None = None,
    ) -> list[StoredEvent]:
        """Stored events, oldest first, filtered by event name, app id and time."""
        where: list[str] = []
        args: list[str | float] = []
        for column, value in (("event", event), ("app_id", app_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since_s is not None:
            where.append("received_at >= ?")
            args.append(since_s)
        sql = "SELECT received_at, account, app_id, event_id, event, pod_uid, body FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY received_at, seq"
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [
            StoredEvent(
                received_at=r[0],
                account=r[1],
                app_id=r[2],
                event_id=r[3],
                event=r[4],
                pod_uid=r[5],
                body=json.loads(r[6]),
            )
            for r in rows
        ]

    def count(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT COUNT(*) FROM events").fetchone()
        return int(n)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
