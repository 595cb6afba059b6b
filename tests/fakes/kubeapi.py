"""A Kubernetes API emulator for pods: a stdlib HTTP/1.1 server on 127.0.0.1, port 0.

It speaks the wire protocol the official client and the servo rely on:
- list (namespaced and cluster-wide) with resourceVersion, `limit`/`continue` pages served from
  a consistent snapshot (remainingItemCount when there is no selector), label and field
  selectors;
- watch as a chunked stream from a resourceVersion, replaying history; `timeoutSeconds` (else
  the server's `min_request_timeout_s`) ends the stream cleanly; `allowWatchBookmarks` gives
  BOOKMARK events; a version older than the compaction point gives an ERROR event with a 410
  Status (or, on request, an HTTP 410); objects moving in or out of a selector arrive as ADDED
  or DELETED, and DELETED carries the previous content, as from the watch cache;
- get, create (server-set uid, creationTimestamp and Pending status; generateName), update with
  optimistic concurrency, merge / strategic merge / JSON patch (also on `/status`), pod spec
  immutability, no-op writes that change nothing, delete with preconditions and finalizers;
- bearer-token authentication (401) and per-verb, per-namespace RBAC denials (403) with the
  API server's messages;
- fault injection: N failing requests, dropped watch streams (now, or after N events), events
  split across chunks, silent (hung) streams, expired watches.

Tests drive pods through their lives with create_pod/update_pod/delete_pod, as the kubelet and
controllers would (these skip API validation and keep a given uid), and read `requests` to see
what the client asked for. The HTTP handler lives in tests/fakes/kubehttp.py.
"""

from __future__ import annotations

import bisect
import copy
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from tests.fakes.kubehttp import Handler, RecordedRequest, WatchState
from tests.fakes.kubelogic import (
    NAMESPACE_MISMATCH,
    ApiError,
    Patcher,
    Pod,
    Visible,
    as_seen,
    check_spec_update,
    conflict,
    err,
    not_found,
    qos_class,
    restrict,
    status_body,
    validate_new_pod,
)

__all__ = ["SAME", "VERBS", "KubeEmulator", "RecordedRequest"]

SAME = "same"  # token argument meaning "the emulator's own token"
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # what the server's generateName draws from


@dataclass
class _Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    obj: Pod  # the object after the change (DELETED: its last content, new resourceVersion)
    old: Pod | None  # the object before (None for ADDED)


@dataclass
class _Fault:
    count: int
    status: int
    verb: str | None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _expired(since: int, compacted: int) -> dict[str, Any]:
    message = f"too old resource version: {since} ({compacted})"
    return {"type": "ERROR", "object": status_body(410, "Expired", message)}


