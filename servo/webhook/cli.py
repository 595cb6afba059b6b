"""`servo webhook`: start-up of the admission webhook (config, TLS, version, server, signals).

Wiring only: the decision is review.py's, the patch admission.py's, the serving certificate
serving_tls.py's. Exit codes: 0 after SIGTERM/SIGINT, 2 for a configuration error,
1 when it cannot listen or cannot install its self-generated CA.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from servo.core.envread import is_ip_address
from servo.core.errors import EXIT_CONFIG, EXIT_FAILED, ConfigError
from servo.core.settings import MAX_PORT
from servo.http.ops import OpsServer
from servo.system.cliflags import add_kube_flags, kube_flags
from servo.system.config import Config, load_config, print_config_error, print_credentials_error
from servo.webhook.admission import MonitorSpec, parse_k8s_version
from servo.webhook.config import WebhookConfig, load_webhook_config, use_native_sidecar
from servo.webhook.exchange import Exchange, ReporterSender
from servo.webhook.metrics import WebhookMetrics
from servo.webhook.review import Admitter
from servo.webhook.server import WebhookServer
from servo.webhook.serving_tls import ServingTls, recheck_ca, serving_tls

logger = logging.getLogger(__name__)


DESCRIPTION = (
    "Serve the mutating admission webhook over HTTPS: inject the monitor into new job pods in "
    "the watched namespaces and apply the backend's ADJUST before they start. Reads the "
    "servo's OPTUNE_* environment plus OPTUNE_WEBHOOK_* (README: The admission webhook)."
)


def add_webhook_parser(subparsers: Any) -> None:
    """Add the `webhook` subcommand."""
    p = subparsers.add_parser(
        "webhook", help="serve the admission webhook (monitor, ADJUST)", description=DESCRIPTION
    )
    p.add_argument(
        "--port", type=int, default=None, help="HTTPS port (default 8443, or OPTUNE_WEBHOOK_PORT)"
    )
    p.add_argument("--bind", default=None, help="address to listen on (default 0.0.0.0)")
    p.add_argument(
        "--tls-cert",
        default=None,
        help="serving certificate PEM (default: OPTUNE_WEBHOOK_CERT; neither: self-generate)",
    )
    p.add_argument("--tls-key", default=None, help="its private key PEM (OPTUNE_WEBHOOK_KEY)")
    # --namespace: where job pods get the monitor (the servo's watched namespaces).
    add_kube_flags(p, what="inject the monitor in")
    p.add_argument("--log-format", choices=("json", "text"), default=argparse.SUPPRESS)


def _load(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[Config, WebhookConfig]:
    problems: list[str] = []
    cfg: Config | None = None
    wcfg: WebhookConfig | None = None
    try:
        cfg = load_config(environ, flags=kube_flags(args))
    except ConfigError as e:
        problems += e.problems
    try:
        wcfg = load_webhook_config(environ)
    except ConfigError as e:
        problems += e.problems
    # Flags are checked even when the environment had problems, so one run lists them all.
    base = wcfg or WebhookConfig(
        cert_file=(environ.get("OPTUNE_WEBHOOK_CERT") or "").strip() or None,
        key_file=(environ.get("OPTUNE_WEBHOOK_KEY") or "").strip() or None,
    )
    port = getattr(args, "port", None)
    if port is not None and not 0 <= port <= MAX_PORT:
        problems.append(f"--port {port}: expected 0..{MAX_PORT}")
    bind = getattr(args, "bind", None)
    if bind is not None and not is_ip_address(bind):
        problems.append(f"--bind {bind[:60]!r}: expected an IP address to listen on")
    cert = getattr(args, "tls_cert", None) or base.cert_file
    key = getattr(args, "tls_key", None) or base.key_file
    flags_given = getattr(args, "tls_cert", None) or getattr(args, "tls_key", None)
    if flags_given and (cert is None) != (key is None):
        problems.append("--tls-cert and --tls-key: give both, or neither")
    for what, path in (("certificate", cert), ("key", key)):
        if path is not None and not Path(path).is_file():
            problems.append(f"TLS {what} {path}: no such file")
    wcfg = replace(
        base,
        port=base.port if port is None else port,
        bind=bind or base.bind,
        cert_file=cert,
        key_file=key,
    )
    if problems or cfg is None or wcfg is None:
        raise ConfigError(problems)
    return cfg, wcfg


def server_version(api_client: Any) -> tuple[int, int] | None:
    """(major, minor) from the API server's /version; None (with a warning) when unreadable."""
    from kubernetes import client as k8s

    try:
        info = k8s.VersionApi(api_client).get_code(_request_timeout=10)
    except Exception as e:  # noqa: BLE001 - any failure means "unknown": plain containers
        logger.warning(
            "cannot read /version; assuming an old cluster (plain container)",
            extra={"error": str(e)},
        )
        return None
    return parse_k8s_version(info.major or "", info.minor or "", info.git_version or "")


