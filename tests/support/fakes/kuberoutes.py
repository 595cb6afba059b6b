"""URL routing of the Kubernetes API emulator: which resource a path names, and the RBAC verb
of a request on it (what an authorizer would check).

Served: pods (core v1; namespaced and cluster-wide collections, `/status`), leases
(coordination.k8s.io/v1; likewise, no subresources) and selfsubjectaccessreviews
(authorization.k8s.io/v1; create only) and tokenreviews (authentication.k8s.io/v1; create only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TRUE = ("true", "True", "1")
# (path prefix, resource, subresources served)
_RESOURCES = (
    (["api", "v1"], "pods", ("status",)),
    (["apis", "coordination.k8s.io", "v1"], "leases", ()),
)
_SSAR_PATH = ["apis", "authorization.k8s.io", "v1", "selfsubjectaccessreviews"]
_TOKEN_REVIEW_PATH = ["apis", "authentication.k8s.io", "v1", "tokenreviews"]
# Cluster-scoped, create-only review resources, by path.
_REVIEWS = {
    tuple(_SSAR_PATH): "selfsubjectaccessreviews",
    tuple(_TOKEN_REVIEW_PATH): "tokenreviews",
}


@dataclass
class Route:
    namespace: str | None
    name: str | None
    subresource: str | None
    extra: dict[str, Any] = field(default_factory=dict)
    resource: str = "pods"


def route_of(path: str) -> Route | None:
    parts = [p for p in path.split("/") if p]
    review = _REVIEWS.get(tuple(parts))
    if review is not None:
        return Route(None, None, None, resource=review)
    for prefix, resource, _subs in _RESOURCES:
        if parts[: len(prefix)] != prefix:
            continue
        rest = parts[len(prefix) :]
        if rest == [resource]:
            return Route(None, None, None, resource=resource)
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] == resource:
            if len(rest) > 5:
                return None
            name = rest[3] if len(rest) > 3 else None
            sub = rest[4] if len(rest) > 4 else None
            return Route(rest[1], name, sub, resource=resource)
    return None


def verb_of(method: str, route: Route, query: dict[str, str]) -> str:
    """The RBAC verb of a request (what an authorizer would check); "" if not served."""
    if route.resource in _REVIEWS.values():
        return "create" if method == "POST" else ""
    subs = next(s for _p, r, s in _RESOURCES if r == route.resource)
    if route.subresource is not None and route.subresource not in subs:
        return ""
    if route.name is None:
        if route.subresource is not None:
            return ""
        if method == "GET":
            return "watch" if query.get("watch") in TRUE else "list"
        if method == "POST" and route.namespace is not None:
            return "create"
        return ""
    if route.subresource == "status" and method not in ("GET", "PUT", "PATCH"):
        return ""
    return {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, "")