class KubeEmulator:
    """The emulator; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        *,
        token: str | None = None,
        bookmark_interval_s: float = 1.0,
        history_limit: int = 10000,
        user: str = "system:serviceaccount:servo:servo",
        min_request_timeout_s: float = 1800.0,
    ) -> None:
        self.token = token
        self.bookmark_interval_s = bookmark_interval_s
        self.history_limit = history_limit
        self.user = user
        # How long a watch without timeoutSeconds lasts (the server's --min-request-timeout).
        self.min_request_timeout_s = min_request_timeout_s
        self.requests: list[RecordedRequest] = []
        # Fault switches tests flip directly.
        self.split_chunks = False
        self.hang_watches = False
        self._cond = threading.Condition()
        self._rv = 1
        self._pods: dict[tuple[str, str], Pod] = {}
        self._history: list[_Event] = []
        self._compacted_rv = 0  # a watch from a version below this is expired (410)
        self._snapshots: dict[str, tuple[int, list[Pod]]] = {}
        self._faults: list[_Fault] = []
        self._denied: dict[tuple[str, str | None], int] = {}
        self._expire_next: bool | None = None  # None: no; False: ERROR event; True: HTTP 410
        self._drop_after_next: int | None = None
        self._watches: set[WatchState] = set()
        self._stopping = False
        self._server: ThreadingHTTPServer | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> KubeEmulator:
        handler = type("BoundHandler", (Handler,), {"emu": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self.drop_watches()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> KubeEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "emulator not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _token_for(self, token: str | None) -> str | None:
        return self.token if token == SAME else token

    def api_client(self, token: str | None = SAME) -> k8s.ApiClient:
        """An official-client ApiClient pointed at the emulator."""
        cfg = k8s.Configuration()
        cfg.host = self.url
        tok = self._token_for(token)
        if tok:
            cfg.api_key = {"authorization": f"Bearer {tok}"}
        return k8s.ApiClient(cfg)

    def write_kubeconfig(self, path: Path | str, token: str | None = SAME) -> Path:
        """A kubeconfig file for the emulator (JSON is valid YAML)."""
        tok = self._token_for(token)
        user: dict[str, Any] = {"token": tok} if tok else {}
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emu", "cluster": {"server": self.url}}],
            "users": [{"name": "emu", "user": user}],
            "contexts": [{"name": "emu", "context": {"cluster": "emu", "user": "emu"}}],
            "current-context": "emu",
        }
        path = Path(path)
        path.write_text(json.dumps(doc, indent=2))
        return path

    # --- state, as controllers and the kubelet change it ---------------------------------

    @property
    def resource_version(self) -> str:
        with self._cond:
            return str(self._rv)

    def _commit(self, type_: str, obj: Pod, old: Pod | None) -> Pod:
        """Record a change under the lock: bump the version, store, append history, wake.
        A deletion's object is the last stored content with the new version."""
        self._rv += 1
        if type_ == "DELETED" and old is not None:
            obj = copy.deepcopy(old)
        obj["metadata"]["resourceVersion"] = str(self._rv)
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        if type_ == "DELETED":
            self._pods.pop(key, None)
        else:
            self._pods[key] = obj
        before = copy.deepcopy(old) if old is not None else None
        self._history.append(_Event(self._rv, type_, copy.deepcopy(obj), before))
        if len(self._history) > self.history_limit:
            dropped = self._history[: len(self._history) - self.history_limit]
            del self._history[: len(dropped)]
            self._compacted_rv = max(self._compacted_rv, dropped[-1].rv)
        self._cond.notify_all()
        return copy.deepcopy(obj)

    def create_pod(self, pod: Pod, namespace: str | None = None) -> Pod:
        with self._cond:
            return self._create(copy.deepcopy(pod), namespace, from_api=False)

    def _create(self, pod: Pod, namespace: str | None, *, from_api: bool) -> Pod:
        if not isinstance(pod, dict) or not isinstance(pod.get("metadata", {}), dict):
            raise err(400, "the body is not a Pod object")
        meta = pod.setdefault("metadata", {})
        ns = namespace or meta.get("namespace") or "default"
        if meta.get("namespace") not in (None, ns):
            raise err(400, NAMESPACE_MISMATCH)
        meta["namespace"] = ns
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise err(
                    422,
                    'Pod "" is invalid: metadata.name: Required value: name or '
                    "generateName is required",
                )
            meta["name"] = meta["generateName"] + "".join(random.choices(_NAME_CHARS, k=5))
        if from_api:
            validate_new_pod(pod)
            # System fields are the server's: what the client sent is dropped.
            for system in ("uid", "creationTimestamp", "resourceVersion", "generation"):
                meta.pop(system, None)
            pod["status"] = {"phase": "Pending", "qosClass": qos_class(pod)}
        if (ns, meta["name"]) in self._pods:
            raise ApiError(409, "AlreadyExists", f'pods "{meta["name"]}" already exists')
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now())
        meta.pop("deletionTimestamp", None)
        meta.pop("deletionGracePeriodSeconds", None)
        pod.setdefault("kind", "Pod")
        pod.setdefault("apiVersion", "v1")
        pod.setdefault("status", {"phase": "Pending"})
        return self._commit("ADDED", pod, None)

    def update_pod(self, namespace: str, name: str, mutate: Callable[[Pod], Any]) -> Pod:
        """Change a pod in place through `mutate` (as the kubelet updates status)."""
        with self._cond:
            old = self._pods.get((namespace, name))
            if old is None:
                raise KeyError(f"{namespace}/{name}")
            new = copy.deepcopy(old)
            mutate(new)
            return self._store_update(old, new)

    def _store_update(self, old: Pod, new: Pod) -> Pod:
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
            return self._commit("DELETED", new, old)
        return self._commit("MODIFIED", new, old)

    def delete_pod(self, namespace: str, name: str, *, finalize: bool = False) -> Pod:
        """Delete at once, or mark for deletion while finalizers remain (Job pods carry
        `batch.kubernetes.io/job-tracking`). `finalize` then also removes the finalizers, as
        their controllers would: a MODIFIED with deletionTimestamp, then DELETED."""
        with self._cond:
            marked = self._delete(namespace, name)
            if finalize and marked["metadata"].get("finalizers"):
                old = self._pods[(namespace, name)]
                new = copy.deepcopy(old)
                new["metadata"]["finalizers"] = []
                return self._store_update(old, new)
            return marked

    def _delete(
        self, namespace: str, name: str, preconditions: dict[str, Any] | None = None
    ) -> Pod:
        old = self._current(namespace, name)
        for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
            want = (preconditions or {}).get(field)
            if want is not None and want != old["metadata"].get(field):
                have = old["metadata"].get(field)
                raise conflict(
                    name,
                    f"Precondition failed: {label} in precondition: {want}, "
                    f"{label} in object meta: {have}",
                )
        if old["metadata"].get("finalizers"):
            if "deletionTimestamp" in old["metadata"]:
                return copy.deepcopy(old)
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = _now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            return self._commit("MODIFIED", new, old)
        return self._commit("DELETED", copy.deepcopy(old), old)

    def get_pod(self, namespace: str, name: str) -> Pod | None:
        with self._cond:
            pod = self._pods.get((namespace, name))
            return copy.deepcopy(pod) if pod is not None else None

    def pods(self) -> list[Pod]:
        with self._cond:
            return [copy.deepcopy(p) for _, p in sorted(self._pods.items())]

    # --- fault injection ------------------------------------------------------------------

    def compact(self) -> None:
        """Forget history up to now: a watch from an older version, or a continue token
        issued before, gets 410 Gone."""
        with self._cond:
            self._compacted_rv = self._rv
            self._history.clear()
            self._snapshots.clear()
            self._cond.notify_all()

    def fail_next(self, count: int, status: int = 500, verb: str | None = None) -> None:
        """Answer the next `count` requests (of `verb`, or any) with `status`."""
        with self._cond:
            self._faults.append(_Fault(count, status, verb))

    def deny(self, verb: str, namespace: str | None, status: int = 403) -> None:
        """RBAC: refuse `verb` on pods in `namespace` (None: cluster-wide requests)."""
        with self._cond:
            self._denied[(verb, namespace)] = status

    def allow(self, verb: str, namespace: str | None) -> None:
        with self._cond:
            self._denied.pop((verb, namespace), None)

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

    # --- request handling (called from handler threads; kubehttp parsed the request) -----

    def take_fault(self, verb: str) -> int | None:
        with self._cond:
            for f in self._faults:
                if f.count > 0 and f.verb in (None, verb):
                    f.count -= 1
                    self._faults = [x for x in self._faults if x.count > 0]
                    return f.status
        return None

    def denial(self, verb: str, namespace: str | None) -> int | None:
        with self._cond:
            return self._denied.get((verb, namespace))

    def list_pods(
        self, visible: Visible, limit: int, cont: tuple[str, int] | None, count: bool
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
                items = [p for _, p in sorted(self._pods.items()) if visible(p)]
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
        return {"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": page}

    def watch_events(
        self, visible: Visible, since: int, deadline: float, bookmarks: bool, state: WatchState
    ) -> Iterator[dict[str, Any] | None]:
        """The events of one watch from version `since` (0: the current state first, as
        synthetic ADDED events); None when the stream must be cut."""
        with self._cond:
            initial: list[Pod] = []
            if since == 0:
                since = self._rv
                initial = [copy.deepcopy(p) for _, p in sorted(self._pods.items()) if visible(p)]
            compacted = self._compacted_rv
        if since < compacted:
            yield _expired(since, compacted)
            return
        for pod in initial:
            yield {"type": "ADDED", "object": pod}
        last_bookmark = time.monotonic()
        while True:
            pending: list[dict[str, Any]] = []
            with self._cond:
                while not (state.dropped or self._stopping):
                    now = time.monotonic()
                    if not self.hang_watches:
                        if since < self._compacted_rv:  # what we owed was compacted away
                            pending = [_expired(since, self._compacted_rv)]
                            break
                        first = bisect.bisect_right(self._history, since, key=lambda ev: ev.rv)
                        for ev in self._history[first:]:
                            seen = as_seen(ev.type, ev.obj, ev.old, ev.rv, visible)
                            pending += [seen] if seen is not None else []
                            since = ev.rv
                        if pending:
                            break
                        if bookmarks and now - last_bookmark >= self.bookmark_interval_s:
                            last_bookmark, since = now, max(since, self._rv)
                            meta = {"resourceVersion": str(since)}
                            obj = {"kind": "Pod", "apiVersion": "v1", "metadata": meta}
                            pending = [{"type": "BOOKMARK", "object": obj}]
                            break
                    if now >= deadline:
                        break
                    self._cond.wait(timeout=min(deadline - now, self.bookmark_interval_s, 0.5))
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

    def _current(self, namespace: str, name: str) -> Pod:
        old = self._pods.get((namespace, name))
        if old is None:
            raise not_found(name)
        return old

    def apply_patch(
        self, namespace: str, name: str, patcher: Patcher, body: Any, subresource: str | None
    ) -> Pod:
        with self._cond:
            old = self._current(namespace, name)
            new = patcher(copy.deepcopy(old), body)
            if not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
                raise err(422, "the patch did not produce an object")
            rv = new["metadata"].get("resourceVersion")
            if rv not in (None, old["metadata"]["resourceVersion"]):
                raise conflict(name)
            return self._write(old, new, subresource)

    def replace_pod(self, namespace: str, name: str, body: Pod, subresource: str | None) -> Pod:
        with self._cond:
            old = self._current(namespace, name)
            rv = body["metadata"].get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise conflict(name)
            return self._write(old, copy.deepcopy(body), subresource)

    def _write(self, old: Pod, new: Pod, subresource: str | None) -> Pod:
        new = restrict(old, new, subresource)
        if subresource is None:
            check_spec_update(old, new)
        return self._store_update(old, new)

    def get_or_404(self, namespace: str, name: str) -> Pod:
        with self._cond:
            return copy.deepcopy(self._current(namespace, name))

    def create_from_request(self, namespace: str, body: Any) -> Pod:
        with self._cond:
            return self._create(body, namespace, from_api=True)

    def delete_from_request(
        self, namespace: str, name: str, preconditions: dict[str, Any] | None
    ) -> Pod:
        with self._cond:
            return self._delete(namespace, name, preconditions)
