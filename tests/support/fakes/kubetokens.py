"""TokenReview (authentication.k8s.io/v1) in the Kubernetes API emulator.

Tests mint tokens as the kubelet would get them for a projected `serviceAccountToken` volume:
bound to one pod (its name and uid end up in user.extra, as the API server puts them) and to
one audience, and expirable on demand (no clocks in tests). A review answers as the server
does: 201 with status.authenticated, the user and the audiences the token is good for.
"""

from __future__ import annotations

import copy
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from tests.support.fakes.kubelogic import err

POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name"
POD_UID_EXTRA = "authentication.kubernetes.io/pod-uid"
TOKEN_REVIEWS = "tokenreviews"


@dataclass
class _Minted:
    namespace: str
    service_account: str
    pod_name: str
    pod_uid: str
    audience: str
    expired: bool = False


class TokenAuthority:
    """The emulator's token issuer and reviewer; thread-safe."""

    def __init__(self) -> None:
        self._tokens: dict[str, _Minted] = {}
        self._lock = threading.Lock()
        self.reviews = 0

    def mint(self, pod: dict[str, Any], *, audience: str, service_account: str = "default") -> str:
        """A token bound to `pod` (its metadata name, namespace and uid) for `audience`."""
        meta = pod["metadata"]
        token = "emu." + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = _Minted(
                meta.get("namespace") or "default",
                service_account,
                meta["name"],
                meta["uid"],
                audience,
            )
        return token

    def expire(self, token: str) -> None:
        with self._lock:
            self._tokens[token].expired = True

    def review(self, body: Any) -> dict[str, Any]:
        spec = body.get("spec") if isinstance(body, dict) else None
        if not isinstance(spec, dict) or not isinstance(spec.get("token"), str):
            raise err(400, "the body is not a TokenReview object with spec.token")
        audiences = spec.get("audiences") or []
        with self._lock:
            self.reviews += 1
            minted = copy.copy(self._tokens.get(spec["token"]))
        out = copy.deepcopy(body)
        out.update(kind="TokenReview", apiVersion="authentication.k8s.io/v1")
        out["metadata"] = {"creationTimestamp": None}
        if minted is None or minted.expired:
            out["status"] = {"user": {}, "error": "[invalid bearer token, token has expired]"}
            return out
        if audiences and minted.audience not in audiences:
            why = f"token audiences [{minted.audience!r}] is invalid for the target audiences"
            out["status"] = {"user": {}, "error": f"[invalid bearer token, {why}]"}
            return out
        user = {
            "username": f"system:serviceaccount:{minted.namespace}:{minted.service_account}",
            "uid": "sa-" + minted.service_account,
            "groups": [
                "system:serviceaccounts",
                f"system:serviceaccounts:{minted.namespace}",
                "system:authenticated",
            ],
            "extra": {POD_NAME_EXTRA: [minted.pod_name], POD_UID_EXTRA: [minted.pod_uid]},
        }
        out["status"] = {"authenticated": True, "user": user, "audiences": [minted.audience]}
        return out
