"""`servo check`: what the servo would do with the current configuration, one result per check.

Each check is a function returning a CheckResult (ok, warn, fail or skip, a one-line detail and,
for a problem, the fix); the evaluation is pure apart from the I/O each one names (an API call,
a POST, a bind, a directory listing). Every network call has a timeout of a few seconds.
`run_checks` runs them in order; `exit_code` is 2 for a configuration error, 1 when something
will not work, else 0 (warnings and skips do not fail).
"""

from __future__ import annotations

import json
import re
import socket
import tempfile
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from servo.config import Config, ReportConfig, load_config
from servo.errors import ConfigError, KubeError, ReportError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
DEFAULT_TIMEOUT_S = 3.0
# The HELLO gets this long, retries included (a connection refused is retried a few times).
BACKEND_DEADLINE_S = 2.0
# Where the monitor finds the host's /sys (mon's OPTUNE_SYS_ROOT default).
NODE_SYS_ROOT = Path("/rsys")
POD_VERBS = ("get", "list", "watch", "patch")
LEASE_VERBS = ("get", "create", "update")
LEASE_GROUP = "coordination.k8s.io"
ROLE_EXAMPLE = "example/svc-role.yaml"
CLUSTERROLE_EXAMPLE = "example/svc-clusterrole.yaml"
# Depth below a hierarchy root searched for kubepods (kind nests it: kubelet.slice/...).
KUBEPODS_MAX_DEPTH = 3
# Any pod's cgroup directory, in the cgroupfs or the systemd form.
POD_DIR_RE = re.compile(r"^pod[0-9a-fA-F-]{8,}$|-pod[0-9a-fA-F_]{8,}\.slice$")


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check: its name, status, a one-line detail and, for a problem, the fix."""

    name: str
    status: Status
    detail: str
    fix: str = ""
    # Extra lines (every configuration problem, the paths tried).
    notes: tuple[str, ...] = ()
    # A failure that `servo run` reports as a configuration error (exit 2).
    config_error: bool = False

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name, "status": str(self.status), "detail": self.detail}
        if self.fix:
            doc["fix"] = self.fix
        if self.notes:
            doc["notes"] = list(self.notes)
        return doc


@dataclass(frozen=True, slots=True)
class CheckOptions:
    kubeconfig: str | None = None
    # The host's /sys (on a node); None: NODE_SYS_ROOT when it exists, else the check is skipped.
    sys_root: Path | None = None
    # Also locate this pod's cgroup, as the monitor would.
    pod_uid: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    backend_deadline_s: float = BACKEND_DEADLINE_S
    default_sys_root: Path = field(default=NODE_SYS_ROOT)


def exit_code(results: Sequence[CheckResult]) -> int:
    failed = [r for r in results if r.status is Status.FAIL]
    if any(r.config_error for r in failed):
        return EXIT_CONFIG
    return EXIT_FAILED if failed else EXIT_OK


# --- configuration and credentials ---------------------------------------------------------


def check_config(
    environ: Mapping[str, str], kubeconfig: str | None
) -> tuple[CheckResult, Config | None]:
    """Load the configuration exactly as `servo run` does."""
    try:
        cfg = load_config(environ, kubeconfig=kubeconfig)
    except ConfigError as e:
        return (
            CheckResult(
                "configuration",
                Status.FAIL,
                f"{len(e.problems)} problem(s)",
                fix="set the variables named above as they say (README: configuration)",
                notes=tuple(e.problems),
                config_error=True,
            ),
            None,
        )
    scope = "all namespaces" if cfg.watch.all_namespaces else ", ".join(cfg.watch.namespaces)
    detail = f"valid: watching {scope}; backend {cfg.report.url_template}"
    if cfg.report.account:
        detail += f" (account {cfg.report.account})"
    return CheckResult("configuration", Status.OK, detail), cfg


def check_credentials(
    kubeconfig: str | None, environ: Mapping[str, str]
) -> tuple[CheckResult, Any | None]:
    """Load the Kubernetes credentials (servo.credentials); the KubeCredentials or None."""
    from servo.credentials import load_credentials

    try:
        creds = load_credentials(kubeconfig, environ, retries=0)
    except ConfigError as e:
        fix = (
            "pass --kubeconfig FILE, set KUBECONFIG, or set OPTUNE_KUBE_TOKEN_FILE or "
            "OPTUNE_KUBE_TOKEN_COMMAND with OPTUNE_KUBE_SERVER (README: credentials)"
        )
        result = CheckResult(
            "kube credentials", Status.FAIL, "; ".join(e.problems), fix=fix, config_error=True
        )
        return result, None
    return CheckResult("kube credentials", Status.OK, creds.detail), creds


# --- the API server ------------------------------------------------------------------------


def _kube_call(fn: Any, *args: Any, timeout_s: float, **kwargs: Any) -> Any:
    """Call one client method for its JSON body; errors as KubeError (0: not reached)."""
    import urllib3
    from kubernetes.client.exceptions import ApiException

    from servo.kube import kube_error_from_api

    try:
        resp = fn(*args, _preload_content=False, _request_timeout=(timeout_s, timeout_s), **kwargs)
        return json.loads(resp.data)
    except ApiException as e:
        raise kube_error_from_api(e) from e
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise KubeError(0, "ConnectionError", str(e)) from e
    except ValueError as e:
        raise KubeError(0, "BadResponse", f"not JSON: {e}") from e


_ERRNO_RE = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")


def short_transport_error(message: str) -> str:
    """The gist of a urllib3/requests connection error ("[Errno 111] Connection refused")."""
    if "CERTIFICATE_VERIFY_FAILED" in message:
        return "TLS certificate not trusted (CERTIFICATE_VERIFY_FAILED)"
    if "Failed to resolve" in message or "Name or service not known" in message:
        return "host name not resolved"
    if "timed out" in message.lower():
        return "timed out"
    found = _ERRNO_RE.search(message)
    return found.group(0).strip() if found else message[:200]


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


def check_api_server(creds: Any, *, timeout_s: float) -> CheckResult:
    """GET /version: the server answers, and which Kubernetes it is."""
    from kubernetes import client as k8s

    try:
        doc = _kube_call(k8s.VersionApi(creds.client).get_code, timeout_s=timeout_s)
    except KubeError as e:
        detail, fix = explain_kube_error(e, server=creds.server, source=creds.source)
        return CheckResult("API server", Status.FAIL, detail, fix=fix)
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


# --- the backend, the outbox, ports ---------------------------------------------------------


def backend_result(url: str, error: ReportError | None, *, has_token: bool) -> CheckResult:
    """Pure: the result of the HELLO (None: accepted)."""
    if error is None:
        return CheckResult("backend", Status.OK, f"{url} accepted a HELLO")
    if error.status in (401, 403):
        fix = (
            "set OPTUNE_AUTH_TOKEN to a token the backend accepts"
            if has_token
            else "OPTUNE_AUTH_TOKEN is not set, and the backend wants a token: set it"
        )
        return CheckResult(
            "backend",
            Status.FAIL,
            f"{url} refused the HELLO: HTTP {error.status} (wrong or missing token)",
            fix=fix,
        )
    if error.status is None:
        return CheckResult(
            "backend",
            Status.FAIL,
            f"cannot reach the backend at {url}: {short_transport_error(str(error))}",
            fix="check OPTUNE_URL (host and port), that the backend runs, and the network to it",
        )
    excerpt = f" ({error.body_excerpt.strip()[:120]})" if error.body_excerpt.strip() else ""
    if error.status == 404:
        fix = "check OPTUNE_URL's path and OPTUNE_ACCOUNT: the backend has no such URL"
    elif error.status >= 500 or error.status in (408, 429):
        fix = "the backend is failing or overloaded: see its logs, then check again"
    else:
        fix = "check OPTUNE_URL: the backend does not take the servo's protocol there"
    return CheckResult(
        "backend", Status.FAIL, f"{url} refused the HELLO: HTTP {error.status}{excerpt}", fix=fix
    )


def check_backend(report: ReportConfig, *, timeout_s: float, deadline_s: float) -> CheckResult:
    """POST a HELLO with an id of its own (check-<uuid>:HELLO), as the servo does at start."""
    import requests

    from servo.app import GLOBAL_APP_ID
    from servo.models import Event
    from servo.report import Reporter

    cfg = replace(
        report,
        timeout_s=min(report.timeout_s, timeout_s),
        max_backoff_s=min(report.max_backoff_s, 0.5),
    )
    url = cfg.url_for(GLOBAL_APP_ID)
    event = Event(
        id=f"check-{uuid.uuid4()}:HELLO",
        event="HELLO",
        app_id=GLOBAL_APP_ID,
        param={"account": report.account, "reason": "check"},
    )
    session = requests.Session()
    try:
        Reporter(cfg, session=session).send(event, deadline_s=deadline_s)
    except ReportError as e:
        return backend_result(url, e, has_token=bool(report.auth_token))
    finally:
        session.close()
    return backend_result(url, None, has_token=bool(report.auth_token))


def check_outbox(directory: str) -> CheckResult:
    """The outbox directory exists (or can be made) and takes a file."""
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".servo-check-") as f:
            f.write(b"check")
            f.flush()
    except OSError as e:
        return CheckResult(
            "outbox",
            Status.FAIL,
            f"{directory} is not writable: {e.strerror or e}",
            fix="point OPTUNE_OUTBOX_DIR at a writable directory (a volume, in a pod)",
        )
    return CheckResult("outbox", Status.OK, f"{directory} writable")


def check_port(name: str, env_name: str, bind: str, port: int) -> CheckResult:
    """Whether bind:port can be bound here (a warning only: the servo may run elsewhere)."""
    if port == 0:
        return CheckResult(name, Status.OK, f"{bind}: any free port ({env_name}=0)")
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((bind, port))
    except OSError as e:
        return CheckResult(
            name,
            Status.WARN,
            f"{bind}:{port} cannot be bound here: {e.strerror or e}",
            fix=f"another process holds it (a servo already running?); else set {env_name}",
        )
    return CheckResult(name, Status.OK, f"{bind}:{port} free")


# --- the node's cgroups ---------------------------------------------------------------------


def node_sys_root(given: Path | None, default: Path = NODE_SYS_ROOT) -> Path | None:
    """The host's /sys to look at: --sys-root, else /rsys when it exists, else None."""
    if given is not None:
        return given
    return default if default.is_dir() else None


