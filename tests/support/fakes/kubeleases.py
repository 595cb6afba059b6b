"""Leases (coordination.k8s.io/v1) in the Kubernetes API emulator, as the lease registry
serves them: server-set uid and creationTimestamp, optimistic concurrency (an update must
carry the current metadata.resourceVersion: the lease strategy allows no unconditional
update), create on PUT, no-op writes that change nothing, and the API server's decoding of
the spec (MicroTime fields must be RFC 3339 with exactly six fractional digits; they come back
in UTC) and its validation (leaseDurationSeconds > 0, leaseTransitions >= 0, preferredHolder
only with strategy).

Leases share the store, and so the one resourceVersion counter and the watch history, with
pods (tests/support/fakes/kubestore.py).
"""

from __future__ import annotations

import copy
import random
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tests.support.fakes.kubelogic import NAMESPACE_MISMATCH, ApiError, Patcher, conflict, err
from tests.support.fakes.kubestore import Obj, Store, now

LEASES = "leases"
GROUP = "coordination.k8s.io"
API_VERSION = f"{GROUP}/v1"
_KIND = f'Lease.{GROUP} "{{name}}" is invalid'  # how validation errors name the object
RFC3339_MICRO = "2006-01-02T15:04:05.000000Z07:00"
_MICRO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
# LeaseSpec's fields and their Go types; others are dropped, as the server's decoder does.
SPEC_FIELDS = {
    "acquireTime": "MicroTime",
    "holderIdentity": "string",
    "leaseDurationSeconds": "int32",
    "leaseTransitions": "int32",
    "preferredHolder": "string",
    "renewTime": "MicroTime",
    "strategy": "string",
}


def _undecodable(detail: str) -> ApiError:
    return err(400, f'Lease in version "v1" cannot be handled as a Lease: {detail}')


def _json_type(value: Any) -> str:
    """The JSON type as Go's json errors name it."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return f"number {value}"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), "value")


def micro_time(value: Any, field: str) -> str:
    """A MicroTime as the server decodes it (time.Parse with RFC3339Micro: exactly six
    fractional digits and a zone) and encodes it again (UTC, `Z`). A datetime is formatted
    first (for the Python-side helpers)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if not isinstance(value, str):
        raise _undecodable(
            f"json: cannot unmarshal {_json_type(value)} into Go struct field "
            f"LeaseSpec.spec.{field} of type string"
        )
    if not _MICRO.match(value):
        tail = value[19:] if len(value) > 19 else value
        want = ".000000" if not re.match(r"^\.\d{6}", tail) else "Z07:00"
        tail = tail[7:] if want == "Z07:00" else tail
        raise _undecodable(
            f'parsing time "{value}" as "{RFC3339_MICRO}": cannot parse "{tail}" as "{want}"'
        )
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def decode_spec(spec: Any) -> dict[str, Any]:
    """A LeaseSpec as the server decodes and re-encodes it: typed fields, times in UTC,
    unknown fields dropped."""
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise _undecodable(
            f"json: cannot unmarshal {_json_type(spec)} into Go struct field Lease.spec of type "
            "v1.LeaseSpec"
        )
    out: dict[str, Any] = {}
    for field, go_type in SPEC_FIELDS.items():
        value = spec.get(field)
        if value is None:
            continue
        if go_type == "MicroTime":
            out[field] = micro_time(value, field)
        elif go_type == "string":
            if not isinstance(value, str):
                raise _undecodable(
                    f"json: cannot unmarshal {_json_type(value)} into Go struct field "
                    f"LeaseSpec.spec.{field} of type string"
                )
            out[field] = value
        else:
            ok = isinstance(value, int) and not isinstance(value, bool)
            if not ok or not -(2**31) <= value < 2**31:
                raise _undecodable(
                    f"json: cannot unmarshal {_json_type(value)} into Go struct field "
                    f"LeaseSpec.spec.{field} of type int32"
                )
            out[field] = value
    return out


def validate_lease(lease: Obj) -> None:
    """The lease registry's validation (422 Invalid, worded as the server words it)."""
    name = lease["metadata"]["name"]
    invalid = _KIND.format(name=name)
    if len(name) > 253 or not _NAME.match(name):
        raise err(
            422,
            f'{invalid}: metadata.name: Invalid value: "{name}": a lowercase RFC 1123 subdomain '
            "must consist of lower case alphanumeric characters, '-' or '.', and must start and "
            "end with an alphanumeric character",
        )
    spec = lease.get("spec") or {}
    duration, transitions = spec.get("leaseDurationSeconds"), spec.get("leaseTransitions")
    if duration is not None and duration <= 0:
        raise err(
            422,
            f"{invalid}: spec.leaseDurationSeconds: Invalid value: {duration}: must be greater "
            "than 0",
        )
    if transitions is not None and transitions < 0:
        raise err(
            422,
            f"{invalid}: spec.leaseTransitions: Invalid value: {transitions}: must be greater "
            "than or equal to 0",
        )
    if spec.get("preferredHolder") and not spec.get("strategy"):
        raise err(
            422,
            f"{invalid}: spec.preferredHolder: Forbidden: may only be specified if `strategy` "
            "is defined",
        )


