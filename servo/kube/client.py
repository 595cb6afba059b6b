"""Thin Kubernetes access over the official client: load credentials, list pods, stream a watch.

Pods are read as bytes (`_preload_content=False`) and decoded by podwire: the client's model
objects cost tens of times more to build. This module parses and maps errors to KubeError;
what to do about them (relist, back off) is decided in servo/watch/loop.py.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from servo.core.errors import KubeError, WatchExpiredError
from servo.core.podstructs import WatchLine
from servo.core.podwire import DecodeError, decode_pod_list
from servo.kube.watch_stream import watch_lines

logger = logging.getLogger(__name__)

# Where a pod finds its service account (the client's in-cluster loader reads the same files).
SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
CONNECT_TIMEOUT_S = 10.0


def load_api_client(kubeconfig: str | None, environ: Mapping[str, str]) -> k8s.ApiClient:
    """Credentials per servo.kube.credentials: --kubeconfig, a token command, a token file, the
    in-cluster service account, then KUBECONFIG or ~/.kube/config."""
    from servo.kube.credentials import api_client_for

    return api_client_for(kubeconfig, environ)


@dataclass(frozen=True, slots=True)
class PodPage:
    items: list[WatchLine]  # each an ADDED line
    resource_version: str
    continue_token: str | None


def _status_message(body: Any) -> tuple[str, str]:
    """(reason, message) from a Kubernetes Status body, tolerating anything else."""
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", "replace")
    try:
        doc = json.loads(body) if isinstance(body, str) and body else {}
    except ValueError:
        return "", str(body)[:200]
    if not isinstance(doc, dict):
        return "", str(body)[:200]
    return str(doc.get("reason") or ""), str(doc.get("message") or "")


def kube_error_from_api(e: ApiException) -> KubeError:
    status = int(e.status or 0)
    reason, message = _status_message(e.body)
    if status == 410:
        return WatchExpiredError(message)
    return KubeError(status, reason or str(e.reason or ""), message)


def kube_error_from_status(obj: Any) -> KubeError:
    """An ERROR watch event's Status object -> our error (410 -> WatchExpiredError)."""
    obj = obj if isinstance(obj, dict) else {}
    code = obj.get("code")
    status = code if isinstance(code, int) else 0
    message = str(obj.get("message") or "")
    if status == 410:
        return WatchExpiredError(message)
    return KubeError(status, str(obj.get("reason") or "Error"), message)


# The claims the API server puts in user.extra for a token bound to a pod.
POD_UID_CLAIM = "authentication.kubernetes.io/pod-uid"
POD_NAME_CLAIM = "authentication.kubernetes.io/pod-name"


@dataclass(frozen=True, slots=True)
class TokenIdentity:
    """What a TokenReview said of a token: authenticated for the audience, and its pod."""

    authenticated: bool
    pod_uid: str = ""
    pod_name: str = ""
    username: str = ""
    error: str = ""


def _claim(extra: Any, key: str) -> str:
    values = extra.get(key) if isinstance(extra, dict) else None
    if isinstance(values, list) and len(values) == 1 and isinstance(values[0], str):
        return values[0]
    return ""


def identity_from_review(doc: Any, audience: str) -> TokenIdentity:
    """A TokenReview answer -> TokenIdentity; anything odd is "not authenticated"."""
    status = doc.get("status") if isinstance(doc, dict) else None
    if not isinstance(status, dict):
        return TokenIdentity(False, error="token review without a status")
    if status.get("authenticated") is not True:
        return TokenIdentity(False, error=str(status.get("error") or "not authenticated")[:200])
    audiences = status.get("audiences")
    if not isinstance(audiences, list) or audience not in audiences:
        return TokenIdentity(False, error=f"token is not for the audience {audience!r}")
    user = status.get("user")
    user = user if isinstance(user, dict) else {}
    extra = user.get("extra")
    return TokenIdentity(
        True,
        pod_uid=_claim(extra, POD_UID_CLAIM),
        pod_name=_claim(extra, POD_NAME_CLAIM),
        username=str(user.get("username") or "")[:200],
    )


