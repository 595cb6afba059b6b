"""Pure parts of the Kubernetes API emulator: selectors, patches, Status bodies.

Kept apart from the HTTP server so they can be tested by tables, and so the server module
reads as protocol handling only.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import jsonpatch

Pod = dict[str, Any]


class ApiError(Exception):
    """An error the emulator answers with a Kubernetes Status body."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


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


# --- label selectors (the set-based grammar of apimachinery's labels.Parse) -----------------

_LABEL_TERM = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9._/-]+)\s*"
    r"(?:(?P<op>==|=|!=)\s*(?P<val>[A-Za-z0-9._-]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<set>[^)]*)\))?\s*$"
)


def _split_terms(selector: str) -> list[str]:
    """Split on commas that are not inside the parentheses of an `in (...)` set."""
    terms, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    terms.append(cur)
    return [t for t in terms if t.strip()]


def label_matcher(selector: str | None) -> Callable[[Pod], bool]:
    """A predicate for a labelSelector; raises ApiError(400) on a malformed one."""
    if not selector:
        return lambda _pod: True
    checks: list[Callable[[dict[str, str]], bool]] = []
    for term in _split_terms(selector):
        m = _LABEL_TERM.match(term)
        if not m or (m["neg"] and (m["op"] or m["setop"])):
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {term!r}")
        key, op, val, setop = m["key"], m["op"], m["val"], m["setop"]
        if op in ("=", "=="):
            checks.append(lambda labels, k=key, v=val: labels.get(k) == v)
        elif op == "!=":
            checks.append(lambda labels, k=key, v=val: labels.get(k) != v)
        elif setop:
            values = {v.strip() for v in m["set"].split(",") if v.strip()}
            if setop == "in":
                checks.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                checks.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
        elif m["neg"]:
            checks.append(lambda labels, k=key: k not in labels)
        else:
            checks.append(lambda labels, k=key: k in labels)

    def match(pod: Pod) -> bool:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        return all(check(labels) for check in checks)

    return match


# --- field selectors (pods support a fixed set of fields) ---------------------------------

_POD_FIELDS: dict[str, Callable[[Pod], str]] = {
    "metadata.name": lambda p: str(p.get("metadata", {}).get("name", "")),
    "metadata.namespace": lambda p: str(p.get("metadata", {}).get("namespace", "")),
    "spec.nodeName": lambda p: str(p.get("spec", {}).get("nodeName", "")),
    "spec.restartPolicy": lambda p: str(p.get("spec", {}).get("restartPolicy", "")),
    "spec.schedulerName": lambda p: str(p.get("spec", {}).get("schedulerName", "")),
    "spec.serviceAccountName": lambda p: str(p.get("spec", {}).get("serviceAccountName", "")),
    "status.phase": lambda p: str((p.get("status") or {}).get("phase", "")),
    "status.podIP": lambda p: str((p.get("status") or {}).get("podIP", "")),
    "status.nominatedNodeName": lambda p: str(
        (p.get("status") or {}).get("nominatedNodeName", "")),
}


def field_matcher(selector: str | None) -> Callable[[Pod], bool]:
    """A predicate for a fieldSelector; unknown fields are a 400, as on a real server."""
    if not selector:
        return lambda _pod: True
    checks: list[Callable[[Pod], bool]] = []
    for term in selector.split(","):
        m = re.match(r"^\s*([A-Za-z.]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if not m:
            raise ApiError(400, "BadRequest", f"invalid selector: {term!r}")
        field, op, value = m.groups()
        getter = _POD_FIELDS.get(field)
        if getter is None:
            raise ApiError(
                400, "BadRequest",
                f'field label not supported: {field}',
            )
        if op == "!=":
            checks.append(lambda p, g=getter, v=value: g(p) != v)
        else:
            checks.append(lambda p, g=getter, v=value: g(p) == v)
    return lambda pod: all(check(pod) for check in checks)


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
    "ports": "containerPort",
    "ownerReferences": "uid",
    "conditions": "type",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
    "tolerations": "key",
    "imagePullSecrets": "name",
}
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
        if value is None:
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
            raise ApiError(400, "BadRequest", f"list item lacks its merge key {key!r}")
        idx = next((i for i, c in enumerate(out) if isinstance(c, dict)
                    and c.get(key) == item[key]), None)
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
        raise ApiError(400, "BadRequest",
                       "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    try:
        return jsonpatch.apply_patch(target, ops)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
        raise ApiError(422, "Invalid", f"the server rejected our request due to an error in "
                                        f"our request: {e}") from e


PATCHERS: dict[str, Callable[[Any, Any], Any]] = {
    "application/merge-patch+json": merge_patch,
    "application/strategic-merge-patch+json": strategic_merge_patch,
    "application/json-patch+json": json_patch,
}
