"""The storage of the Kubernetes API emulator, as etcd and the watch cache give it: objects of
several resources under one resourceVersion counter, the history of changes, paged lists from
consistent snapshots, and watch streams (replay, bookmarks, compaction, cuts).

`KubeEmulator` (kubeapi.py) builds on `Store`; resource-specific semantics (pods,
leases) live there and in kubeleases.py.
"""

from __future__ import annotations

import bisect
import copy
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tests.support.fakes.kubehttp import WatchState
from tests.support.fakes.kubelogic import (
    Pod,
    Visible,
    as_seen,
    conflict,
    err,
    not_found,
    status_body,
)

Obj = dict[str, Any]
# The kind and apiVersion of each resource the emulator stores.
KINDS = {"pods": ("Pod", "v1"), "leases": ("Lease", "coordination.k8s.io/v1")}


@dataclass
class _Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj  # the object after the change (DELETED: its last content, new resourceVersion)
    old: Obj | None  # the object before (None for ADDED)
    resource: str = "pods"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _expired(since: int, compacted: int) -> dict[str, Any]:
    message = f"too old resource version: {since} ({compacted})"
    return {"type": "ERROR", "object": status_body(410, "Expired", message)}


class Store:
    """Objects by resource and (namespace, name), with one global resourceVersion."""

    def __init__(self, *, bookmark_interval_s: float, history_limit: int) -> None:
        self.bookmark_interval_s = bookmark_interval_s
        self.history_limit = history_limit
        self.hang_watches = False
        self._cond = threading.Condition()
        self._rv = 1
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {r: {} for r in KINDS}
        self._history: list[_Event] = []
        self._compacted_rv = 0  # a watch from a version below this is expired (410)
        self._snapshots: dict[str, tuple[int, list[Obj]]] = {}
        self._expire_next: bool | None = None  # None: no; False: ERROR event; True: HTTP 410
        self._drop_after_next: int | None = None
        self._watches: set[WatchState] = set()
        self._stopping = False

    @property
    def _pods(self) -> dict[tuple[str, str], Pod]:
        return self._objects["pods"]

    @property
    def resource_version(self) -> str:
        with self._cond:
            return str(self._rv)

    # --- writes (under the lock) -----------------------------------------------------------

    def _commit(self, type_: str, obj: Obj, old: Obj | None, resource: str = "pods") -> Obj:
        """Record a change under the lock: bump the version, store, append history, wake.
        A deletion's object is the last stored content with the new version."""
        self._rv += 1
        if type_ == "DELETED" and old is not None:
            obj = copy.deepcopy(old)
        obj["metadata"]["resourceVersion"] = str(self._rv)
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        if type_ == "DELETED":
            self._objects[resource].pop(key, None)
        else:
            self._objects[resource][key] = obj
        before = copy.deepcopy(old) if old is not None else None
        self._history.append(_Event(self._rv, type_, copy.deepcopy(obj), before, resource))
        if len(self._history) > self.history_limit:
            dropped = self._history[: len(self._history) - self.history_limit]
            del self._history[: len(dropped)]
            self._compacted_rv = max(self._compacted_rv, dropped[-1].rv)
        self._cond.notify_all()
        return copy.deepcopy(obj)

    def _current(self, namespace: str, name: str, resource: str = "pods") -> Obj:
        old = self._objects[resource].get((namespace, name))
        if old is None:
            raise not_found(name, resource)
        return old

    def _store_update(self, old: Obj, new: Obj, resource: str = "pods") -> Obj:
        meta = new.setdefault("metadata", {})
        for system in ("name", "namespace", "uid", "creationTimestamp", "resourceVersion"):
            meta[system] = old["metadata"].get(system)
        for system in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            if system in old["metadata"]:
                meta[system] = old["metadata"][system]
            else:
                meta.pop(system, None)
        if new == old:  # a no-op write: no new version, no event
            return copy.deepcopy(old)
        if "deletionTimestamp" in old["metadata"] and not meta.get("finalizers"):
            return self._commit("DELETED", new, old, resource)
        return self._commit("MODIFIED", new, old, resource)

    def _delete(
        self,
        namespace: str,
        name: str,
        preconditions: dict[str, Any] | None = None,
        resource: str = "pods",
    ) -> Obj:
        old = self._current(namespace, name, resource)
        for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
            want = (preconditions or {}).get(field)
            if want is not None and want != old["metadata"].get(field):
                have = old["metadata"].get(field)
                raise conflict(
                    name,
                    f"Precondition failed: {label} in precondition: {want}, "
                    f"{label} in object meta: {have}",
                    resource,
                )
        if old["metadata"].get("finalizers"):
            if "deletionTimestamp" in old["metadata"]:
                return copy.deepcopy(old)
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            return self._commit("MODIFIED", new, old, resource)
        return self._commit("DELETED", copy.deepcopy(old), old, resource)

    # --- switches tests flip ------------------------------------------------------------

    def compact(self) -> None:
        """Forget history up to now: a watch from an older version, or a continue token
        issued before, gets 410 Gone."""
        with self._cond:
            self._compacted_rv = self._rv
            self._history.clear()
            self._snapshots.clear()
            self._cond.notify_all()

    def expire_next_watch(self, as_http: bool = False) -> None:
        """The next watch gets 410: as an ERROR event (what servers do) or an HTTP 410."""
        with self._cond:
            self._expire_next = as_http

    def drop_watches(self) -> None:
        """Cut every open watch stream mid-flight (no terminating chunk)."""
        with self._cond:
            for w in self._watches:
                w.dropped = True
            self._cond.notify_all()

    def drop_watch_after(self, events: int) -> None:
        """The next watch stream is cut right after it has sent `events` events."""
        with self._cond:
            self._drop_after_next = events

    def wait_for(self, predicate: Callable[[], Any], timeout_s: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return bool(predicate())

    # --- reads for the HTTP side ------------------------------------------------------------

    def list_objects(
        self,
        resource: str,
        visible: Visible,
        limit: int,
        cont: tuple[str, int] | None,
        count: bool,
    ) -> dict[str, Any]:
        """A page of the list; `cont` (snapshot, offset) continues a paged one; `count`:
        report remainingItemCount (the server does only without selectors)."""
        with self._cond:
            if cont is not None:
                snap_id, start = cont
                if snap_id not in self._snapshots:
                    raise err(
                        410,
                        "The provided continue parameter is too old to display a consistent "
                        "list result. You can start a new list without the continue parameter.",
                    )
                rv, items = self._snapshots[snap_id]
            else:
                rv, snap_id, start = self._rv, uuid.uuid4().hex, 0
                items = [p for _, p in sorted(self._objects[resource].items()) if visible(p)]
            page = copy.deepcopy(items[start : start + limit] if limit > 0 else items[start:])
            meta: dict[str, Any] = {"resourceVersion": str(rv)}
            end = start + len(page)
            if end < len(items):
                self._snapshots[snap_id] = (rv, items)
                meta["continue"] = f"{snap_id}:{end}"
                if count:
                    meta["remainingItemCount"] = len(items) - end
        for item in page:  # list items carry no kind/apiVersion, as from a real server
            item.pop("kind", None)
            item.pop("apiVersion", None)
        kind, api_version = KINDS[resource]
        return {"kind": f"{kind}List", "apiVersion": api_version, "metadata": meta, "items": page}

    def watch_events(
        self,
        resource: str,
        visible: Visible,
        since: int,
        deadline: float,
        bookmarks: bool,
        state: WatchState,
    ) -> Iterator[dict[str, Any] | None]:
        """The events of one watch from version `since` (0: the current state first, as
        synthetic ADDED events); None when the stream must be cut."""
        with self._cond:
            initial: list[Obj] = []
            if since == 0:
                since = self._rv
                objects = sorted(self._objects[resource].items())
                initial = [copy.deepcopy(p) for _, p in objects if visible(p)]
            compacted = self._compacted_rv
        if since < compacted:
            yield _expired(since, compacted)
            return
        for obj in initial:
            yield {"type": "ADDED", "object": obj}
        kind, api_version = KINDS[resource]
        last_bookmark = time.monotonic()
        while True:
            pending: list[dict[str, Any]] = []
            with self._cond:
                while not (state.dropped or self._stopping):
                    t = time.monotonic()
                    if not self.hang_watches:
                        if since < self._compacted_rv:  # what we owed was compacted away
                            pending = [_expired(since, self._compacted_rv)]
                            break
                        first = bisect.bisect_right(self._history, since, key=lambda ev: ev.rv)
                        for ev in self._history[first:]:
                            if ev.resource == resource:
                                seen = as_seen(ev.type, ev.obj, ev.old, ev.rv, visible)
                                pending += [seen] if seen is not None else []
                            since = ev.rv
                        if pending:
                            break
                        if bookmarks and t - last_bookmark >= self.bookmark_interval_s:
                            last_bookmark, since = t, max(since, self._rv)
                            meta = {"resourceVersion": str(since)}
                            obj = {"kind": kind, "apiVersion": api_version, "metadata": meta}
                            pending = [{"type": "BOOKMARK", "object": obj}]
                            break
                    if t >= deadline:
                        break
                    self._cond.wait(timeout=min(deadline - t, self.bookmark_interval_s, 0.5))
                cut = state.dropped or self._stopping
            if cut:
                yield None
                return
            if not pending:  # the deadline: end the stream cleanly
                return
            for event in pending:
                yield event
                if event["type"] == "ERROR":
                    return

    def register_watch(self, state: WatchState) -> None:
        """Track an open stream (so drop_watches can cut it); arm a pending drop_watch_after."""
        with self._cond:
            self._watches.add(state)
            if self._drop_after_next is not None:
                state.drop_after, self._drop_after_next = self._drop_after_next, None

    def unregister_watch(self, state: WatchState) -> None:
        with self._cond:
            self._watches.discard(state)

    def take_expiry(self) -> bool | None:
        with self._cond:
            value, self._expire_next = self._expire_next, None
            return value