def _decoded(body: Any) -> Obj:
    """The body as a Lease object, decoded (spec) and typed (kind, apiVersion)."""
    if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
        raise _undecodable("the body is not a Lease object")
    lease = copy.deepcopy(body)
    lease.setdefault("metadata", {})
    lease["spec"] = decode_spec(lease.get("spec"))
    lease["kind"], lease["apiVersion"] = "Lease", API_VERSION
    return lease


class LeaseStore(Store):
    """The lease half of the emulator: the Python-side helpers tests drive leases with (as
    another candidate or a controller would) and the request handling kubehttp calls."""

    # --- state, as tests and other leader-election candidates change it ---------------------

    def get_lease(self, namespace: str, name: str) -> Obj | None:
        with self._cond:
            lease = self._objects[LEASES].get((namespace, name))
            return copy.deepcopy(lease) if lease is not None else None

    def leases(self) -> list[Obj]:
        with self._cond:
            return [copy.deepcopy(x) for _, x in sorted(self._objects[LEASES].items())]

    def create_lease(self, lease: Obj, namespace: str | None = None) -> Obj:
        """Create as the API would (validated; times may be datetimes) but keep a given uid."""
        with self._cond:
            return self._create_lease(_decoded(lease), namespace, from_api=False)

    def update_lease(self, namespace: str, name: str, mutate: Callable[[Obj], Any]) -> Obj:
        """Change a lease through `mutate` (as another holder would), with no version check."""
        with self._cond:
            old = self._objects[LEASES].get((namespace, name))
            if old is None:
                raise KeyError(f"{namespace}/{name}")
            new = copy.deepcopy(old)
            mutate(new)
            return self._write_lease(old, _decoded(new))

    def delete_lease(self, namespace: str, name: str) -> Obj:
        with self._cond:
            return self._delete(namespace, name, None, LEASES)

    # --- request handling ----------------------------------------------------------------

    def _create_lease(self, lease: Obj, namespace: str | None, *, from_api: bool) -> Obj:
        meta = lease["metadata"]
        ns = namespace or meta.get("namespace") or "default"
        if meta.get("namespace") not in (None, ns):
            raise err(400, NAMESPACE_MISMATCH)
        meta["namespace"] = ns
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise err(
                    422,
                    f"{_KIND.format(name='')}: metadata.name: Required value: name or "
                    "generateName is required",
                )
            meta["name"] = meta["generateName"] + "".join(random.choices(_NAME_CHARS, k=5))
        if from_api:
            for system in ("uid", "creationTimestamp", "resourceVersion", "generation"):
                meta.pop(system, None)
        validate_lease(lease)
        if (ns, meta["name"]) in self._objects[LEASES]:
            raise ApiError(409, "AlreadyExists", f'leases.{GROUP} "{meta["name"]}" already exists')
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now())
        meta.pop("deletionTimestamp", None)
        meta.pop("deletionGracePeriodSeconds", None)
        return self._commit("ADDED", lease, None, LEASES)

    def _write_lease(self, old: Obj, new: Obj) -> Obj:
        validate_lease(dict(new, metadata=old["metadata"]))
        return self._store_update(old, new, LEASES)

    def lease_get(self, namespace: str, name: str) -> Obj:
        with self._cond:
            return copy.deepcopy(self._current(namespace, name, LEASES))

    def lease_create(self, namespace: str, body: Any) -> Obj:
        with self._cond:
            return self._create_lease(_decoded(body), namespace, from_api=True)

    def lease_replace(self, namespace: str, name: str, body: Any) -> tuple[int, Obj]:
        """PUT: an update that must carry the current resourceVersion (409 when stale, 422
        when missing), or a create (201) when there is no such lease."""
        lease = _decoded(body)
        with self._cond:
            old = self._objects[LEASES].get((namespace, name))
            if old is None:
                return 201, self._create_lease(lease, namespace, from_api=True)
            rv = lease["metadata"].get("resourceVersion")
            if not rv:
                raise err(
                    422,
                    f'leases.{GROUP} "{name}" is invalid: metadata.resourceVersion: Invalid '
                    "value: 0x0: must be specified for an update",
                )
            if rv != old["metadata"]["resourceVersion"]:
                raise conflict(name, resource=LEASES)
            return 200, self._write_lease(old, lease)

    def lease_patch(self, namespace: str, name: str, patcher: Patcher, body: Any) -> Obj:
        with self._cond:
            old = self._current(namespace, name, LEASES)
            new = patcher(copy.deepcopy(old), body)
            if not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
                raise err(422, "the patch did not produce an object")
            rv = new["metadata"].get("resourceVersion")
            if rv not in (None, old["metadata"]["resourceVersion"]):
                raise conflict(name, resource=LEASES)
            return self._write_lease(old, _decoded(new))

    def lease_delete(
        self, namespace: str, name: str, preconditions: dict[str, Any] | None
    ) -> dict[str, Any]:
        """A deleted lease is answered with a Success Status (the lease registry does not
        return the object); one held by finalizers comes back marked for deletion."""
        with self._cond:
            out = self._delete(namespace, name, preconditions, LEASES)
            if (namespace, name) in self._objects[LEASES]:
                return out
        details = {"name": name, "group": GROUP, "kind": LEASES, "uid": out["metadata"]["uid"]}
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details,
        }
