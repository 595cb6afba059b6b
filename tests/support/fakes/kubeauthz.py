"""Authorization and discovery in the Kubernetes API emulator (pure parts).

- RBAC: the 403 message of a denied request; whether a deny() rule covers a question;
- SelfSubjectAccessReview (authorization.k8s.io/v1): the review answered from the deny() rules;
- discovery: /api (APIVersions), /apis (APIGroupList), /apis/{group} (APIGroup) and the
  APIResourceLists of /api/v1 and /apis/{group}/v1, for the resources the emulator serves.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from tests.support.fakes.kubelogic import err

# The API group of each resource the emulator authorizes.
GROUPS = {
    "pods": "",
    "leases": "coordination.k8s.io",
    "selfsubjectaccessreviews": "authorization.k8s.io",
    "tokenreviews": "authentication.k8s.io",
}
SSAR = "selfsubjectaccessreviews"


def forbidden(user: str, verb: str, resource: str, sub: str | None, ns: str | None) -> str:
    """The API server's message for an RBAC denial."""
    group = GROUPS.get(resource, "")
    qualified = f"{resource}.{group}" if group else resource
    where = f'in the namespace "{ns}"' if ns is not None else "at the cluster scope"
    asked = f"{resource}/{sub}" if sub else resource
    return (
        f'{qualified} is forbidden: User "{user}" cannot {verb} resource "{asked}" '
        f'in API group "{group}" {where}'
    )


def matches_denial(
    rule: tuple[str, str | None, str], verb: str, namespace: str | None, resource: str
) -> bool:
    """Whether deny() rule (verb, namespace, resource) covers a question; "*" asks for all."""
    r_verb, r_ns, r_resource = rule
    return verb in ("*", r_verb) and resource in ("*", r_resource) and (namespace or None) == r_ns


def _invalid(field: str, value: str, why: str) -> Exception:
    return err(
        422,
        f'SelfSubjectAccessReview.authorization.k8s.io "" is invalid: spec.{field}: '
        f"Invalid value: {value}: {why}",
    )


def self_review(body: Any, denied: Callable[[str, str | None, str], bool]) -> dict[str, Any]:
    """The SelfSubjectAccessReview the server answers (201): the object as sent, with status.
    Resource questions are answered from the deny() rules (`denied(verb, namespace,
    resource)`) when the group is the resource's own; everything else is allowed, as the
    emulator's user may do everything not denied. Non-resource questions are allowed."""
    if not isinstance(body, dict):
        raise err(400, "the body is not a SelfSubjectAccessReview object")
    spec = body.get("spec") or {}
    if not isinstance(spec, dict):
        raise err(400, "the body is not a SelfSubjectAccessReview object")
    attrs, non = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if attrs is not None and non is not None:
        raise _invalid(
            "nonResourceAttributes",
            "v1.NonResourceAttributes{...}",
            "cannot be specified in combination with resourceAttributes",
        )
    if attrs is None and non is None:
        raise _invalid(
            "resourceAttributes",
            '"null"',
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )
    allowed, reason = True, "RBAC: allowed by the emulator (no deny() rule matches)"
    if isinstance(attrs, dict):
        verb, resource = attrs.get("verb") or "", attrs.get("resource") or ""
        namespace, group = attrs.get("namespace") or None, attrs.get("group") or ""
        if group == GROUPS.get(resource, group) and denied(verb, namespace, resource):
            where = f'"{namespace}"' if namespace else "None"
            allowed = False
            reason = f'denied by the emulator: deny("{verb}", {where}, resource="{resource}")'
    out = copy.deepcopy(body)
    out.update(kind="SelfSubjectAccessReview", apiVersion="authorization.k8s.io/v1")
    out["metadata"] = {"creationTimestamp": None, **(out.get("metadata") or {})}
    out["spec"] = spec
    out["status"] = {"allowed": allowed, "reason": reason}
    return out


# --- discovery ----------------------------------------------------------------------------

# Only the verbs the emulator serves (no deletecollection).
_VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
RESOURCES: dict[str, list[dict[str, Any]]] = {
    "v1": [
        {
            "name": "pods",
            "singularName": "pod",
            "namespaced": True,
            "kind": "Pod",
            "verbs": _VERBS,
            "shortNames": ["po"],
            "categories": ["all"],
        },
        {
            "name": "pods/status",
            "singularName": "",
            "namespaced": True,
            "kind": "Pod",
            "verbs": ["get", "patch", "update"],
        },
    ],
    "coordination.k8s.io/v1": [
        {
            "name": "leases",
            "singularName": "lease",
            "namespaced": True,
            "kind": "Lease",
            "verbs": _VERBS,
        }
    ],
    "authentication.k8s.io/v1": [
        {
            "name": "tokenreviews",
            "singularName": "tokenreview",
            "namespaced": False,
            "kind": "TokenReview",
            "verbs": ["create"],
        }
    ],
    "authorization.k8s.io/v1": [
        {
            "name": SSAR,
            "singularName": "selfsubjectaccessreview",
            "namespaced": False,
            "kind": "SelfSubjectAccessReview",
            "verbs": ["create"],
        }
    ],
}


def _group(name: str) -> dict[str, Any]:
    version = {"groupVersion": f"{name}/v1", "version": "v1"}
    return {"name": name, "versions": [version], "preferredVersion": version}


def discovery(path: str, server_address: str) -> dict[str, Any] | None:
    """The discovery document at `path` (a trailing slash is the same), or None."""
    path = path.rstrip("/")
    if path == "/api":
        cidrs = [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": cidrs}
    groups = sorted(g for g in GROUPS.values() if g)
    if path == "/apis":
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(g) for g in groups]}
    for group in groups:
        if path == f"/apis/{group}":
            return {"kind": "APIGroup", "apiVersion": "v1", **_group(group)}
    for group_version, resources in RESOURCES.items():
        prefix = "/api" if group_version == "v1" else "/apis"
        if path == f"{prefix}/{group_version}":
            return {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": group_version,
                "resources": copy.deepcopy(resources),
            }
    return None
