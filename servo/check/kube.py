"""The Kubernetes checks of `servo check`: credentials, the API server, each watched namespace,
RBAC on pods and leases (SelfSubjectAccessReview), and the fix for each API error.

Each check makes its calls with a timeout of a few seconds and returns a CheckResult; the order
they run in, and what is skipped when one fails, is servo/check/checks.py's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from servo.check.result import Blocker, CheckResult, Status, short_transport_error
from servo.core.errors import ConfigError, KubeError

POD_VERBS = ("get", "list", "watch", "patch")
LEASE_VERBS = ("get", "create", "update")
LEASE_GROUP = "coordination.k8s.io"
ROLE_EXAMPLE = "example/svc-role.yaml"
CLUSTERROLE_EXAMPLE = "example/svc-clusterrole.yaml"
TOKEN_REVIEW_GROUP = "authentication.k8s.io"
TOKEN_REVIEW_EXAMPLE = "example/svc-tokenreview.yaml"


NO_CREDENTIALS_FIX = (
    "outside a cluster: pass --kubeconfig FILE or set KUBECONFIG (kubectl's file will do; "
    "--context picks one of its contexts), or set OPTUNE_KUBE_TOKEN_FILE or "
    "OPTUNE_KUBE_TOKEN_COMMAND with OPTUNE_KUBE_SERVER; in a cluster the pod's service account "
    "is used (README: credentials)"
)


def check_credentials(
    kubeconfig: str | None, environ: Mapping[str, str], *, context: str | None = None
) -> tuple[CheckResult, Any | None]:
    """Load the Kubernetes credentials (servo.kube.credentials); the KubeCredentials or None.
    None found at all and found but unusable are told apart: one needs something given, the
    other something fixed."""
    from servo.kube.credentials import NoCredentialsError, load_credentials

    name = "kube credentials"
    try:
        creds = load_credentials(kubeconfig, environ, context=context, retries=0)
    except NoCredentialsError as e:
        detail = "; ".join(e.problems)
        return CheckResult(
            name, Status.FAIL, detail, fix=NO_CREDENTIALS_FIX, blocker=Blocker.CREDENTIALS
        ), None
    except ConfigError as e:
        detail = f"cannot use them: {'; '.join(e.problems)}"
        fix = "correct the file, flag or variable named above (README: credentials)"
        return CheckResult(name, Status.FAIL, detail, fix=fix, blocker=Blocker.CREDENTIALS), None
    return CheckResult(name, Status.OK, creds.detail), creds


# --- the API server ------------------------------------------------------------------------


def _kube_call(fn: Any, *args: Any, timeout_s: float, **kwargs: Any) -> Any:
    """Call one client method for its JSON body; errors as KubeError (0: not reached)."""
    import urllib3
    from kubernetes.client.exceptions import ApiException

    from servo.kube.client import kube_error_from_api

    try:
        resp = fn(*args, _preload_content=False, _request_timeout=(timeout_s, timeout_s), **kwargs)
        return json.loads(resp.data)
    except ApiException as e:
        raise kube_error_from_api(e) from e
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise KubeError(0, "ConnectionError", str(e)) from e
    except ValueError as e:
        raise KubeError(0, "BadResponse", f"not JSON: {e}") from e


def explain_kube_error(e: KubeError, *, server: str, source: str) -> tuple[str, str]:
    """(detail, fix) for an API error, by status and credential source."""
    if e.reason == "TokenCommandFailed":
        return e.message, "fix OPTUNE_KUBE_TOKEN_COMMAND so that it prints a token"
    if e.status == 0:
        gist = short_transport_error(e.message) if e.message else e.reason
        detail = f"cannot reach the API server at {server}: {gist}"
        if "CERTIFICATE_VERIFY_FAILED" in e.message:
            return detail, (
                "the server's certificate is not trusted: set OPTUNE_KUBE_CA_FILE to the "
                "cluster's CA (or certificate-authority in the kubeconfig)"
            )
        where = "OPTUNE_KUBE_SERVER" if source.startswith("token") else "the kubeconfig's server"
        return detail, f"check {where} and the network path to it (VPN, firewall, proxy)"
    if e.status == 401:
        fixes = {
            "kubeconfig": "the kubeconfig's credentials are wrong or expired: log in again or "
            "put a fresh token in it (kubectl create token servo -n servo)",
            "token-file": "OPTUNE_KUBE_TOKEN_FILE holds a token this server does not accept "
            "(expired, or for another cluster)",
            "token-command": "the token OPTUNE_KUBE_TOKEN_COMMAND prints is refused: is it for "
            "this cluster (OPTUNE_KUBE_SERVER)?",
            "in-cluster": "the service account's token is refused: was the ServiceAccount "
            "deleted and re-created?",
        }
        detail = "401 Unauthorized: the API server does not accept these credentials"
        return detail, fixes.get(source, fixes["kubeconfig"])
    detail = f"{e.status} {e.reason}: {e.message}" if e.message else f"{e.status} {e.reason}"
    if e.status == 403:
        return detail, f"grant the servo's identity what it lacks ({ROLE_EXAMPLE})"
    return detail, "see the API server's answer above"


def api_blocker(e: KubeError) -> Blocker:
    """Not reached (status 0): unreachable; refused credentials: credentials; else none."""
    if e.status == 401 or e.reason == "TokenCommandFailed":
        return Blocker.CREDENTIALS
    return Blocker.UNREACHABLE if e.status == 0 else Blocker.NONE


def check_api_server(creds: Any, *, timeout_s: float) -> CheckResult:
    """GET /version: the server answers, and which Kubernetes it is."""
    from kubernetes import client as k8s

    try:
        doc = _kube_call(k8s.VersionApi(creds.client).get_code, timeout_s=timeout_s)
    except KubeError as e:
        detail, fix = explain_kube_error(e, server=creds.server, source=creds.source)
        return CheckResult("API server", Status.FAIL, detail, fix=fix, blocker=api_blocker(e))
    version = doc.get("gitVersion") if isinstance(doc, dict) else None
    return CheckResult(
        "API server", Status.OK, f"{creds.server} reachable, Kubernetes {version or '(unknown)'}"
    )


def scope_label(namespace: str | None) -> str:
    return "cluster-wide" if namespace is None else namespace


def check_namespace(creds: Any, namespace: str | None, *, timeout_s: float) -> CheckResult:
    """List one pod in the namespace (or cluster-wide), as the watch's first list does."""
    from kubernetes import client as k8s

    core = k8s.CoreV1Api(creds.client)
    name = f"namespace {scope_label(namespace)}"
    try:
        if namespace is None:
            doc = _kube_call(core.list_pod_for_all_namespaces, limit=1, timeout_s=timeout_s)
        else:
            doc = _kube_call(core.list_namespaced_pod, namespace, limit=1, timeout_s=timeout_s)
    except KubeError as e:
        detail, fix = explain_kube_error(e, server=creds.server, source=creds.source)
        if e.status == 403:
            fix = rbac_fix(namespace, ["list"])
        return CheckResult(name, Status.FAIL, f"cannot list pods: {detail}", fix=fix)
    return CheckResult(name, Status.OK, f"pods listed ({_pod_count(doc)})")


