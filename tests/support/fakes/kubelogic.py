"""Pure parts of the Kubernetes API emulator: Status errors, selectors, patches, and the pod
registry's rules (create validation, QoS class, spec immutability, status subresource, how a
watcher with a selector sees a change).

Kept apart from the server so they can be tested by tables.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import jsonpatch

Pod = dict[str, Any]
Visible = Callable[[Pod | None], bool]  # is an object in a request's scope and selectors?
Patcher = Callable[[Any, Any], Any]


class ApiError(Exception):
    """An error the emulator answers with a Kubernetes Status body."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
NAMESPACE_MISMATCH = (
    "the namespace of the provided object does not match the namespace sent on the request"
)


def err(code: int, message: str) -> ApiError:
    """An ApiError with the reason the server gives for `code`."""
    return ApiError(code, REASONS.get(code, "InternalError"), message)


# Resources as the server names them in messages (resource.group; the core group is bare).
QUALIFIED = {"pods": "pods", "leases": "leases.coordination.k8s.io"}


def not_found(name: str, resource: str = "pods") -> ApiError:
    return err(404, f'{QUALIFIED[resource]} "{name}" not found')


def conflict(name: str, why: str = "", resource: str = "pods") -> ApiError:
    why = why or (
        "the object has been modified; please apply your changes to the latest version and "
        "try again"
    )
    return err(409, f'Operation cannot be fulfilled on {QUALIFIED[resource]} "{name}": {why}')


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


# --- patches ------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# Merge keys of the pod lists that strategic merge patch merges by key (from the Kubernetes
# API's patchMergeKey tags); lists not named here are replaced, as the server does.
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "ownerReferences": "uid",
    "conditions": "type",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "podIPs": "ip",
    "hostIPs": "ip",
    "schedulingGates": "name",
    "resourceClaims": "name",
    "topologySpreadConstraints": "topologyKey",
}
# Not here, so replaced whole as the server does: tolerations, containerStatuses,
# initContainerStatuses (no patchStrategy in the Kubernetes types).
# Primitive lists whose patch strategy is "merge" (union), e.g. metadata.finalizers.
_UNION_LISTS = {"finalizers"}


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Strategic merge patch for pods: merge-by-key lists, `$patch: delete|replace` and
    `$deleteFromPrimitiveList/<field>` directives; otherwise a JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: v for k, v in copy.deepcopy(patch).items() if k != "$patch"}
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            drop = set(value or [])
            result[field] = [v for v in result.get(field) or [] if v not in drop]
            continue
        if key.startswith("$"):
            continue
        if value is None or (isinstance(value, dict) and value.get("$patch") == "delete"):
            result.pop(key, None)
        elif isinstance(value, list) and key in _MERGE_KEYS:
            result[key] = _merge_keyed_list(result.get(key) or [], value, _MERGE_KEYS[key])
        elif isinstance(value, list) and key in _UNION_LISTS:
            current = list(result.get(key) or [])
            result[key] = current + [v for v in value if v not in current]
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _merge_keyed_list(current: list[Any], patch: list[Any], key: str) -> list[Any]:
    out = copy.deepcopy(current)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise err(400, f"list item lacks its merge key {key!r}")
        idx = next(
            (i for i, c in enumerate(out) if isinstance(c, dict) and c.get(key) == item[key]), None
        )
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
        elif idx is None:
            out.append({k: v for k, v in item.items() if k != "$patch"})
        else:
            out[idx] = strategic_merge_patch(out[idx], item)
    return out