def _subdirs(path: Path) -> list[Path]:
    try:
        children = sorted(path.iterdir())
    except OSError:
        return []
    return [c for c in children if c.is_dir() and not c.is_symlink()]


def find_kubepods(base: Path, *, max_depth: int = KUBEPODS_MAX_DEPTH) -> Path | None:
    """The kubelet's pods cgroup below `base`: `kubepods` (cgroupfs) or `*kubepods.slice`
    (systemd), breadth-first, at most `max_depth` levels down."""
    queue: deque[tuple[Path, int]] = deque([(base, 0)])
    while queue:
        here, depth = queue.popleft()
        if depth >= max_depth:
            continue
        for child in _subdirs(here):
            if child.name == "kubepods" or child.name.endswith("kubepods.slice"):
                return child
            if not POD_DIR_RE.search(child.name):
                queue.append((child, depth + 1))
    return None


def count_pod_dirs(kubepods: Path) -> int:
    """Pod cgroups directly below kubepods or one QoS level down."""
    count = 0
    for child in _subdirs(kubepods):
        if POD_DIR_RE.search(child.name):
            count += 1
        else:
            count += sum(1 for c in _subdirs(child) if POD_DIR_RE.search(c.name))
    return count


def check_cgroups(sys_root: Path | None, *, pod_uid: str | None = None) -> CheckResult:
    """The cgroup layout the monitor would find below <sys root>/fs/cgroup."""
    name = "cgroup layout"
    if sys_root is None:
        return CheckResult(
            name,
            Status.SKIP,
            f"not on a node: no --sys-root given and no {NODE_SYS_ROOT} (the monitor's mount "
            "of the host's /sys)",
        )
    try:
        from mon.cgroup_paths import V1_MEMORY_DIR, detect_version, find_pod_cgroup, v1_cpu_root
        from mon.errors import CgroupNotFoundError
    except ImportError as e:
        return CheckResult(name, Status.SKIP, f"the monitor's code is not installed here ({e})")
    cgroup_root = sys_root / "fs" / "cgroup"
    mount_fix = (
        "mount the host's /sys read-only at /rsys (hostPath /sys), or pass --sys-root with "
        "the host's /sys"
    )
    if not cgroup_root.is_dir():
        return CheckResult(name, Status.FAIL, f"no cgroup hierarchy at {cgroup_root}",
                           fix=mount_fix)  # fmt: skip
    version = detect_version(cgroup_root)
    base = cgroup_root if version == "v2" else cgroup_root / V1_MEMORY_DIR
    if version == "v1" and not base.is_dir():
        return CheckResult(
            name,
            Status.FAIL,
            f"cgroup v1 without a memory controller at {base}",
            fix="the monitor reads memory.* files: enable the memory controller on the node",
        )
    kubepods = find_kubepods(base)
    if kubepods is None:
        return CheckResult(
            name,
            Status.FAIL,
            f"cgroup {version}, but no kubepods or kubepods.slice below {base}: the monitor "
            "would find no pod cgroups",
            fix=f"run on a Kubernetes node; {mount_fix}; or set OPTUNE_CGROUP_PATH",
        )
    driver = "systemd" if kubepods.name.endswith(".slice") else "cgroupfs"
    detail = (
        f"cgroup {version}, {driver} driver: {kubepods} ({count_pod_dirs(kubepods)} pod cgroups)"
    )
    status, fix = Status.OK, ""
    if version == "v1" and not v1_cpu_root(cgroup_root).is_dir():
        status, fix = Status.WARN, "no cpuacct controller: jobs are measured without CPU time"
        detail += "; no cpuacct hierarchy"
    if pod_uid is not None:
        try:
            found = find_pod_cgroup(cgroup_root=cgroup_root, pod_uid=pod_uid)
        except CgroupNotFoundError as e:
            return CheckResult(
                name,
                Status.FAIL,
                f"{detail}; pod {pod_uid}: not found",
                fix="is the pod on this node and running? (kubectl get pod -o wide)",
                notes=e.tried,
            )
        detail += f"; pod {pod_uid}: {found.path}"
    return CheckResult(name, status, detail, fix=fix)


