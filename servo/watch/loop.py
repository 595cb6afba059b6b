"""The list+watch loop of one scope (a namespace, or the cluster): yields pod events forever.

List, yield each listed pod as ADDED and then a LISTED marker, then watch from the list's
resourceVersion with bookmarks. The version of every event (BOOKMARK included) is remembered; a
normal end of stream re-watches from it; 410 Gone lists again; connection errors and 5xx back
off and retry; 401/403 are logged naming the verb and namespace, and retried slowly (RBAC may be
fixed while we wait). Returns only when `stop` is set.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from servo.core.errors import KubeError, WatchExpiredError
from servo.core.podstructs import Pod, WatchLine
from servo.core.retrying import backoff_s, is_retryable
from servo.kube.client import KubeClient, kube_error_from_status
from servo.system.config_sections import WatchConfig

logger = logging.getLogger(__name__)

POD_EVENTS = frozenset({"ADDED", "MODIFIED", "DELETED"})
LISTED = "LISTED"


class WatchEvent(msgspec.Struct, frozen=True, gc=False):
    """A pod event (ADDED/MODIFIED/DELETED with `pod`, and its whole JSON in `doc` when the
    app-id path needs it), or LISTED with the listed pod uids."""

    type: str
    pod: Pod = msgspec.field(default_factory=Pod)
    doc: Mapping[str, Any] | None = None
    listed_uids: frozenset[str] = frozenset()


@dataclass(slots=True)
class WatchStats:
    """Counters for logs, tests and metrics."""

    lists: int = 0
    watches: int = 0
    expired: int = 0
    errors: int = 0
    events: int = 0
    # monotonic time the API server last answered (a list, a stream opening, an event or a
    # bookmark): readiness wants it recent
    last_contact_s: float = 0.0


def _resource_version(pod: Pod | None) -> str | None:
    meta = pod.metadata if pod is not None else None
    return (meta.resource_version or None) if meta is not None else None


def _uid(pod: Pod | None) -> str | None:
    meta = pod.metadata if pod is not None else None
    return meta.uid if meta is not None else None


class PodWatch:
    """List+watch of one scope; iterate `events()` until `stop` is set."""

    def __init__(
        self,
        kube: KubeClient,
        namespace: str | None,
        cfg: WatchConfig,
        stop: threading.Event,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.cfg = cfg
        self.stop = stop
        self.stats = WatchStats()
        self.resource_version: str | None = None
        self.synced = threading.Event()  # set after the first complete list
        self._rng = rng or random.Random()
        self._failures = 0

    @property
    def scope(self) -> str:
        return self.namespace or "*"

    def events(self) -> Iterator[WatchEvent]:
        """Pod events forever (until stop), relisting and reconnecting as needed."""
        while not self.stop.is_set():
            try:
                if self.resource_version is None:
                    yield from self._list()
                yield from self._watch()
            except WatchExpiredError as e:
                self.stats.expired += 1
                logger.info(
                    "watch expired (410 Gone), listing again",
                    extra={
                        "namespace": self.scope,
                        "resource_version": self.resource_version,
                        "error": e.message,
                    },
                )
                self.resource_version = None
            except KubeError as e:
                self._on_error(e)
            except Exception as e:  # noqa: BLE001 - the watch thread must outlive any bug
                logger.exception(
                    "watch failed unexpectedly, will retry", extra={"namespace": self.scope}
                )
                self._on_error(KubeError(0, type(e).__name__, str(e)[:500]))

    def _list(self) -> Iterator[WatchEvent]:
        items: list[WatchLine] = []
        token: str | None = None
        rv = ""
        while True:
            page = self.kube.list_pods(
                self.namespace, limit=self.cfg.list_page_size, continue_token=token
            )
            items.extend(page.items)
            rv = rv or page.resource_version  # every page of one list shares the first's version
            token = page.continue_token
            if not token:
                break
            if self.stop.is_set():
                return
        self.stats.lists += 1
        self.stats.last_contact_s = time.monotonic()
        self._failures = 0
        logger.info(
            "listed pods",
            extra={"namespace": self.scope, "count": len(items), "resource_version": rv},
        )
        uids = frozenset(u for u in (_uid(item.pod) for item in items) if u)
        for item in items:
            if item.pod is not None:
                yield WatchEvent("ADDED", item.pod, item.doc)
        self.resource_version = rv or None
        self.synced.set()
        yield WatchEvent(LISTED, listed_uids=uids)

    def _watch(self) -> Iterator[WatchEvent]:
        if self.resource_version is None:
            return
        self.stats.watches += 1
        logger.debug(
            "watching pods",
            extra={"namespace": self.scope, "resource_version": self.resource_version},
        )
        for raw in self.kube.stream_watch(
            self.namespace,
            resource_version=self.resource_version,
            timeout_s=self.cfg.timeout_s,
            idle_timeout_s=self.cfg.idle_timeout_s,
        ):
            if self.stop.is_set():
                return
            self.stats.last_contact_s = time.monotonic()
            kind, pod = raw.type, raw.pod
            if kind == "ERROR":
                raise kube_error_from_status(raw.doc)
            rv = _resource_version(pod)
            if kind == "BOOKMARK":
                if rv:
                    self.resource_version = rv
                continue
            if kind not in POD_EVENTS or pod is None:
                logger.warning(
                    "unknown watch event skipped",
                    extra={"namespace": self.scope, "type": str(kind)[:40]},
                )
                continue
            self._failures = 0
            self.stats.events += 1
            yield WatchEvent(kind, pod, raw.doc)
            # Remember the version only once the event was handled: a crash in between must
            # replay it, not skip it.
            if rv:
                self.resource_version = rv

    def _on_error(self, e: KubeError) -> None:
        if self.stop.is_set():
            # Shutdown closes the streams under us: expected, not worth a warning.
            logger.debug("watch ended at shutdown", extra={"namespace": self.scope})
            return
        self.stats.errors += 1
        self._failures += 1
        verb = "list" if self.resource_version is None else "watch"
        extra = {
            "namespace": self.scope,
            "verb": verb,
            "status": e.status,
            "reason": e.reason,
            "error": e.message,
            "attempt": self._failures,
        }
        if e.status in (401, 403):
            wait = self.cfg.max_backoff_s
            if e.status == 401:
                logger.error(
                    "API server rejected the servo's credentials (401 Unauthorized)", extra=extra
                )
            else:
                logger.error(
                    "RBAC forbids the servo this verb on pods in this namespace"
                    " (403 Forbidden): grant get, list, watch and patch on pods",
                    extra=extra,
                )
        elif is_retryable(e):
            wait = backoff_s(
                self._failures, max_s=self.cfg.max_backoff_s, jitter=self._rng.random()
            )
            logger.warning("watch failed, will retry", extra={**extra, "wait_s": round(wait, 3)})
        else:
            wait = self.cfg.max_backoff_s
            logger.error("watch failed with an unexpected API answer, will retry", extra=extra)
        self.stop.wait(wait)