class KubeClient:
    """List and watch pods in one namespace or (namespace None) the whole cluster."""

    def __init__(self, api: k8s.ApiClient, *, whole_pods: bool = True) -> None:
        self.api = api
        self.core = k8s.CoreV1Api(api)
        self.auth = k8s.AuthenticationV1Api(api)
        # Keep each pod's whole JSON (`doc`) besides its typed Struct: needed when the app-id
        # path reaches outside the typed fields. The Servo sets it from its configuration.
        self.whole_pods = whole_pods
        self._open: set[Any] = set()
        self._lock = threading.Lock()

    def _list_call(self, namespace: str | None, kwargs: dict[str, Any]) -> Any:
        """The list endpoint of the scope; with _preload_content=False it returns the raw
        urllib3 response, not a model."""
        if namespace is None:
            return self.core.list_pod_for_all_namespaces(**kwargs)
        return self.core.list_namespaced_pod(namespace, **kwargs)

    def list_pods(
        self, namespace: str | None, *, limit: int, continue_token: str | None = None
    ) -> PodPage:
        """One page of pods (decoded by podwire), with the list's resourceVersion."""
        kwargs: dict[str, Any] = {"limit": limit, "_preload_content": False}
        if continue_token:
            kwargs["_continue"] = continue_token
        kwargs["_request_timeout"] = (CONNECT_TIMEOUT_S, 60.0)
        try:
            resp = self._list_call(namespace, kwargs)
            items, rv, token = decode_pod_list(resp.data, whole=self.whole_pods)
        except ApiException as e:
            raise kube_error_from_api(e) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise KubeError(0, "ConnectionError", str(e)) from e
        except DecodeError as e:
            raise KubeError(0, "BadResponse", str(e)) from e
        return PodPage(items=items, resource_version=rv, continue_token=token)

    def stream_watch(
        self,
        namespace: str | None,
        *,
        resource_version: str,
        timeout_s: int,
        idle_timeout_s: float,
    ) -> Iterator[WatchLine]:
        """Watch pods from `resource_version`; yield each event decoded by podwire.

        Ends when the server ends the stream (timeoutSeconds). Connection problems, a dead
        stream (no byte for `idle_timeout_s`) and undecodable lines raise KubeError(0, ...).
        """
        kwargs: dict[str, Any] = {
            "watch": True,
            "resource_version": resource_version,
            "allow_watch_bookmarks": True,
            "timeout_seconds": timeout_s,
            "_preload_content": False,
            "_request_timeout": (CONNECT_TIMEOUT_S, idle_timeout_s),
        }
        try:
            resp = self._list_call(namespace, kwargs)
        except ApiException as e:
            raise kube_error_from_api(e) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise KubeError(0, "ConnectionError", str(e)) from e
        with self._lock:
            self._open.add(resp)
        try:
            yield from watch_lines(resp, whole=self.whole_pods)
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise KubeError(0, "StreamBroken", str(e)) from e
        finally:
            with self._lock:
                self._open.discard(resp)
            # Closed, not returned to the pool: the body may be unread, or read past
            # http.client's back (watch_stream.py); a watch reconnects rarely anyway.
            resp.close()
            resp.release_conn()

    def patch_pod(
        self, namespace: str, name: str, body: Any, *, content_type: str
    ) -> dict[str, Any]:
        """Patch one pod (merge, strategic or JSON patch); the patched pod as a dict."""
        try:
            resp: Any = self.core.patch_namespaced_pod(
                name,
                namespace,
                body,
                _content_type=content_type,
                _preload_content=False,
                _request_timeout=(CONNECT_TIMEOUT_S, 30.0),
            )
            doc = json.loads(resp.data)
        except ApiException as e:
            raise kube_error_from_api(e) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise KubeError(0, "ConnectionError", str(e)) from e
        except ValueError as e:
            raise KubeError(0, "BadResponse", f"patched pod is not JSON: {e}") from e
        return doc if isinstance(doc, dict) else {}

    def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        """One pod as a dict; None when it does not exist (any more)."""
        try:
            resp: Any = self.core.read_namespaced_pod(
                name,
                namespace,
                _preload_content=False,
                _request_timeout=(CONNECT_TIMEOUT_S, 30.0),
            )
            doc = json.loads(resp.data)
        except ApiException as e:
            if e.status == 404:
                return None
            raise kube_error_from_api(e) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise KubeError(0, "ConnectionError", str(e)) from e
        except ValueError as e:
            raise KubeError(0, "BadResponse", f"pod is not JSON: {e}") from e
        return doc if isinstance(doc, dict) else None

    def review_token(self, token: str, *, audience: str) -> TokenIdentity:
        """Ask the API server who a bearer token is (TokenReview, authentication.k8s.io/v1),
        for `audience` only; KubeError when the review itself fails (RBAC, connection)."""
        body = k8s.V1TokenReview(
            api_version="authentication.k8s.io/v1",
            kind="TokenReview",
            spec=k8s.V1TokenReviewSpec(token=token, audiences=[audience]),
        )
        try:
            resp: Any = self.auth.create_token_review(
                body, _preload_content=False, _request_timeout=(CONNECT_TIMEOUT_S, 10.0)
            )
            doc = json.loads(resp.data)
        except ApiException as e:
            raise kube_error_from_api(e) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise KubeError(0, "ConnectionError", str(e)) from e
        except (ValueError, RecursionError) as e:
            raise KubeError(0, "BadResponse", "token review is not JSON") from e
        return identity_from_review(doc, audience)

    def close_streams(self) -> None:
        """Shut every open watch stream (at shutdown), so blocked reads return at once."""
        with self._lock:
            streams = list(self._open)
        for resp in streams:
            try:
                resp.shutdown()
            except Exception:  # noqa: BLE001 - best effort at shutdown
                logger.debug("stream shutdown failed", exc_info=True)
