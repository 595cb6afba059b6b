"""Configuration: one typed, frozen object built from the environment and validated at start.

`load_config(environ)` is the only reader of the environment. It collects every problem and
raises one ConfigError listing them all. Names, meanings and defaults follow the original servo.
"""

from __future__ import annotations

import os
import socket
import string
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from servo.core import settings as S
from servo.core.appid import AppIdQuery, parse_app_id_query
from servo.core.envread import EnvReader, is_dns_label, is_http_url, is_ip_address
from servo.core.errors import ConfigError
from servo.core.models import DEFAULT_MONITOR_NAME
from servo.system.cliflags import KubeFlags
from servo.system.config_sections import (
    ALL_INTERFACES,
    ALL_NAMESPACES,
    DEFAULT_LEADER_LEASE,
    DEFAULT_LEADER_NAMESPACE,
    GuardConfig,
    LeaderSettings,
    MetricsConfig,
    ReportConfig,
    StatsConfig,
    WatchConfig,
)
from servo.system.secretfile import SecretFile, SecretFileError, check_secret_text

URL_PLACEHOLDERS = frozenset({"acct", "app_id"})
# The bundled collector as example/collector.yaml deploys it (the original's hosted default no
# longer exists); its account is DEFAULT_ACCOUNT unless OPTUNE_ACCOUNT says otherwise.
DEFAULT_URL = "http://servo-collector.servo.svc:8090/accounts/{acct}/applications/{app_id}/servo"
DEFAULT_ACCOUNT = "default"
# The project's monitor image, injected by the webhook; a plain pause image is still allowed.
DEFAULT_SLEEPER_IMAGE = "ghcr.io/example/k8s-job-servo-mon:0.1.0"
DEFAULT_APP_ID = "spec/containers/0/env/[JOBID]"
LOG_FORMATS = ("json", "text")
AUTH_TOKEN_ENV = "OPTUNE_AUTH_TOKEN"
# Every secret variable NAME also takes NAME_FILE: the path of a file holding it.
FILE_SUFFIX = "_FILE"


@dataclass(frozen=True, slots=True)
class Config:
    """Everything the servo needs, validated."""

    report: ReportConfig
    watch: WatchConfig
    # Where the app id is found in a pod; pods without one are not jobs.
    app_id: AppIdQuery
    # Image the webhook injects as the monitor (OPTUNE_SLEEPER_IMG).
    sleeper_image: str = DEFAULT_SLEEPER_IMAGE
    # 0..5 as in the original; see logs.level_for_debug.
    debug: int = S.DEBUG.default
    # json lines for clusters, text for people.
    log_format: str = "json"
    # The servo's pod IP (Downward API status.podIP): where monitors send their stats.
    self_ip: str | None = None
    # --kubeconfig; None: KUBECONFIG, the in-cluster service account, ~/.kube/config.
    kubeconfig: str | None = None
    # --context: a context of that kubeconfig; None: its current-context.
    kube_context: str | None = None
    # Monitor stats: receiver and wait.
    stats: StatsConfig = StatsConfig()
    guard: GuardConfig = GuardConfig()
    metrics: MetricsConfig = MetricsConfig()
    leader: LeaderSettings = LeaderSettings()

    def masked(self) -> dict[str, object]:
        """The effective configuration for a log line, secrets masked."""
        return {
            "url": self.report.url_template,
            "account": self.report.account,
            "auth_token": "***" if self.report.has_token else None,
            "auth_token_file": (
                self.report.auth_token_file.path if self.report.auth_token_file else None
            ),
            "namespaces": list(self.watch.namespaces),
            "app_id": self.app_id.text,
            "sleeper_image": self.sleeper_image,
            "debug": self.debug,
            "self_ip": self.self_ip,
            "send_timeout_s": self.report.timeout_s,
            "send_deadline_s": self.report.deadline_s,
            "send_workers": self.report.workers,
            "watch_timeout_s": self.watch.timeout_s,
            "monitor_container": self.stats.monitor_container,
            "stats_wait_s": self.stats.wait_s,
            "stats_port": self.stats.port,
            "outbox_dir": self.report.outbox_dir,
            "finalizer_guard": self.guard.enabled,
            "leader_election": self.leader.enabled,
            "identity": self.leader.identity,
        }


