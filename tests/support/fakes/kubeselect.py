"""Selectors of the Kubernetes API emulator: label selectors (the set-based grammar of
apimachinery's labels.Parse) and field selectors (a fixed set of fields per resource)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from tests.support.fakes.kubelogic import Pod, Visible, err

# --- label selectors (the set-based grammar of apimachinery's labels.Parse) -----------------

_LABEL_TERM = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9._/-]+)\s*"
    r"(?:(?P<op>==|=|!=|>|<)\s*(?P<val>[A-Za-z0-9._-]*)"
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


def _compare(label: str | None, value: int, greater: bool) -> bool:
    """Gt/Lt: the label must exist and be an integer."""
    if label is None or not re.fullmatch(r"-?[0-9]+", label):
        return False
    return int(label) > value if greater else int(label) < value


def label_matcher(selector: str | None) -> Callable[[Pod], bool]:
    """A predicate for a labelSelector; raises ApiError(400) on a malformed one."""
    if not selector:
        return lambda _pod: True
    checks: list[Callable[[dict[str, str]], bool]] = []
    for term in _split_terms(selector):
        m = _LABEL_TERM.match(term)
        if not m or (m["neg"] and (m["op"] or m["setop"])):
            raise err(400, f"unable to parse requirement: {term!r}")
        key, op, val, setop = m["key"], m["op"], m["val"], m["setop"]
        if op in ("=", "=="):
            checks.append(lambda labels, k=key, v=val: labels.get(k) == v)
        elif op == "!=":
            checks.append(lambda labels, k=key, v=val: labels.get(k) != v)
        elif op in (">", "<"):
            if not re.fullmatch(r"-?[0-9]+", val):
                raise err(
                    400,
                    f"unable to parse requirement: for 'Gt', 'Lt' operators, "
                    f"the value must be an integer: {term!r}",
                )
            checks.append(
                lambda labels, k=key, v=int(val), gt=op == ">": _compare(labels.get(k), v, gt)
            )
        elif setop:
            values = {v.strip() for v in m["set"].split(",") if v.strip()}
            if not values:
                raise err(
                    400,
                    f"unable to parse requirement: for 'in', 'notin' "
                    f"operators, values set can't be empty: {term!r}",
                )
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


# --- field selectors (each resource supports a fixed set of fields) -----------------------

Getter = Callable[[Pod], str]
_META_FIELDS: dict[str, Getter] = {
    "metadata.name": lambda p: str(p.get("metadata", {}).get("name", "")),
    "metadata.namespace": lambda p: str(p.get("metadata", {}).get("namespace", "")),
}
_POD_FIELDS: dict[str, Getter] = {
    **_META_FIELDS,
    "spec.nodeName": lambda p: str(p.get("spec", {}).get("nodeName", "")),
    "spec.restartPolicy": lambda p: str(p.get("spec", {}).get("restartPolicy", "")),
    "spec.schedulerName": lambda p: str(p.get("spec", {}).get("schedulerName", "")),
    "spec.serviceAccountName": lambda p: str(p.get("spec", {}).get("serviceAccountName", "")),
    "spec.hostNetwork": lambda p: "true" if p.get("spec", {}).get("hostNetwork") else "false",
    "status.phase": lambda p: str((p.get("status") or {}).get("phase", "")),
    "status.podIP": lambda p: str((p.get("status") or {}).get("podIP", "")),
    "status.nominatedNodeName": lambda p: str((p.get("status") or {}).get("nominatedNodeName", "")),
}
# Resources without their own conversion (leases) know only the metadata fields, and say so
# as apimachinery's DefaultMetaV1FieldSelectorConversion does.
FIELDS: Mapping[str, dict[str, Getter]] = {"pods": _POD_FIELDS, "leases": _META_FIELDS}


def _unsupported(resource: str, field: str) -> str:
    if resource == "pods":
        return f"field label not supported: {field}"
    return f'"{field}" is not a known field selector: only "metadata.name", "metadata.namespace"'


def field_matcher(selector: str | None, resource: str = "pods") -> Callable[[Pod], bool]:
    """A predicate for a fieldSelector; unknown fields are a 400, as on a real server."""
    if not selector:
        return lambda _pod: True
    checks: list[Callable[[Pod], bool]] = []
    for term in selector.split(","):
        m = re.match(r"^\s*([A-Za-z.]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if not m:
            raise err(400, f"invalid selector: {term!r}")
        field, op, value = m.groups()
        getter = FIELDS[resource].get(field)
        if getter is None:
            raise err(400, _unsupported(resource, field))
        if op == "!=":
            checks.append(lambda p, g=getter, v=value: g(p) != v)
        else:
            checks.append(lambda p, g=getter, v=value: g(p) == v)
    return lambda pod: all(check(pod) for check in checks)


def object_filter(
    namespace: str | None, labels: str | None, fields: str | None, resource: str = "pods"
) -> Visible:
    """Whether an object is in the namespace (None: any) and matches both selectors."""
    by_labels, by_fields = label_matcher(labels), field_matcher(fields, resource)

    def visible(p: Pod | None) -> bool:
        if p is None or namespace not in (None, p["metadata"]["namespace"]):
            return False
        return by_labels(p) and by_fields(p)

    return visible
