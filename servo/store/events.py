"""The event store: every protocol event a backend received, in one SQLite file.

Used by the collector (events POSTed by servos), `servo measure` (a local run stored straight
away when no backend is configured) and `servo report` (reads). WAL mode, so readers never
block the writer and several processes can share the file; one row per event id within an
account, app id and event type, so a duplicate delivery (a retry after a lost answer) is stored
once. The file and its -wal and -shm companions are created 0600, never through a symlink. An
older file (ids unique across everything) is migrated on open, keeping its rows.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import stat
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servo.store.retention import Retention, prune

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
TABLE = """
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at REAL    NOT NULL,  -- epoch seconds when stored
    account     TEXT    NOT NULL,
    app_id      TEXT    NOT NULL,
    event_id    TEXT    NOT NULL,  -- the sender's stable id, unique per account, app and event
    event       TEXT    NOT NULL,
    pod_uid     TEXT,
    size        INTEGER NOT NULL DEFAULT 0,  -- bytes of body, for the size bounds
    body        TEXT    NOT NULL,  -- the JSON body as stored
    UNIQUE (account, app_id, event, event_id)
);
"""
INDEXES = """
-- Serves the readers (by app id and event) and covers the retention's per-application
-- counts, sums and oldest-first order without reading a body.
CREATE INDEX IF NOT EXISTS events_by_app ON events (app_id, event, account, received_at, size);
CREATE INDEX IF NOT EXISTS events_by_time ON events (received_at);
"""
MIGRATE_V1 = """
DROP INDEX IF EXISTS events_by_app;
ALTER TABLE events RENAME TO events_v1;
{table}
INSERT INTO events (seq, received_at, account, app_id, event_id, event, pod_uid, size, body)
    SELECT seq, received_at, account, app_id, event_id, event, pod_uid,
           COALESCE(length(CAST(body AS BLOB)), 0), body FROM events_v1;
DROP TABLE events_v1;
"""
# Received times a report can show: the epoch to the year 3000 (every time zone's datetime
# and every browser's Date take it).
MAX_EPOCH_S = 32_503_680_000.0
# Env var naming the local store of `servo measure` and `servo report`.
DB_ENV = "SERVO_DB"


def default_db_path(environ: Mapping[str, str]) -> Path:
    """$SERVO_DB, else $XDG_DATA_HOME/servo/servo.db, else ~/.local/share/servo/servo.db."""
    if environ.get(DB_ENV):
        return Path(environ[DB_ENV]).expanduser()
    data_home = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
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


def create_private(path: Path) -> None:
    """Create `path` (and its -wal and -shm) as regular files only the owner may read, or
    tighten them to 0600; OSError for a symlink or anything but a regular file there."""
    for p in (str(path), f"{path}-wal", f"{path}-shm"):
        fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(f"{p}: not a regular file")
            if st.st_mode & 0o077:
                os.fchmod(fd, 0o600)
        finally:
            os.close(fd)


def _text(x: Any) -> str:
    if isinstance(x, bytes):
        return x.decode("utf-8", "replace")
    return x if isinstance(x, str) else str(x)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def event_of_row(r: tuple[Any, ...]) -> StoredEvent | None:
    """A row as stored -> StoredEvent; None for a row no reader can use (a time that is not
    a plausible epoch, a body that is not a JSON object). Any row may be in the file: other
    programs, older versions and hand edits write to it too."""
    at = r[0]
    if isinstance(at, bool) or not isinstance(at, int | float):
        return None
    if isinstance(at, float) and not math.isfinite(at) or not 0 <= at <= MAX_EPOCH_S:
        return None
    try:
        body = json.loads(r[6], parse_constant=_reject_constant)
    except (ValueError, TypeError, RecursionError):
        return None
    if not isinstance(body, dict):
        return None
    uid = r[5] if isinstance(r[5], str) else None
    return StoredEvent(
        received_at=float(at),
        account=_text(r[1]),
        app_id=_text(r[2]),
        event_id=_text(r[3]),
        event=_text(r[4]),
        pod_uid=uid,
        body=body,
    )


class EventStore:
    """A SQLite file of events; safe to share between threads (writes are serialised)."""

    def __init__(self, path: Path | str, *, retention: Retention | None = None) -> None:
        self.path = Path(path)
        self.retention = retention
        if str(path) != ":memory:":
            if not self.path.parent.exists():
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            create_private(self.path)
        # One connection shared by threads under a lock: SQLite allows one writer anyway, and
        # a lock is cheaper than a connection per request thread.
        self._db = sqlite3.connect(
            str(path), check_same_thread=False, timeout=10.0, isolation_level=None
        )
        self._lock = threading.Lock()
        # The first prune after opening looks at every app (None), later ones at the apps
        # written to since the last; the first add prunes, so a restart applies the retention.
        self._touched: set[tuple[str, str]] | None = None
        self._since_prune = retention.every_events if retention else 0
        self._bytes_since_prune = 0
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a power cut may lose the last commits but never corrupts.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()

    def _migrate(self) -> None:
        """Create the table, or bring an older one to this schema in one transaction."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            (version,) = db.execute("PRAGMA user_version").fetchone()
            exists = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'"
            ).fetchone()
            if not exists:
                db.execute(TABLE)
            elif version < SCHEMA_VERSION:
                for statement in MIGRATE_V1.format(table=TABLE).split(";"):
                    if statement.strip():
                        db.execute(statement)
                logger.info(
                    "event store migrated", extra={"db": str(self.path), "schema": SCHEMA_VERSION}
                )
            for statement in INDEXES.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def add(self, e: StoredEvent) -> bool:
        """Store one event; False when its event id was already stored for the same account,
        app id and event type (a duplicate). With a retention set, prunes now and then."""
        body = json.dumps(e.body, separators=(",", ":"), sort_keys=True, allow_nan=False)
        size = len(body.encode())
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO events"
                " (received_at, account, app_id, event_id, event, pod_uid, size, body)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (e.received_at, e.account, e.app_id, e.event_id, e.event, e.pod_uid, size, body),
            )
            new = cur.rowcount == 1
            if new and self.retention is not None:
                self._since_prune += 1
                self._bytes_since_prune += size
                if self._touched is not None:
                    self._touched.add((e.account, e.app_id))
                if self.retention.due(self._since_prune, self._bytes_since_prune):
                    self._prune_locked(e.received_at)
            return new

    def prune(self, now_s: float) -> int:
        """Apply the retention now; the number of events deleted."""
        with self._lock:
            return self._prune_locked(now_s)

    def _prune_locked(self, now_s: float) -> int:
        if self.retention is None:
            return 0
        touched, self._touched = self._touched, set()
        self._since_prune = self._bytes_since_prune = 0
        deleted = prune(self._db, self.retention, now_s=now_s, apps=touched)
        if deleted:
            logger.info("old events deleted", extra={"deleted": deleted, "db": str(self.path)})
        return deleted

    def events(
        self,
        *,
        event: str | None = None,
        app_id: str | None = None,
        since_s: float | None = None,
    ) -> list[StoredEvent]:
        """Stored events, oldest first, filtered by event name, app id and time; rows that no
        reader could use are left out."""
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
        return [e for r in rows if (e := event_of_row(r)) is not None]

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