# --- all of them --------------------------------------------------------------------------


def _skipped(names: Sequence[str], why: str) -> list[CheckResult]:
    return [CheckResult(n, Status.SKIP, why) for n in names]


def run_checks(environ: Mapping[str, str], opts: CheckOptions) -> list[CheckResult]:
    """Every check, in order: configuration, credentials, API server, namespaces and RBAC,
    leases, backend, outbox, ports, cgroups."""
    t = opts.timeout_s
    config_result, cfg = check_config(environ, opts.kubeconfig)
    results = [config_result]
    creds_result, creds = check_credentials(opts.kubeconfig, environ)
    results.append(creds_result)
    api_ok = False
    if creds is not None:
        api_result = check_api_server(creds, timeout_s=t)
        results.append(api_result)
        api_ok = api_result.status is Status.OK
    if cfg is not None:
        scopes: list[str | None] = (
            [None] if cfg.watch.all_namespaces else list(cfg.watch.namespaces)
        )
        lease_ns = cfg.leader.namespace if cfg.leader.enabled else None
        if creds is None or not api_ok:
            why = "no credentials" if creds is None else "the API server check failed"
            names = [f"{kind} {scope_label(ns)}" for ns in scopes for kind in ("namespace", "RBAC")]
            results += _skipped(names + ([f"leases {lease_ns}"] if lease_ns else []), why)
        else:
            for ns in scopes:
                results.append(check_namespace(creds, ns, timeout_s=t))
                results.append(check_rbac(creds, ns, timeout_s=t))
            if lease_ns is not None:
                results.append(check_leases(creds, lease_ns, timeout_s=t))
        results.append(check_backend(cfg.report, timeout_s=t, deadline_s=opts.backend_deadline_s))
        results.append(check_outbox(cfg.report.outbox_dir))
        results.append(
            check_port("stats port", "OPTUNE_STATS_PORT", cfg.stats.bind, cfg.stats.port)
        )
        results.append(
            check_port("metrics port", "OPTUNE_METRICS_PORT", cfg.metrics.bind, cfg.metrics.port)
        )
    else:
        why = "the configuration is not valid"
        results += _skipped(["namespaces", "backend", "outbox", "ports"], why)
    results.append(
        check_cgroups(node_sys_root(opts.sys_root, opts.default_sys_root), pod_uid=opts.pod_uid)
    )
    return results