def run_webhook(
    args: argparse.Namespace, environ: Mapping[str, str], stop: threading.Event | None = None
) -> int:
    """Run the webhook until SIGTERM/SIGINT (or `stop`, for tests); return the exit status."""
    try:
        cfg, wcfg = _load(args, environ)
    except ConfigError as e:
        print_config_error(e, prog="servo webhook")
        return EXIT_CONFIG
    from servo.system.logs import configure_logging

    configure_logging(debug=cfg.debug, fmt=getattr(args, "log_format", None) or cfg.log_format)
    logger.info(
        "webhook starting",
        extra={
            "config": cfg.masked(),
            "port": wcfg.port,
            "sidecar_style": wcfg.sidecar_style,
            "budget_s": wcfg.budget_s,
        },
    )
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    try:
        api_client = _api_client(cfg, wcfg, environ)
    except ConfigError as e:
        print_credentials_error(e, prog="servo webhook")
        return EXIT_CONFIG
    version = None
    if wcfg.sidecar_style == "auto" and wcfg.k8s_version is None:
        version = server_version(api_client)
    native = use_native_sidecar(wcfg, version)
    logger.info("sidecar style chosen", extra={"native": native, "k8s_version": str(version)})
    tls = serving_tls(wcfg, api_client, stop)
    if isinstance(tls, int):
        return tls
    return _serve(cfg, wcfg, tls, native=native, api_client=api_client, stop=stop)


def _api_client(cfg: Config, wcfg: WebhookConfig, environ: Mapping[str, str]) -> Any:
    """The API client when the webhook needs one (to ask the server's version, or to install
    its own CA), else None; ConfigError when the credentials are wrong."""
    need_api = (wcfg.sidecar_style == "auto" and wcfg.k8s_version is None) or (
        wcfg.cert_file is None and wcfg.patch_ca
    )
    if not need_api:
        return None
    from servo.kube.credentials import api_client_for

    return api_client_for(cfg.kubeconfig, environ, context=cfg.kube_context)


def _serve(
    cfg: Config,
    wcfg: WebhookConfig,
    tls: ServingTls,
    *,
    native: bool,
    api_client: Any,
    stop: threading.Event,
) -> int:
    """Build the admitter and its servers, serve until `stop`, then stop them."""
    from servo.webhook.tls import CertReloader

    monitor = MonitorSpec(
        name=cfg.stats.monitor_container,
        image=cfg.sleeper_image,
        stats_url=wcfg.stats_url,
        native=native,
    )
    metrics = WebhookMetrics()
    exchange = (
        Exchange(
            ReporterSender(cfg.report), budget_s=wcfg.budget_s, ranges=wcfg.ranges, metrics=metrics
        )
        if wcfg.exchange
        else None
    )
    admitter = Admitter(cfg, monitor=monitor, exchange=exchange, metrics=metrics)
    # A certificate given as files may be renewed there (cert-manager): reloaded on change.
    reload = wcfg.cert_file is not None
    server = WebhookServer(
        admitter,
        tls.ctx,
        bind=wcfg.bind,
        port=wcfg.port,
        before_accept=CertReloader(tls.ctx, tls.cert_path, tls.key_path) if reload else None,
    )
    try:
        server.start()
    except OSError as e:
        print(f"servo webhook: cannot listen on {wcfg.bind}:{wcfg.port}: {e}", file=sys.stderr)
        return EXIT_FAILED
    ops = _start_ops(cfg, metrics, server)
    if tls.ca_pem is not None and wcfg.patch_ca and wcfg.ca_recheck_s > 0:
        threading.Thread(
            target=recheck_ca,
            args=(wcfg, api_client, tls.ca_pem, stop),
            name="ca-recheck",
            daemon=True,
        ).start()
    stop.wait()
    logger.info("webhook stopping")
    if ops is not None:
        ops.stop()
    server.stop()
    return 0


def _start_ops(cfg: Config, metrics: WebhookMetrics, server: WebhookServer) -> OpsServer | None:
    """/metrics, /healthz and /readyz in plain HTTP on the metrics port (OPTUNE_METRICS_PORT),
    as the servo has them: Prometheus then needs no TLS settings for the webhook."""

    def serving() -> tuple[bool, dict[str, Any]]:
        return server.serving, {"port": server.bound_port}

    ops = OpsServer(
        metrics.registry,
        health=serving,
        ready=serving,
        bind=cfg.metrics.bind,
        port=cfg.metrics.port,
    )
    try:
        ops.start()
    except OSError as e:
        # The webhook itself still works; only its metrics and plain-HTTP probes are missing.
        logger.error(
            "metrics and probes cannot listen", extra={"port": cfg.metrics.port, "error": str(e)}
        )
        return None
    return ops