def _pod_count(doc: Any) -> str:
    items = doc.get("items") if isinstance(doc, dict) else None
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    shown = len(items) if isinstance(items, list) else 0
    more = meta.get("remainingItemCount") if isinstance(meta, dict) else None
    if isinstance(more, int):
        return f"{shown + more} pod(s)"
    if isinstance(meta, dict) and meta.get("continue"):
        return "more than 1 pod"
    return f"{shown} pod(s)"


def access_review(
    creds: Any,
    *,
    verb: str,
    resource: str,
    namespace: str | None,
    group: str = "",
    timeout_s: float,
) -> bool:
    """Ask the API server whether this identity may `verb` `resource` (SelfSubjectAccessReview).
    Raises KubeError when the question cannot be asked."""
    from kubernetes import client as k8s

    attrs: dict[str, str] = {"verb": verb, "resource": resource, "group": group}
    if namespace is not None:
        attrs["namespace"] = namespace
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attrs},
    }
    api = k8s.AuthorizationV1Api(creds.client)
    doc = _kube_call(api.create_self_subject_access_review, body, timeout_s=timeout_s)
    status = doc.get("status") if isinstance(doc, dict) else None
    return isinstance(status, dict) and status.get("allowed") is True


def rbac_fix(namespace: str | None, missing: Sequence[str]) -> str:
    verbs = ", ".join(missing)
    if namespace is None:
        return (
            f"grant {verbs} on pods cluster-wide to the servo's identity: a ClusterRole and "
            f"ClusterRoleBinding as in {CLUSTERROLE_EXAMPLE} (kubectl apply -f "
            f"{CLUSTERROLE_EXAMPLE})"
        )
    return (
        f"grant {verbs} on pods in namespace {namespace} to the servo's identity: a Role and "
        f"RoleBinding in {namespace} as in {ROLE_EXAMPLE} (kubectl apply -f {ROLE_EXAMPLE})"
    )


