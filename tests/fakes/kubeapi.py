"""A Kubernetes API emulator for pods: a stdlib HTTP/1.1 server on 127.0.0.1, port 0.

It speaks the wire protocol the official client and the servo rely on:
- list (namespaced and cluster-wide) with resourceVersion, `limit`/`continue` pages served from
  a consistent snapshot, label and field selectors;
- watch as a chunked stream from a resourceVersion, replaying history; `timeoutSeconds` ends the
  stream cleanly; `allowWatchBookmarks` gives BOOKMARK events; a version older than the
  compaction point gives an ERROR event with a 410 Status (or, on request, an HTTP 410);
  objects moving in or out of a selector arrive as ADDED or DELETED, as from the watch cache;
- get, create (generateName, uid, creationTimestamp), update with optimistic concurrency,
  merge / strategic merge / JSON patch (also on `/status`), delete with finalizer semantics;
- bearer-token authentication (401) and per-verb, per-namespace RBAC denials (403) with the
  API server's messages;
- fault injection: N failing requests, dropped watch streams (now, or after N events), events
  split across chunks, silent (hung) streams, expired watches.

Tests drive pods through their lives with create_pod/update_pod/delete_pod, as the kubelet and
controllers would, and read `requests` to see what the client asked for.
"""

from __future__ import annotations

import bisect
import copy
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from kubernetes import client as k8s

from tests.fakes.kubelogic import (
    PATCHERS,
    REASONS,
    ApiError,
    Pod,
    field_matcher,
    label_matcher,
    status_body,
)

SAME = "same"  # token argument meaning "the emulator's own token"
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    verb: str = ""
    namespace: str | None = None
    status: int = 0


@dataclass
class _Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    obj: Pod  # the object after the change (for DELETED: as it was deleted)
    old: Pod | None  # the object before (None for ADDED)


@dataclass
class _Fault:
    count: int
    status: int
    verb: str | None


@dataclass(eq=False)  # identity hash: tracked in a set
class _WatchState:
    sock: socket.socket
    drop_after: int | None = None
    dropped: bool = False
    sent: int = 0