def json_patch(target: Any, ops: Any) -> Any:
    """RFC 6902 JSON patch; a failed `test` or a bad path is a 422, a non-list body a 400."""
    if not isinstance(ops, list):
        raise err(400, "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    try:
        return jsonpatch.apply_patch(target, ops)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
        raise err(
            422, f"the server rejected our request due to an error in our request: {e}"
        ) from e


PATCHERS: dict[str, Patcher] = {
    "application/merge-patch+json": merge_patch,
    "application/strategic-merge-patch+json": strategic_merge_patch,
    "application/json-patch+json": json_patch,
}


# --- pod semantics of the registry (what the pod strategy enforces) -------------------------

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
# The spec fields a pod update may change (apiserver's ValidatePodUpdate).
_SPEC_UPDATABLE = (
    "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)


def validate_new_pod(pod: Pod) -> None:
    """What create validation rejects first: a bad name, no containers, a container without
    name or image (422 Invalid, as the server words it)."""
    name = pod["metadata"]["name"]
    if len(name) > 253 or not _NAME.match(name):
        raise err(
            422,
            f'Pod "{name}" is invalid: metadata.name: Invalid value: "{name}": a lowercase RFC '
            "1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
            "must start and end with an alphanumeric character",
        )
    containers = (pod.get("spec") or {}).get("containers")
    if not containers:
        raise err(422, f'Pod "{name}" is invalid: spec.containers: Required value')
    for i, c in enumerate(containers):
        for key in ("name", "image"):
            if not isinstance(c, dict) or not c.get(key):
                raise err(
                    422,
                    f'Pod "{name}" is invalid: spec.containers[{i}].{key}: Required value',
                )


def qos_class(pod: Pod) -> str:
    """The pod's QoS class, as the API server sets status.qosClass on create."""
    spec = pod.get("spec") or {}
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req, lim = dict(res.get("requests") or {}), dict(res.get("limits") or {})
        for k, v in lim.items():
            req.setdefault(k, v)  # requests default to limits
        requests.update({k: v for k, v in req.items() if k in ("cpu", "memory")})
        limits.update({k: v for k, v in lim.items() if k in ("cpu", "memory")})
        if any(lim.get(r) is None or str(lim.get(r)) != str(req.get(r)) for r in ("cpu", "memory")):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def check_spec_update(old: Pod, new: Pod) -> None:
    """A pod's spec is immutable but for images, activeDeadlineSeconds, added tolerations and
    the grace period (422 Forbidden otherwise, with the server's message)."""
    a, b = copy.deepcopy(old.get("spec") or {}), copy.deepcopy(new.get("spec") or {})
    for spec in (a, b):
        for kind in ("containers", "initContainers"):
            for c in spec.get(kind) or []:
                if isinstance(c, dict):
                    c.pop("image", None)
        spec.pop("activeDeadlineSeconds", None)
        spec.pop("terminationGracePeriodSeconds", None)
    old_tol, new_tol = a.pop("tolerations", None) or [], b.pop("tolerations", None) or []
    if a != b or any(t not in new_tol for t in old_tol):
        name = old["metadata"]["name"]
        raise err(
            422,
            f'Pod "{name}" is invalid: spec: Forbidden: pod updates may not change fields '
            f"other than {_SPEC_UPDATABLE}",
        )


def restrict(old: Pod, new: Pod, subresource: str | None) -> Pod:
    """The main resource ignores status changes; `/status` changes only status."""
    if subresource == "status":
        out = copy.deepcopy(old)
        out["status"] = copy.deepcopy(new.get("status") or {})
        return out
    new["status"] = copy.deepcopy(old.get("status") or {})
    return new


def as_seen(
    type_: str, obj: Pod, old: Pod | None, rv: int, visible: Callable[[Pod | None], bool]
) -> dict[str, Any] | None:
    """A change as a watcher with a selector sees it, as the watch cache converts it: an object
    entering the selector is ADDED; one leaving it, or deleted, is DELETED and carries its
    previous content with the new resourceVersion; an invisible change is None."""
    now = type_ != "DELETED" and visible(obj)
    before = old is not None and visible(old)
    if now:
        return {"type": "MODIFIED" if before else "ADDED", "object": obj}
    if before and old is not None:
        gone = dict(old, metadata=dict(old.get("metadata") or {}, resourceVersion=str(rv)))
        return {"type": "DELETED", "object": gone}
    return None