def rbac_result(
    name: str, what: str, answers: Mapping[str, bool], fix_for: Any, unasked: str = ""
) -> CheckResult:
    """Pure: the result of the access reviews `answers` (verb -> allowed)."""
    if unasked:
        return CheckResult(
            name,
            Status.WARN,
            f"cannot ask the API server ({unasked}); {what} not verified",
            fix="allow SelfSubjectAccessReview (every authenticated user may, by default)",
        )
    missing = [v for v, ok in answers.items() if not ok]
    if missing:
        return CheckResult(
            name, Status.FAIL, f"not allowed: {', '.join(missing)} on {what}", fix=fix_for(missing)
        )
    return CheckResult(name, Status.OK, f"{', '.join(answers)} on {what} allowed")


def check_rbac(creds: Any, namespace: str | None, *, timeout_s: float) -> CheckResult:
    """get, list, watch and patch on pods in the namespace (cluster-wide for None)."""
    where = "cluster-wide" if namespace is None else f'in namespace "{namespace}"'
    answers: dict[str, bool] = {}
    try:
        for verb in POD_VERBS:
            answers[verb] = access_review(
                creds, verb=verb, resource="pods", namespace=namespace, timeout_s=timeout_s
            )
    except KubeError as e:
        return rbac_result(f"RBAC {scope_label(namespace)}", "", {}, None, unasked=str(e))
    return rbac_result(
        f"RBAC {scope_label(namespace)}",
        f"pods {where}",
        answers,
        lambda missing: rbac_fix(namespace, missing),
    )


def check_leases(creds: Any, namespace: str, *, timeout_s: float) -> CheckResult:
    """get, create and update on leases.coordination.k8s.io in the leader-election namespace."""
    answers: dict[str, bool] = {}
    name = f"leases {namespace}"
    try:
        for verb in LEASE_VERBS:
            answers[verb] = access_review(
                creds,
                verb=verb,
                resource="leases",
                group=LEASE_GROUP,
                namespace=namespace,
                timeout_s=timeout_s,
            )
    except KubeError as e:
        return rbac_result(name, "", {}, None, unasked=str(e))

    def fix(missing: Sequence[str]) -> str:
        return (
            f"leader election (OPTUNE_LEADER_ELECTION=true) needs {', '.join(missing)} on "
            f"leases.{LEASE_GROUP} in namespace {namespace}: a Role with apiGroups "
            f'["{LEASE_GROUP}"], resources ["leases"], verbs [get, create, update] in '
            f"{namespace}, bound to the servo's service account (or set "
            "OPTUNE_LEADER_NAMESPACE)"
        )

    return rbac_result(name, f'leases.{LEASE_GROUP} in namespace "{namespace}"', answers, fix)


def check_token_reviews(creds: Any, *, timeout_s: float) -> CheckResult:
    """create on tokenreviews: how the stats receiver checks a monitor's POST credential.

    Missing is a warning, not a failure: the termination message still carries the stats."""
    name = "tokenreviews"
    try:
        allowed = access_review(
            creds,
            verb="create",
            resource="tokenreviews",
            group=TOKEN_REVIEW_GROUP,
            namespace=None,
            timeout_s=timeout_s,
        )
    except KubeError as e:
        return rbac_result(name, "", {}, None, unasked=str(e))
    if allowed:
        return CheckResult(name, Status.OK, f"create on tokenreviews.{TOKEN_REVIEW_GROUP} allowed")
    return CheckResult(
        name,
        Status.WARN,
        f"not allowed: create on tokenreviews.{TOKEN_REVIEW_GROUP}; monitors' POSTs will get 503 "
        "and only their termination messages will carry stats",
        fix=f"kubectl apply -f {TOKEN_REVIEW_EXAMPLE} (a ClusterRole with create on "
        "tokenreviews, bound to the servo's service account)",
    )
