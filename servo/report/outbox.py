"""The durable outbox: every event is on disk before it is sent, and leaves only after a 2xx.

One SQLite file (WAL). `put` commits before it returns, so an event the servo has accepted
survives a crash (SIGKILL, OOM kill) and is sent by the next start; events are keyed by their
stable id, so putting the same event again (a relist after a restart) adds nothing. A delivered
event stays behind as a tombstone for a day, so that a pod measured again before its reported
annotation landed (a restart in between) is not sent twice. A failed send moves `next_at` back;
an event older than the maximum age is dropped by the reporter with an ERROR line.

Durability: synchronous=NORMAL in WAL mode survives a process crash (the page cache holds the
commit); a power cut may lose the last commits, never corrupt the file. Every write is one
statement in autocommit mode (one transaction, one trip into SQLite). Acks ("delivered") are
group-committed: kept in memory until ACK_BATCH wait, the oldest has waited ACK_MAX_DELAY_S (seen
at the next ack), or `flush()` (the reporter's idle workers, its pump every 0.5 s, `close()`).
Every read flushes them first, so this process never sees a delivered event as waiting. A crash
loses the unflushed acks only: those events are sent again by the next start, under the same id
(the backend drops the repeat, as it does for any retried send).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

from servo.core.models import Event, PodRef
from servo.system.safefile import PRIVATE_DIR, ensure_private_file

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
    delivered_at REAL,          -- NULL: waiting; else a tombstone (delivered then)
    pod        TEXT             -- JSON [namespace, name, uid] of a MEASUREMENT's pod
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (delivered_at, next_at);
"""
# How long a delivered event's id is remembered (a pod's annotation lands within seconds).
TOMBSTONE_S = 24 * 3600.0
OUTBOX_FILE = "outbox.db"
SIDE_FILES = ("-wal", "-shm", "-journal")
# Group commit of acks: one transaction for up to this many, held at most this long. A commit per
# ack cost each worker three trips into SQLite (each a GIL release and a wait to get it back).
ACK_BATCH = 200
ACK_MAX_DELAY_S = 0.05


@dataclass(frozen=True, slots=True)
class Pending:
    """An event waiting in the outbox."""

    event: Event
    created_at: float
    attempts: int