def load_config(
    environ: Mapping[str, str],
    *,
    kubeconfig: str | None = None,
    flags: KubeFlags | None = None,
) -> Config:
    """Build the Config from environment variables and the command line's Kubernetes flags
    (which win over their variables); raise ConfigError listing every problem."""
    flags = flags or KubeFlags(kubeconfig=kubeconfig)
    env = EnvReader(environ)
    report = _report_config(env)
    watch = _watch_config(env, flags.namespaces)
    app_id = _app_id(env)
    debug = env.setting(S.DEBUG)
    log_format = (env.text("OPTUNE_LOG_FORMAT") or "json").lower()
    if log_format not in LOG_FORMATS:
        env.problems.append(f"OPTUNE_LOG_FORMAT={log_format!r}: expected json or text")
    self_ip = env.text("SELF_IP")
    if self_ip is not None and not is_ip_address(self_ip):
        env.problems.append(f"SELF_IP={self_ip[:60]!r}: expected an IP address (status.podIP)")
        self_ip = None
    stats = _stats_config(env)
    guard = GuardConfig(
        enabled=env.flag("OPTUNE_FINALIZER_GUARD", False),
        max_age_s=env.setting(S.FINALIZER_MAX_AGE),
    )
    metrics = MetricsConfig(
        port=env.setting(S.METRICS_PORT),
        bind=env.ip_address("OPTUNE_METRICS_BIND", ALL_INTERFACES),
        per_app=env.flag("OPTUNE_METRICS_PER_APP", False),
    )
    leader = _leader_settings(env)
    sleeper_image = env.text("OPTUNE_SLEEPER_IMG") or DEFAULT_SLEEPER_IMAGE
    if len(sleeper_image) > 512 or not sleeper_image.isprintable() or " " in sleeper_image:
        env.problems.append(f"OPTUNE_SLEEPER_IMG={sleeper_image[:80]!r}: not an image reference")
    if env.problems:
        raise ConfigError(env.problems)
    return Config(
        stats=stats,
        guard=guard,
        metrics=metrics,
        leader=leader,
        report=report,
        watch=watch,
        app_id=app_id,
        sleeper_image=sleeper_image,
        debug=debug,
        log_format=log_format,
        self_ip=self_ip,
        kubeconfig=flags.kubeconfig,
        kube_context=flags.context,
    )


def _report_config(env: EnvReader) -> ReportConfig:
    url = _check_url(env)
    account = env.text("OPTUNE_ACCOUNT")
    if url == DEFAULT_URL and account is None:
        account = DEFAULT_ACCOUNT
    if url and "acct" in _placeholders(url) and account is None:
        env.problems.append("OPTUNE_ACCOUNT is not set, but OPTUNE_URL uses {acct}")
    token, token_file = secret_setting(env, AUTH_TOKEN_ENV)
    return ReportConfig(
        url_template=url or "",
        account=account,
        auth_token=token,
        auth_token_file=token_file,
        timeout_s=env.setting(S.SEND_TIMEOUT),
        deadline_s=env.setting(S.SEND_DEADLINE),
        max_backoff_s=env.setting(S.SEND_MAX_BACKOFF),
        workers=env.setting(S.SEND_WORKERS),
        queue_size=env.setting(S.SEND_QUEUE),
        outbox_dir=env.text("OPTUNE_OUTBOX_DIR") or default_outbox_dir(env.environ),
        outbox_max_age_s=env.setting(S.OUTBOX_MAX_AGE),
    )


def secret_setting(env: EnvReader, name: str) -> tuple[str | None, SecretFile | None]:
    """A secret from `name` or from the file named by `name`_FILE (a Secret volume), never
    both; a file is read now, so a missing, empty or unreadable one is a problem at start."""
    value = env.environ.get(name)
    file_name = f"{name}{FILE_SUFFIX}"
    path = env.text(file_name)
    if path is not None and value is not None and value.strip():
        env.problems.append(f"{name} and {file_name} are both set: use one")
        return None, None
    if path is not None:
        try:
            return None, SecretFile(path, variable=file_name)
        except ConfigError as e:
            env.problems += e.problems
            return None, None
    if value is None or not value.strip():
        return None, None
    try:
        return check_secret_text(value), None
    except SecretFileError as e:
        # Never the value itself: it is a secret, even when malformed.
        env.problems.append(f"{name}: {e}")
        return None, None


def _watch_config(env: EnvReader, flag_values: tuple[str, ...] | None) -> WatchConfig:
    if flag_values is not None:
        namespaces = check_namespaces(env.problems, ",".join(flag_values), "--namespace")
    else:
        namespaces = check_namespaces(env.problems, env.environ.get("POD_NAMESPACES"))
    return WatchConfig(
        namespaces=namespaces,
        timeout_s=env.setting(S.WATCH_TIMEOUT),
        idle_timeout_s=env.setting(S.WATCH_IDLE_TIMEOUT),
        max_backoff_s=env.setting(S.WATCH_MAX_BACKOFF),
        list_page_size=env.setting(S.LIST_PAGE_SIZE),
    )