# --- output ---------------------------------------------------------------------------------

_MARK = {Status.OK: "OK", Status.WARN: "WARN", Status.FAIL: "FAIL", Status.SKIP: "SKIP"}


def summary(results: Sequence[CheckResult]) -> str:
    failed = sum(r.status is Status.FAIL for r in results)
    warned = sum(r.status is Status.WARN for r in results)
    code = exit_code(results)
    if code == EXIT_CONFIG:
        return f"configuration error: fix it first ({failed} failed, {warned} warning(s))"
    if code == EXIT_FAILED:
        return f"{failed} failed, {warned} warning(s): the servo will not work as configured"
    tail = f", {warned} warning(s)" if warned else ""
    return f"everything the servo needs works{tail}"


def render_text(results: Sequence[CheckResult]) -> str:
    width = max((len(r.name) for r in results), default=0)
    lines = []
    for r in results:
        lines.append(f"{_MARK[r.status]:<5} {r.name:<{width}}  {r.detail}")
        pad = " " * (6 + width + 2)
        lines += [f"{pad}- {note}" for note in r.notes]
        if r.fix and r.status in (Status.FAIL, Status.WARN):
            lines.append(f"{pad}fix: {r.fix}")
    lines.append(f"servo check: {summary(results)}")
    return "\n".join(lines) + "\n"


def render_json(results: Sequence[CheckResult]) -> str:
    code = exit_code(results)
    doc = {
        "ok": code == EXIT_OK,
        "exit_code": code,
        "summary": summary(results),
        "checks": [r.to_json() for r in results],
    }
    return json.dumps(doc, indent=2) + "\n"
