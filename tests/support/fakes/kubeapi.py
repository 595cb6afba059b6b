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

Leases (coordination.k8s.io/v1, tests/support/fakes/kubeleases.py) share the store and its single
resourceVersion counter; SelfSubjectAccessReviews and discovery (/api, /apis) answer from
tests/support/fakes/kubeauthz.py; TokenReviews of pod-bound tokens that tests mint (`tokens`) from
tests/support/fakes/kubetokens.py.

Tests drive pods through their lives with create_pod/update_pod/delete_pod, as the kubelet and
controllers would (these skip API validation and keep a given uid), and read `requests` to see
what the client asked for. The HTTP handler lives in tests/support/fakes/kubehttp.py.
"""

from __future__ import annotations

import copy
import json
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from tests.support.fakes.kubeauthz import matches_denial
from tests.support.fakes.kubehttp import Handler, RecordedRequest
from tests.support.fakes.kubeleases import LeaseStore
from tests.support.fakes.kubelogic import (
    NAMESPACE_MISMATCH,
    ApiError,
    Patcher,
    Pod,
    check_spec_update,
    conflict,
    err,
    qos_class,
    restrict,
    validate_new_pod,
)
from tests.support.fakes.kubestore import now
from tests.support.fakes.kubetokens import TokenAuthority

__all__ = ["SAME", "VERBS", "KubeEmulator", "RecordedRequest"]

SAME = "same"  # token argument meaning "the emulator's own token"
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # what the server's generateName draws from


@dataclass
class _Fault:
    count: int
    status: int
    verb: str | None
    resource: str | None = None


class KubeEmulator(LeaseStore):
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
        super().__init__(bookmark_interval_s=bookmark_interval_s, history_limit=history_limit)
        self.token = token
        self.user = user
        # How long a watch without timeoutSeconds lasts (the server's --min-request-timeout).
        self.min_request_timeout_s = min_request_timeout_s
        self.requests: list[RecordedRequest] = []
        # Fault switches tests flip directly (hang_watches is the store's).
        self.split_chunks = False
        # Raw bytes put on the wire in place of others in every JSON answer and watch line:
        # objects no Python encoder can write (nested deeper than its recursion limit).
        self.wire_substitutions: dict[bytes, bytes] = {}
        self._faults: list[_Fault] = []
        self._denied: dict[tuple[str, str | None, str], int] = {}
        self._server: ThreadingHTTPServer | None = None
        # TokenReview: tests mint pod-bound tokens here (projected service-account tokens).
        self.tokens = TokenAuthority()

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
        meta.setdefault("creationTimestamp", now())
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

    def get_pod(self, namespace: str, name: str) -> Pod | None:
        with self._cond:
            pod = self._pods.get((namespace, name))
            return copy.deepcopy(pod) if pod is not None else None

    def pods(self) -> list[Pod]:
        with self._cond:
            return [copy.deepcopy(p) for _, p in sorted(self._pods.items())]

    # --- fault injection and RBAC ----------------------------------------------------------

    def fail_next(
        self, count: int, status: int = 500, verb: str | None = None, resource: str | None = None
    ) -> None:
        """Answer the next `count` requests (of `verb`, or any; on `resource`, e.g. "leases",
        or any) with `status`."""
        with self._cond:
            self._faults.append(_Fault(count, status, verb, resource))

    def deny(
        self, verb: str, namespace: str | None, status: int = 403, resource: str = "pods"
    ) -> None:
        """RBAC: refuse `verb` on `resource` ("pods", "leases", "selfsubjectaccessreviews")
        in `namespace` (None: cluster-wide requests)."""
        with self._cond:
            self._denied[(verb, namespace, resource)] = status

    def allow(self, verb: str, namespace: str | None, resource: str = "pods") -> None:
        with self._cond:
            self._denied.pop((verb, namespace, resource), None)

    # --- request handling (called from handler threads; kubehttp parsed the request) -----

    def take_fault(self, verb: str, resource: str = "pods") -> int | None:
        with self._cond:
            for f in self._faults:
                if f.count > 0 and f.verb in (None, verb) and f.resource in (None, resource):
                    f.count -= 1
                    self._faults = [x for x in self._faults if x.count > 0]
                    return f.status
        return None

    def denial(self, verb: str, namespace: str | None, resource: str = "pods") -> int | None:
        with self._cond:
            return self._denied.get((verb, namespace, resource))

    def denied(self, verb: str, namespace: str | None, resource: str) -> bool:
        """Whether the deny() rules refuse this (a "*" verb or resource: any of them)."""
        with self._cond:
            rules = list(self._denied)
        return any(matches_denial(rule, verb, namespace, resource) for rule in rules)

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