def _app_id(env: EnvReader) -> AppIdQuery:
    app_id_text = env.text("OPTUNE_APP_ID") or DEFAULT_APP_ID
    try:
        return parse_app_id_query(app_id_text)
    except ValueError as e:
        env.problems.append(f"OPTUNE_APP_ID={app_id_text!r}: {e}")
        return parse_app_id_query(DEFAULT_APP_ID)


def _leader_settings(env: EnvReader) -> LeaderSettings:
    lease_s = env.setting(S.LEADER_LEASE)
    retry_s = env.setting(S.LEADER_RETRY)
    if retry_s >= lease_s:
        env.problems.append(
            f"{S.LEADER_RETRY.name}={retry_s:g}: must be shorter than the lease"
            f" ({S.LEADER_LEASE.name}={lease_s:g}), or the holder cannot renew in time"
        )
    identity = env.text("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
    return LeaderSettings(
        enabled=env.flag("OPTUNE_LEADER_ELECTION", False),
        namespace=env.dns_label("OPTUNE_LEADER_NAMESPACE", DEFAULT_LEADER_NAMESPACE),
        name=env.dns_subdomain("OPTUNE_LEADER_LEASE", DEFAULT_LEADER_LEASE),
        identity=identity,
        lease_s=lease_s,
        retry_s=retry_s,
    )


def default_outbox_dir(environ: Mapping[str, str]) -> str:
    """$XDG_STATE_HOME/servo, else ~/.local/state/servo (the example mounts a volume and sets
    OPTUNE_OUTBOX_DIR)."""
    home = environ.get("HOME") or "/"
    state = environ.get("XDG_STATE_HOME") or str(Path(home) / ".local" / "state")
    return str(Path(state) / "servo")


def _stats_config(env: EnvReader) -> StatsConfig:
    return StatsConfig(
        monitor_container=env.dns_label("OPTUNE_MONITOR_CONTAINER", DEFAULT_MONITOR_NAME),
        wait_s=env.setting(S.STATS_WAIT),
        port=env.setting(S.STATS_PORT),
        bind=env.ip_address("OPTUNE_STATS_BIND", ALL_INTERFACES),
    )


def _check_url(env: EnvReader) -> str | None:
    url = env.text("OPTUNE_URL") or DEFAULT_URL
    expected = "expected http(s)://host[:port]/path with {acct} and {app_id}"
    try:
        fields = _placeholders(url)
    except ValueError as e:
        env.problems.append(f"OPTUNE_URL={url!r}: bad template ({e}); {expected}")
        return None
    unknown = sorted(fields - URL_PLACEHOLDERS)
    if unknown:
        names = ", ".join("{" + f + "}" for f in unknown)
        env.problems.append(f"OPTUNE_URL={url!r}: unknown placeholder {names}; {expected}")
    if not is_http_url(url):
        env.problems.append(f"OPTUNE_URL={url!r}: {expected}")
    elif "app_id" not in fields:
        env.problems.append(
            f"OPTUNE_URL={url!r}: no {{app_id}}, so every job would report to one URL; {expected}"
        )
    return url


def _placeholders(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}


def check_namespaces(
    problems: list[str], raw: str | None, name: str = "POD_NAMESPACES"
) -> tuple[str, ...]:
    """Comma-separated namespaces (`*`: all), from POD_NAMESPACES or --namespace (`name`)."""
    if raw is None:
        return ("default",)
    shown = f"{name}={raw!r}" if name.isupper() else f"{name} {raw!r}"
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if not names:
        problems.append(f"{shown}: empty namespace list")
        return ("default",)
    if ALL_NAMESPACES in names:
        if len(names) > 1:
            problems.append(f"{shown}: '*' means all; list nothing beside it")
        return (ALL_NAMESPACES,)
    for ns in names:
        if not is_dns_label(ns):
            problems.append(f"{shown}: {ns!r} is not a namespace name")
    return tuple(dict.fromkeys(names))


def print_config_error(e: ConfigError, *, prog: str = "servo") -> None:
    """Every problem of a configuration on stderr, one per line, under one heading."""
    lines = "\n".join(f"  - {p}" for p in e.problems)
    print(f"{prog}: configuration error ({len(e.problems)} problem(s)):\n{lines}", file=sys.stderr)


def credentials_message(e: ConfigError) -> str:
    """What a missing or unusable credential source is called: "no Kubernetes credentials:
    ..." says it all; anything else is "cannot use the Kubernetes credentials: ..."."""
    text = "; ".join(e.problems)
    return (
        text
        if text.startswith("no Kubernetes credentials")
        else (f"cannot use the Kubernetes credentials: {text}")
    )


def print_credentials_error(e: ConfigError, *, prog: str = "servo") -> None:
    """A credentials problem on stderr, named as what it is (not "configuration error")."""
    print(f"{prog}: {credentials_message(e)}", file=sys.stderr)
