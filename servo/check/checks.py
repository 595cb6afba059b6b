"""`servo check`: what the servo would do with the current configuration, one result per check.

Owns the configuration check, `run_checks` (every check in order, skipping those whose premise
failed), the exit status (EXIT_CODES: warnings and skips do not fail; a configuration error,
missing credentials and an unreachable API server each have their own) and the text and JSON
output. The checks themselves live in
kube.py (cluster access), backend.py (backend, outbox) and host.py (ports, cgroups).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from servo.check.backend import check_backend, check_outbox
from servo.check.host import NODE_SYS_ROOT, check_cgroups, check_port, node_sys_root
from servo.check.kube import (
    check_api_server,
    check_credentials,
    check_leases,
    check_namespace,
    check_rbac,
    check_token_reviews,
    scope_label,
)
from servo.check.result import Blocker, CheckResult, Status
from servo.core.errors import EXIT_CONFIG, EXIT_FAILED, ConfigError
from servo.system.cliflags import KubeFlags
from servo.system.config import DEFAULT_URL, Config, load_config

# CheckResult and Status are re-exported: run_checks' callers read its results with them.
__all__ = [
    "BACKEND_DEADLINE_S",
    "DEFAULT_TIMEOUT_S",
    "EXIT_API_UNREACHABLE",
    "EXIT_CODES",
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_NO_CREDENTIALS",
    "EXIT_OK",
    "Blocker",
    "CheckOptions",
    "CheckResult",
    "Status",
    "check_config",
    "exit_code",
    "render_json",
    "render_text",
    "run_checks",
    "summary",
]

EXIT_OK = 0
EXIT_NO_CREDENTIALS = 3
EXIT_API_UNREACHABLE = 4
# The exit statuses, most fundamental first: the first that applies is the one returned.
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (EXIT_CONFIG, "a setting or flag is wrong (servo run would refuse to start)"),
    (EXIT_NO_CREDENTIALS, "no Kubernetes credentials, or ones that cannot be used or are refused"),
    (EXIT_API_UNREACHABLE, "the API server cannot be reached (address, network, TLS)"),
    (EXIT_FAILED, "something else will not work (RBAC, a namespace, the backend, the outbox)"),
    (EXIT_OK, "everything the servo needs works (warnings allowed)"),
)
_EXIT_FOR = {
    Blocker.CONFIG: EXIT_CONFIG,
    Blocker.CREDENTIALS: EXIT_NO_CREDENTIALS,
    Blocker.UNREACHABLE: EXIT_API_UNREACHABLE,
}
DEFAULT_TIMEOUT_S = 3.0
# The HELLO gets this long, retries included (a connection refused is retried a few times).
BACKEND_DEADLINE_S = 2.0


@dataclass(frozen=True, slots=True)
class CheckOptions:
    kubeconfig: str | None = None
    # --context and --namespace (None: the kubeconfig's current context, POD_NAMESPACES).
    context: str | None = None
    namespaces: tuple[str, ...] | None = None
    # The host's /sys (on a node); None: NODE_SYS_ROOT when it exists, else the check is skipped.
    sys_root: Path | None = None
    # Also locate this pod's cgroup, as the monitor would.
    pod_uid: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    backend_deadline_s: float = BACKEND_DEADLINE_S
    default_sys_root: Path = field(default=NODE_SYS_ROOT)


def blockers(results: Sequence[CheckResult]) -> list[Blocker]:
    """The blockers among the failures, most fundamental first."""
    found = {r.blocker for r in results if r.status is Status.FAIL}
    return [b for b in _EXIT_FOR if b in found]


def exit_code(results: Sequence[CheckResult]) -> int:
    """The status of EXIT_CODES that applies first."""
    first = blockers(results)
    if first:
        return _EXIT_FOR[first[0]]
    return EXIT_FAILED if any(r.status is Status.FAIL for r in results) else EXIT_OK


# --- configuration -----------------------------------------------------------------------


def check_config(
    environ: Mapping[str, str], kubeconfig: str | None, *, flags: KubeFlags | None = None
) -> tuple[CheckResult, Config | None]:
    """Load the configuration exactly as `servo run` does."""
    try:
        cfg = load_config(environ, flags=flags or KubeFlags(kubeconfig=kubeconfig))
    except ConfigError as e:
        return (
            CheckResult(
                "configuration",
                Status.FAIL,
                f"{len(e.problems)} problem(s) in the settings",
                fix="set the variables and flags named above as they say (README: configuration)",
                notes=tuple(e.problems),
                blocker=Blocker.CONFIG,
            ),
            None,
        )
    scope = "all namespaces" if cfg.watch.all_namespaces else ", ".join(cfg.watch.namespaces)
    detail = f"valid: watching {scope}; backend {cfg.report.url_template}"
    if cfg.report.account:
        detail += f" (account {cfg.report.account})"
    return CheckResult("configuration", Status.OK, detail), cfg


# --- all of them --------------------------------------------------------------------------


def _skipped(names: Sequence[str], why: str) -> list[CheckResult]:
    return [CheckResult(n, Status.SKIP, why) for n in names]


def run_checks(environ: Mapping[str, str], opts: CheckOptions) -> list[CheckResult]:
    """Every check, in order: configuration, credentials, API server, namespaces and RBAC,
    leases, backend, outbox, ports, cgroups."""
    t = opts.timeout_s
    flags = KubeFlags(opts.kubeconfig, opts.context, opts.namespaces)
    config_result, cfg = check_config(environ, opts.kubeconfig, flags=flags)
    results = [config_result]
    creds_result, creds = check_credentials(opts.kubeconfig, environ, context=opts.context)
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
            why = (
                "no usable Kubernetes credentials"
                if creds is None
                else "the API server check failed"
            )
            names = [f"{kind} {scope_label(ns)}" for ns in scopes for kind in ("namespace", "RBAC")]
            names += [f"leases {lease_ns}"] if lease_ns else []
            results += _skipped([*names, "tokenreviews"], why)
        else:
            for ns in scopes:
                results.append(check_namespace(creds, ns, timeout_s=t))
                results.append(check_rbac(creds, ns, timeout_s=t))
            if lease_ns is not None:
                results.append(check_leases(creds, lease_ns, timeout_s=t))
            results.append(check_token_reviews(creds, timeout_s=t))
        results.append(
            check_backend(
                cfg.report,
                timeout_s=t,
                deadline_s=opts.backend_deadline_s,
                default_url=cfg.report.url_template == DEFAULT_URL,
            )
        )
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


_BLOCKED = {
    Blocker.CONFIG: "configuration error",
    Blocker.CREDENTIALS: "no usable Kubernetes credentials",
    Blocker.UNREACHABLE: "the API server cannot be reached",
}


def summary(results: Sequence[CheckResult]) -> str:
    failed = sum(r.status is Status.FAIL for r in results)
    warned = sum(r.status is Status.WARN for r in results)
    counts = f"{failed} failed, {warned} warning(s)"
    first = blockers(results)
    if first:
        named = [_BLOCKED[b] for b in first]
        creds = next((r for r in results if r.blocker is Blocker.CREDENTIALS), None)
        if creds is not None and creds.detail.startswith("no Kubernetes credentials"):
            named[first.index(Blocker.CREDENTIALS)] = "no Kubernetes credentials"
        it = "it" if len(named) == 1 else "them"
        return f"{' and '.join(named)}: fix {it} first ({counts})"
    if failed:
        return f"{counts}: the servo will not work as configured"
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
