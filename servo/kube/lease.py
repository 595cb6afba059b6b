"""Leader election with a coordination.k8s.io/v1 Lease: of several replicas, one reports.

The holder renews the lease every `retry_s`; another replica takes it over when it has seen no
renewal for `lease_s`. Expiry is judged by when *this* replica last saw the lease change (its
own monotonic clock), not by the renewTime written by another node, so clock skew between
nodes cannot cause a takeover. Every write carries the resourceVersion it read: of two
replicas racing for the lease, the API server lets one win (409 for the other).

`decide` is pure; `LeaderElector` does the API calls and runs the loop.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from servo.system.config_sections import LeaderSettings

logger = logging.getLogger(__name__)


class Action(StrEnum):
    CREATE = "create"  # no lease yet: create it, holding it
    RENEW = "renew"  # we hold it: write a new renewTime
    TAKE_OVER = "take-over"  # its holder stopped renewing: take it
    WAIT = "wait"  # someone else holds it and renews


@dataclass(frozen=True, slots=True)
class LeaseState:
    """What we know of the lease: its holder and when we saw it last change."""

    holder: str
    resource_version: str
    transitions: int
    observed_change_s: float  # our monotonic time when the record last changed


def decide(state: LeaseState | None, me: str, now_s: float, lease_s: float) -> Action:
    """PURE: what to do with the lease now."""
    if state is None:
        return Action.CREATE
    if state.holder == me:
        return Action.RENEW
    if not state.holder or now_s - state.observed_change_s >= lease_s:
        return Action.TAKE_OVER
    return Action.WAIT


def lease_transitions(value: object) -> int:
    """leaseTransitions as written by whoever held the lease: an int32, else counted from 0."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31:
        return value
    return 0


def micro_time(at: datetime) -> str:
    """MicroTime as the API server requires it: always six decimals."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Runs in a thread: `run(stop)`; `leading` is set while this replica holds the lease."""

    def __init__(
        self,
        api: k8s.ApiClient,
        cfg: LeaderSettings,
        *,
        on_start: Callable[[], None] = lambda: None,
        on_stop: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = k8s.CoordinationV1Api(api)
        self.cfg = cfg
        self.leading = threading.Event()
        self.on_start, self.on_stop = on_start, on_stop
        self._clock = clock
        self._state: LeaseState | None = None
        self._last_renewed_s = 0.0

    def run(self, stop: threading.Event) -> None:
        logger.info(
            "leader election",
            extra={"lease": f"{self.cfg.namespace}/{self.cfg.name}", "identity": self.cfg.identity},
        )
        while not stop.is_set():
            try:
                self.step()
            except Exception as e:  # noqa: BLE001 - the loop never dies; next step tries again
                logger.warning("leader election step failed", extra={"error": str(e)})
            if self.leading.is_set() and (self._clock() - self._last_renewed_s >= self.cfg.lease_s):
                # Could not renew for a whole lease period: another replica may lead now.
                self._set_leading(False)
            stop.wait(self.cfg.retry_s)
        if self.leading.is_set():
            self._release()
            self._set_leading(False)

    def step(self) -> None:
        """Read the lease and act on it once."""
        now = self._clock()
        lease = self._read()
        self._observe(lease, now)
        action = decide(self._state, self.cfg.identity, now, self.cfg.lease_s)
        if action is Action.WAIT:
            if self.leading.is_set():
                self._set_leading(False)  # someone else holds it now
            return
        transitions = self._state.transitions if self._state else 0
        if action is Action.TAKE_OVER:
            transitions += 1
        if self._write(lease, transitions, acquire=action is not Action.RENEW):
            self._last_renewed_s = now
            self._set_leading(True)

    def _observe(self, lease: Mapping[str, Any] | None, now: float) -> None:
        if lease is None:
            self._state = None
            return
        spec = lease.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        rv = str((lease.get("metadata") or {}).get("resourceVersion") or "")
        changed = self._state is None or self._state.resource_version != rv
        self._state = LeaseState(
            holder=holder,
            resource_version=rv,
            transitions=lease_transitions(spec.get("leaseTransitions")),
            observed_change_s=now if changed else self._state.observed_change_s,  # type: ignore[union-attr]
        )

    def _read(self) -> dict[str, Any] | None:
        try:
            resp: Any = self.api.read_namespaced_lease(
                self.cfg.name, self.cfg.namespace, _preload_content=False, _request_timeout=5
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        doc = json.loads(resp.data)
        return doc if isinstance(doc, dict) else None

    def _write(self, lease: Mapping[str, Any] | None, transitions: int, *, acquire: bool) -> bool:
        now = micro_time(datetime.now(UTC))
        spec: dict[str, Any] = dict((lease or {}).get("spec") or {})
        spec.update(
            holderIdentity=self.cfg.identity,
            leaseDurationSeconds=max(1, int(self.cfg.lease_s)),
            renewTime=now,
            leaseTransitions=transitions,
        )
        if acquire or "acquireTime" not in spec:
            spec["acquireTime"] = now
        meta: dict[str, Any] = {"name": self.cfg.name, "namespace": self.cfg.namespace}
        # Plain dicts (the client's typing says V1Lease, but it sends dicts as they are).
        body: Any = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "spec": spec}
        try:
            if lease is None:
                new: Any = {**body, "metadata": meta}
                self.api.create_namespaced_lease(
                    self.cfg.namespace, new, _preload_content=False, _request_timeout=5
                )
            else:
                meta["resourceVersion"] = (lease.get("metadata") or {}).get("resourceVersion")
                replacement: Any = {**body, "metadata": meta}
                self.api.replace_namespaced_lease(
                    self.cfg.name,
                    self.cfg.namespace,
                    replacement,
                    _preload_content=False,
                    _request_timeout=5,
                )
        except ApiException as e:
            if e.status in (409, 422):
                return False  # another replica wrote first: read again next step
            raise
        except (urllib3.exceptions.HTTPError, OSError) as e:
            logger.warning("lease write failed", extra={"error": str(e)})
            return False
        return True

    def _release(self) -> None:
        """On a clean stop, give the lease up so a standby takes over at once."""
        lease = self._read()
        if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.cfg.identity:
            return
        spec = dict(lease.get("spec") or {})
        spec["holderIdentity"] = ""
        meta = {
            "name": self.cfg.name,
            "namespace": self.cfg.namespace,
            "resourceVersion": (lease.get("metadata") or {}).get("resourceVersion"),
        }
        released: Any = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": spec,
        }
        try:
            self.api.replace_namespaced_lease(
                self.cfg.name,
                self.cfg.namespace,
                released,
                _preload_content=False,
                _request_timeout=5,
            )
            logger.info("leadership released")
        except ApiException as e:
            logger.info("could not release the lease", extra={"status": e.status})

    def _set_leading(self, leading: bool) -> None:
        if leading == self.leading.is_set():
            return
        if leading:
            self.leading.set()
            logger.info("this replica leads now", extra={"identity": self.cfg.identity})
            self.on_start()
        else:
            self.leading.clear()
            logger.warning("this replica no longer leads", extra={"identity": self.cfg.identity})
            self.on_stop()