@dataclass
class _Route:
    namespace: str | None
    name: str | None
    subresource: str | None
    extra: dict[str, Any] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KubeEmulator:
    """The emulator; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        *,
        token: str | None = None,
        bookmark_interval_s: float = 1.0,
        history_limit: int = 10000,
        user: str = "system:serviceaccount:servo:servo",
    ) -> None:
        self.token = token
        self.bookmark_interval_s = bookmark_interval_s
        self.history_limit = history_limit
        self.user = user
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
        self._watches: set[_WatchState] = set()
        self._stopping = False
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> KubeEmulator:
        emulator = self

        class Handler(_Handler):
            emu = emulator

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
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
        """Record a change under the lock: bump the version, store, append history, wake."""
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        if type_ == "DELETED":
            self._pods.pop(key, None)
        else:
            self._pods[key] = obj
        self._history.append(_Event(self._rv, type_, copy.deepcopy(obj),
                                    copy.deepcopy(old) if old is not None else None))
        if len(self._history) > self.history_limit:
            dropped = self._history[: len(self._history) - self.history_limit]
            del self._history[: len(dropped)]
            self._compacted_rv = max(self._compacted_rv, dropped[-1].rv)
        self._cond.notify_all()
        return copy.deepcopy(obj)

    def create_pod(self, pod: Pod, namespace: str | None = None) -> Pod:
        with self._cond:
            return self._create(copy.deepcopy(pod), namespace)

    def _create(self, pod: Pod, namespace: str | None) -> Pod:
        if not isinstance(pod, dict) or not isinstance(pod.get("metadata", {}), dict):
            raise ApiError(400, "BadRequest", "the body is not a Pod object")
        meta = pod.setdefault("metadata", {})
        ns = namespace or meta.get("namespace") or "default"
        if meta.get("namespace") not in (None, ns):
            raise ApiError(400, "BadRequest",
                           "the namespace of the provided object does not match the namespace "
                           "sent on the request")
        meta["namespace"] = ns
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise ApiError(422, "Invalid",
                               'Pod "" is invalid: metadata.name: Required value: name or '
                               "generateName is required")
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if (ns, meta["name"]) in self._pods:
            raise ApiError(409, "AlreadyExists", f'pods "{meta["name"]}" already exists')
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now())
        meta.pop("deletionTimestamp", None)
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
        for immutable in ("name", "namespace", "uid", "creationTimestamp"):
            meta[immutable] = old["metadata"].get(immutable)
        if "deletionTimestamp" in old["metadata"]:
            meta["deletionTimestamp"] = old["metadata"]["deletionTimestamp"]
            if not meta.get("finalizers"):
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

    def _delete(self, namespace: str, name: str) -> Pod:
        old = self._pods.get((namespace, name))
        if old is None:
            raise ApiError(404, "NotFound", f'pods "{name}" not found')
        new = copy.deepcopy(old)
        if new["metadata"].get("finalizers"):
            if "deletionTimestamp" in old["metadata"]:
                return copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = _now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            return self._commit("MODIFIED", new, old)
        return self._commit("DELETED", new, old)

    def get_pod(self, namespace: str, name: str) -> Pod | None:
        with self._cond:
            pod = self._pods.get((namespace, name))
            return copy.deepcopy(pod) if pod is not None else None

    def pods(self) -> list[Pod]:
        with self._cond:
            return [copy.deepcopy(p) for _, p in sorted(self._pods.items())]

    # --- fault injection ------------------------------------------------------------------

    def compact(self) -> None:
        """Forget history up to now: a watch from an older version gets 410 Gone."""
        with self._cond:
            self._compacted_rv = self._rv
            self._history.clear()
            self._snapshots.clear()

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
        """The next watch stream is cut after it has sent `events` events."""
        with self._cond:
            self._drop_after_next = events

    def wait_for(self, predicate: Callable[[], Any], timeout_s: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return bool(predicate())

    # --- request handling (called from handler threads) ---------------------------------

    def _take_fault(self, verb: str) -> int | None:
        with self._cond:
            for f in self._faults:
                if f.count > 0 and f.verb in (None, verb):
                    f.count -= 1
                    status = f.status
                    self._faults = [x for x in self._faults if x.count > 0]
                    return status
        return None

    def _check_access(self, headers: Any, verb: str, namespace: str | None) -> None:
        if self.token is not None:
            auth = headers.get("Authorization") or ""
            if auth != f"Bearer {self.token}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
        with self._cond:
            denied = self._denied.get((verb, namespace))
        if denied is not None:
            where = (f'in the namespace "{namespace}"' if namespace is not None
                     else "at the cluster scope")
            raise ApiError(denied, REASONS.get(denied, "Forbidden"),
                           f'pods is forbidden: User "{self.user}" cannot {verb} resource '
                           f'"pods" in API group "" {where}')

    def list_pods(self, namespace: str | None, query: dict[str, str]) -> dict[str, Any]:
        labels = label_matcher(query.get("labelSelector"))
        fields = field_matcher(query.get("fieldSelector"))
        limit = int(query.get("limit") or 0)
        token = query.get("continue")
        with self._cond:
            if token:
                snap = self._snapshots.get(token.split(":", 1)[0])
                if snap is None:
                    raise ApiError(410, "Expired",
                                   "The provided continue parameter is too old to display a "
                                   "consistent list result. You can start a new list without "
                                   "the continue parameter.")
                rv, items = snap
                start = int(token.split(":", 1)[1])
            else:
                rv = self._rv
                items = [copy.deepcopy(p) for _, p in sorted(self._pods.items())
                         if namespace in (None, p["metadata"]["namespace"])
                         and labels(p) and fields(p)]
                start = 0
            page = items[start: start + limit] if limit > 0 else items[start:]
            meta: dict[str, Any] = {"resourceVersion": str(rv)}
            end = start + len(page)
            if end < len(items):
                snap_id = token.split(":", 1)[0] if token else uuid.uuid4().hex
                self._snapshots[snap_id] = (rv, items)
                meta["continue"] = f"{snap_id}:{end}"
                meta["remainingItemCount"] = len(items) - end
        for item in page:  # list items carry no kind/apiVersion, as from a real server
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return {"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": page}

    def watch_events(
        self, namespace: str | None, query: dict[str, str], state: _WatchState
    ) -> Iterator[dict[str, Any] | None]:
        """Events for one watch request. Yields None when the stream must be cut."""
        labels = label_matcher(query.get("labelSelector"))
        fields = field_matcher(query.get("fieldSelector"))

        def visible(p: Pod | None) -> bool:
            return (p is not None and namespace in (None, p["metadata"]["namespace"])
                    and labels(p) and fields(p))

        timeout_s = float(query.get("timeoutSeconds") or 1800)
        bookmarks = query.get("allowWatchBookmarks") in ("true", "True", "1")
        deadline = time.monotonic() + timeout_s
        rv_param = query.get("resourceVersion") or "0"
        with self._cond:
            if not rv_param.isdigit():
                raise ApiError(400, "BadRequest", f"invalid resourceVersion {rv_param!r}")
            since = int(rv_param)
            if since == 0:
                # "Any version": synthetic ADDED events for what exists, then changes.
                since = self._rv
                initial = [copy.deepcopy(p) for _, p in sorted(self._pods.items())
                           if visible(p)]
            else:
                initial = []
            if since < self._compacted_rv:
                yield {"type": "ERROR", "object": status_body(
                    410, "Expired",
                    f"too old resource version: {since} ({self._compacted_rv})")}
                return
        for pod in initial:
            yield {"type": "ADDED", "object": pod}
        last_bookmark = time.monotonic()
        while True:
            with self._cond:
                pending: list[dict[str, Any]] = []
                while True:
                    if state.dropped or self._stopping:
                        break
                    if not self.hang_watches:
                        # History is ordered by version: start after `since`, not at 0.
                        first = bisect.bisect_right(self._history, since, key=lambda ev: ev.rv)
                        owed = self._history[first:]
                        pending = [e for e in (_as_seen(ev, visible) for ev in owed)
                                   if e is not None]
                        newest = owed[-1].rv if owed else since
                        if since < self._compacted_rv:
                            # History we still owed this watcher was compacted away.
                            pending = [{"type": "ERROR", "object": status_body(
                                410, "Expired",
                                f"too old resource version: {since} ({self._compacted_rv})")}]
                        if pending:
                            since = max(since, newest)
                            break
                    now = time.monotonic()
                    if now >= deadline:
                        break
                    if (bookmarks and not self.hang_watches
                            and now - last_bookmark >= self.bookmark_interval_s):
                        break
                    self._cond.wait(timeout=min(deadline - now, self.bookmark_interval_s,
                                                0.5))
                if state.dropped or self._stopping:
                    yield None
                    return
                now = time.monotonic()
                if (not pending and bookmarks and not self.hang_watches
                        and now - last_bookmark >= self.bookmark_interval_s):
                    last_bookmark = now
                    pending = [{"type": "BOOKMARK", "object": {
                        "kind": "Pod", "apiVersion": "v1",
                        "metadata": {"resourceVersion": str(max(since, self._rv))}}}]
                    since = max(since, self._rv)
            if not pending and time.monotonic() >= deadline:
                return
            for event in pending:
                if event["type"] == "ERROR":
                    yield event
                    return
                yield event

    def register_watch(self, state: _WatchState) -> None:
        """Track an open stream (so drop_watches can cut it); arm a pending drop_watch_after."""
        with self._cond:
            self._watches.add(state)
            if self._drop_after_next is not None:
                state.drop_after, self._drop_after_next = self._drop_after_next, None

    def unregister_watch(self, state: _WatchState) -> None:
        with self._cond:
            self._watches.discard(state)

    def take_expiry(self) -> bool | None:
        with self._cond:
            value, self._expire_next = self._expire_next, None
            return value

    def apply_patch(self, namespace: str, name: str, content_type: str, body: Any,
                    subresource: str | None) -> Pod:
        patcher = PATCHERS.get(content_type.split(";")[0].strip())
        if patcher is None:
            raise ApiError(415, "UnsupportedMediaType",
                           f"the body of the request was in an unknown format - accepted "
                           f"media types include: {', '.join(PATCHERS)}")
        with self._cond:
            old = self._pods.get((namespace, name))
            if old is None:
                raise ApiError(404, "NotFound", f'pods "{name}" not found')
            new = patcher(copy.deepcopy(old), body)
            if not isinstance(new, dict):
                raise ApiError(422, "Invalid", "the patch did not produce an object")
            new = _restrict(old, new, subresource)
            want_rv = (new.get("metadata") or {}).get("resourceVersion")
            if want_rv not in (None, old["metadata"]["resourceVersion"]):
                raise ApiError(409, "Conflict",
                               f'Operation cannot be fulfilled on pods "{name}": the object '
                               "has been modified; please apply your changes to the latest "
                               "version and try again")
            return self._store_update(old, new)

    def replace_pod(self, namespace: str, name: str, body: Any,
                    subresource: str | None) -> Pod:
        if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
            raise ApiError(400, "BadRequest", "the body is not a Pod object")
        with self._cond:
            old = self._pods.get((namespace, name))
            if old is None:
                raise ApiError(404, "NotFound", f'pods "{name}" not found')
            rv = body["metadata"].get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict",
                               f'Operation cannot be fulfilled on pods "{name}": the object '
                               "has been modified; please apply your changes to the latest "
                               "version and try again")
            return self._store_update(old, _restrict(old, copy.deepcopy(body), subresource))

    def get_or_404(self, namespace: str, name: str) -> Pod:
        with self._cond:
            pod = self._pods.get((namespace, name))
            if pod is None:
                raise ApiError(404, "NotFound", f'pods "{name}" not found')
            return copy.deepcopy(pod)

    def create_from_request(self, namespace: str, body: Any) -> Pod:
        with self._cond:
            return self._create(body, namespace)

    def delete_from_request(self, namespace: str, name: str) -> Pod:
        with self._cond:
            return self._delete(namespace, name)


def _restrict(old: Pod, new: Pod, subresource: str | None) -> Pod:
    """The main resource ignores status changes; `/status` changes only status."""
    if subresource == "status":
        out = copy.deepcopy(old)
        out["status"] = new.get("status", {})
        return out
    new["status"] = copy.deepcopy(old.get("status", {}))
    return new


def _as_seen(ev: _Event, visible: Callable[[Pod | None], bool]) -> dict[str, Any] | None:
    """An event as a watcher with a selector sees it (objects entering or leaving it)."""
    now, before = visible(ev.obj), visible(ev.old)
    if ev.type == "ADDED":
        type_ = "ADDED" if now else None
    elif ev.type == "DELETED":
        type_ = "DELETED" if before or now else None
    elif now and before:
        type_ = "MODIFIED"
    elif now:
        type_ = "ADDED"
    elif before:
        type_ = "DELETED"
    else:
        type_ = None
    return {"type": type_, "object": ev.obj} if type_ else None



class _Handler(BaseHTTPRequestHandler):
    emu: KubeEmulator
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    # --- plumbing ---------------------------------------------------------------------

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_json(self, code: int, doc: Any) -> None:
        data = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, err: ApiError) -> None:
        self._send_json(err.code, status_body(err.code, err.reason, err.message))

    def _route(self, path: str) -> _Route | None:
        parts = [p for p in path.split("/") if p]
        if parts[:2] != ["api", "v1"]:
            return None
        rest = parts[2:]
        if rest == ["pods"]:
            return _Route(None, None, None)
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] == "pods":
            name = rest[3] if len(rest) > 3 else None
            sub = rest[4] if len(rest) > 4 else None
            if len(rest) > 5:
                return None
            return _Route(rest[1], name, sub)
        return None

    def _handle(self, method: str) -> None:
        split = urlsplit(self.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        body = self._read_body() if method in ("POST", "PUT", "PATCH", "DELETE") else b""
        rec = RecordedRequest(method, split.path, query,
                              {k: v for k, v in self.headers.items()}, body)
        self.emu.requests.append(rec)
        if split.path == "/version":
            rec.status = 200
            self._send_json(200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0-emu",
                                  "platform": "linux/amd64"})
            return
        route = self._route(split.path)
        if route is None:
            rec.status = 404
            self._send_error(ApiError(404, "NotFound",
                                      "the server could not find the requested resource"))
            return
        verb = _verb(method, route, query)
        rec.verb, rec.namespace = verb, route.namespace
        try:
            if verb == "":
                raise ApiError(405, "MethodNotAllowed",
                               f"the server does not allow this method on the requested "
                               f"resource ({method} {split.path})")
            self.emu._check_access(self.headers, verb, route.namespace)
            fault = self.emu._take_fault(verb)
            if fault is not None:
                raise ApiError(fault, REASONS.get(fault, "InternalError"),
                               f"injected fault ({fault})")
            if verb == "watch":
                rec.status = 200
                self._watch(route, query, rec)
                return
            code, doc = 200, self._dispatch(verb, route, query, body)
            if verb == "create":
                code = 201
        except ApiError as e:
            rec.status = e.code
            self._send_error(e)
            return
        rec.status = code
        self._send_json(code, doc)

    def _dispatch(self, verb: str, route: _Route, query: dict[str, str], body: bytes) -> Any:
        emu = self.emu
        ns, name = route.namespace, route.name
        if verb == "list":
            return emu.list_pods(ns, query)
        assert ns is not None
        if verb == "create":
            return emu.create_from_request(ns, _json_body(body))
        assert name is not None
        if verb == "get":
            return emu.get_or_404(ns, name)
        if verb == "patch":
            return emu.apply_patch(ns, name, self.headers.get("Content-Type") or "",
                                   _json_body(body), route.subresource)
        if verb == "update":
            return emu.replace_pod(ns, name, _json_body(body), route.subresource)
        if verb == "delete":
            return emu.delete_from_request(ns, name)
        raise ApiError(405, "MethodNotAllowed", f"verb {verb} not supported")

    # --- watch ------------------------------------------------------------------------

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _watch(self, route: _Route, query: dict[str, str], rec: RecordedRequest) -> None:
        emu = self.emu
        expiry = emu.take_expiry()
        if expiry is True:
            rec.status = 410
            self._send_error(ApiError(410, "Gone", "too old resource version: expired"))
            return
        # Validate selectors before the 200 goes out, as the server does.
        label_matcher(query.get("labelSelector"))
        field_matcher(query.get("fieldSelector"))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        state = _WatchState(self.connection)
        emu.register_watch(state)
        try:
            if expiry is False:
                events: Iterator[dict[str, Any] | None] = iter([{
                    "type": "ERROR",
                    "object": status_body(410, "Expired", "too old resource version: expired"),
                }])
            else:
                events = emu.watch_events(route.namespace, query, state)
            for event in events:
                if event is None or (state.drop_after is not None
                                     and state.sent >= state.drop_after):
                    self._cut()
                    return
                line = json.dumps(event).encode() + b"\n"
                if emu.split_chunks and len(line) > 3:
                    third = len(line) // 3
                    for piece in (line[:third], line[third: 2 * third], line[2 * third:]):
                        self._write_chunk(piece)
                        time.sleep(0.002)
                else:
                    self._write_chunk(line)
                state.sent += 1
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except ApiError:
            self._cut()
        except OSError:
            self.close_connection = True
        finally:
            emu.unregister_watch(state)

    def _cut(self) -> None:
        """End the stream without its terminating chunk: the client sees a broken stream."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")

    def do_PATCH(self) -> None:  # noqa: N802
        self._handle("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")


def _verb(method: str, route: _Route, query: dict[str, str]) -> str:
    """The RBAC verb of a request (what an authorizer would check)."""
    watch = query.get("watch") in ("true", "True", "1")
    if route.subresource not in (None, "status"):
        return ""
    if route.name is None:
        if method == "GET":
            return "watch" if watch else "list"
        if method == "POST" and route.namespace is not None:
            return "create"
        return ""
    return {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, "")


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError as e:
        raise ApiError(400, "BadRequest", f"the body is not JSON: {e}") from e