class Outbox:
    """Thread-safe (one connection under a lock: SQLite has one writer anyway)."""

    def __init__(
        self, directory: Path | str, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = Path(directory) / OUTBOX_FILE
        self.path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        _private_files(self.path)
        # isolation_level=None: autocommit; each statement below is its own transaction, durable
        # when execute() returns (the default mode adds a BEGIN and a COMMIT round trip to each).
        self._db = sqlite3.connect(
            str(self.path), check_same_thread=False, timeout=10.0, isolation_level=None
        )
        self._lock = threading.Lock()  # the connection: one statement at a time
        # The acks waiting for a batch have a lock of their own: a worker's ack then never waits
        # for a `put` in progress (nor a put for it). Order: _lock, then _acks_lock.
        self._acks_lock = threading.Lock()
        # Acks not yet committed: (event id, delivered at); since when the oldest has waited.
        self._acks: list[tuple[str, float]] = []
        self._acks_since = 0.0
        self._monotonic = monotonic  # times the oldest waiting ack
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
            if "pod" not in columns:  # a file from before the pod column: its rows have none
                self._db.execute("ALTER TABLE outbox ADD COLUMN pod TEXT")

    def put(self, event: Event, now_s: float) -> bool:
        """Store an event durably; False when an event with its id is already waiting, or was
        delivered within the tombstone period."""
        param = json.dumps(event.param, separators=(",", ":"))
        pod = None if event.pod is None else json.dumps(astuple(event.pod))
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO outbox (event_id, event, app_id, param, created_at,"
                " next_at, pod) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (event.id, event.event, event.app_id, param, now_s, now_s, pod),
            )
            return cur.rowcount == 1

    def delivered_before(self, event_id: str) -> bool:
        """Is this event's tombstone here (sent and acknowledged, not yet pruned)?"""
        with self._lock:
            self._flush_acks()
            row = self._db.execute(
                "SELECT 1 FROM outbox WHERE event_id = ? AND delivered_at IS NOT NULL",
                (event_id,),
            ).fetchone()
        return row is not None

    def due(self, now_s: float, *, limit: int, skip: Collection[str] = ()) -> list[Pending]:
        """Events whose time has come, oldest first, leaving out the ids in `skip`."""
        # `skip` (the events in flight: thousands while a burst is sent) is left out by SQLite
        # in one step, passed as one JSON array: fetched and dropped here, each row was a step,
        # a GIL release and a wait to get it back, all under the lock that `put` waits for.
        # json_each: SQLite's JSON functions, built in since 3.38 (bookworm's Python has 3.40).
        with self._lock:
            self._flush_acks()
            rows = self._db.execute(
                "SELECT event_id, event, app_id, param, created_at, attempts, pod FROM outbox"
                " WHERE delivered_at IS NULL AND next_at <= ?"
                " AND event_id NOT IN (SELECT value FROM json_each(?))"
                " ORDER BY next_at, created_at LIMIT ?",
                (now_s, json.dumps(list(skip)), limit),
            ).fetchall()
        return [_pending(row) for row in rows]

    def delivered(self, event_id: str, now_s: float) -> None:
        """Sent: keep only a tombstone, so the same event put again is not sent again.

        Group-committed (see the module docstring): on disk once ACK_BATCH acks wait or the
        oldest has waited ACK_MAX_DELAY_S, else at the next `flush()`, read or `close()`."""
        with self._acks_lock:
            if not self._acks:
                self._acks_since = self._monotonic()
            self._acks.append((event_id, now_s))
            due = len(self._acks) >= ACK_BATCH or (
                self._monotonic() - self._acks_since >= ACK_MAX_DELAY_S
            )
        if due:
            self.flush()

    def flush(self) -> None:
        """Commit the acks waiting in memory (a worker with nothing left to do calls this)."""
        if self._acks:  # unlocked peek: an idle worker's flush is free when nothing waits
            with self._lock:
                self._flush_acks()

    def _flush_acks(self) -> None:
        """One statement, one transaction for every waiting ack; the caller holds `_lock`, so
        no read runs between taking the acks and committing them."""
        with self._acks_lock:
            acks, self._acks = self._acks, []
        if not acks:
            return
        marks = ",".join("?" * len(acks))
        try:
            # One delivered_at for the batch (the latest): it only dates the tombstone, by hours.
            self._db.execute(
                f"UPDATE outbox SET delivered_at = ?, param = '' WHERE event_id IN ({marks})",
                [max(t for _, t in acks), *(i for i, _ in acks)],
            )
        except BaseException:
            with self._acks_lock:  # kept for the next try: a lost ack is a second send
                self._acks[:0] = acks
            raise

    def prune(self, now_s: float, keep_s: float = TOMBSTONE_S) -> int:
        """Forget tombstones older than `keep_s`; how many went."""
        with self._lock:
            self._flush_acks()
            cur = self._db.execute(
                "DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?",
                (now_s - keep_s,),
            )
            return cur.rowcount

    def drop(self, event_id: str) -> None:
        """Remove an event that will never be delivered (refused, or too old)."""
        self._delete(event_id)

    def _delete(self, event_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE event_id = ?", (event_id,))

    def postpone(self, event_id: str, next_at_s: float, error: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET next_at = ?, attempts = attempts + 1, last_error = ?"
                " WHERE event_id = ?",
                (next_at_s, error[:500], event_id),
            )

    def older_than(self, cutoff_s: float, *, limit: int = 100) -> list[Pending]:
        """Events first put before `cutoff_s` (past the maximum age)."""
        with self._lock:
            self._flush_acks()
            rows = self._db.execute(
                "SELECT event_id, event, app_id, param, created_at, attempts, pod FROM outbox"
                " WHERE delivered_at IS NULL AND created_at < ? ORDER BY created_at LIMIT ?",
                (cutoff_s, limit),
            ).fetchall()
        return [_pending(row) for row in rows]

    def depth(self) -> int:
        with self._lock:
            self._flush_acks()
            (n,) = self._db.execute(
                "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL"
            ).fetchone()
        return int(n)

    def oldest_created(self) -> float | None:
        with self._lock:
            self._flush_acks()
            (oldest,) = self._db.execute(
                "SELECT MIN(created_at) FROM outbox WHERE delivered_at IS NULL"
            ).fetchone()
        return float(oldest) if oldest is not None else None

    def close(self) -> None:
        """Commit the waiting acks, then close the file."""
        with self._lock:
            self._flush_acks()
            self._db.close()


def _private_files(path: Path) -> None:
    """The database 0600, created without following a link: SQLite gives its -wal and -shm
    files the database's mode. Side files left by an older start are checked and set too."""
    ensure_private_file(path)
    for suffix in SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if os.path.lexists(side):
            ensure_private_file(side)


def _pending(row: tuple[Any, ...]) -> Pending:
    event_id, name, app_id, param_text, created_at, attempts, pod_text = row
    param = _loads(param_text)
    event = Event(event_id, name, app_id, param, _pod_ref(pod_text, param))
    return Pending(event, created_at, attempts)


def _pod_ref(pod_text: str | None, param: Any) -> PodRef | None:
    """The row's pod; a row put before the pod column names it in its base annotations."""
    if pod_text is None:
        old = _annotated_pod(param)
        return None if old is None else PodRef(old["namespace"], old["pod"], old["uid"])
    fields = _loads(pod_text)
    if isinstance(fields, list) and len(fields) == 3 and all(isinstance(f, str) for f in fields):
        return PodRef(*fields)
    return None


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _annotated_pod(param: Any) -> Mapping[str, str] | None:
    """namespace, pod and uid a MEASUREMENT names (its base annotations), else None."""
    ann = param.get("annotations") if isinstance(param, Mapping) else None
    if not isinstance(ann, Mapping):
        return None
    keys = ("namespace", "pod", "uid")
    if not all(isinstance(ann.get(k), str) and ann.get(k) for k in keys):
        return None
    return {k: str(ann[k]) for k in keys}
