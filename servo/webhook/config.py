"""The webhook's configuration: OPTUNE_WEBHOOK_* and the flags of `servo webhook`, checked at
start (every problem at once), and which sidecar style a cluster gets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from servo.core import settings as S
from servo.core.envread import EnvReader, is_http_url
from servo.core.errors import ConfigError
from servo.webhook.admission import NATIVE_SIDECAR_SINCE, parse_k8s_version
from servo.webhook.resources import Ranges

API_VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
# The API server caps request bodies at 3 MiB; a review wraps one object, so 4 MiB is plenty.
MAX_BODY_BYTES = 4 * 1024 * 1024
# The example's timeoutSeconds; the budget must leave room for TLS and the patch.
WEBHOOK_TIMEOUT_S = 5.0
SIDECAR_STYLES = ("auto", "native", "plain")
# The servo's stats Service as example/service.yaml defines it.
DEFAULT_STATS_URL = "http://servo.servo.svc:8080/"
DEFAULT_BIND = "0.0.0.0"  # noqa: S104 - the API server must reach it
DEFAULT_TLS_DIR = "/tmp/servo-webhook-tls"  # noqa: S108 - an emptyDir in the pod
# DESCRIBE, DESCRIBE, ... would loop forever against a confused backend.
MAX_WHATS_NEXT = 4
# A send with less time than this left is not started at all.
MIN_SEND_S = 0.05
DEFAULT_SERVICE = "servo-webhook"
DEFAULT_NAMESPACE = "servo"
DEFAULT_CONFIG_NAME = "servo-webhook"
# A caBundle re-check more often than this would hammer the API server.
MIN_CA_RECHECK_S = 10.0


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """How `servo webhook` serves, injects and talks to the backend."""

    # HTTPS port; 8443 so a non-root process may bind it. 0 = any free port (tests).
    port: int = S.WEBHOOK_PORT.default
    # All interfaces: the API server reaches it through the Service.
    bind: str = DEFAULT_BIND
    # Serving certificate and key (PEM); None: self-generate a CA and a serving cert at start.
    cert_file: str | None = None
    key_file: str | None = None
    # Where self-generated files go (the Deployment's /tmp is an emptyDir).
    tls_dir: str = DEFAULT_TLS_DIR
    # The Service in front of the webhook: the serving cert's DNS names.
    service_name: str = DEFAULT_SERVICE
    service_namespace: str = DEFAULT_NAMESPACE
    # The MutatingWebhookConfiguration whose caBundle a self-generated CA is patched into.
    webhook_config_name: str = DEFAULT_CONFIG_NAME
    # Patch a self-generated CA into that configuration (false: out-of-cluster runs, tests).
    patch_ca: bool = True
    # How often the caBundle is checked (someone may re-apply the manifest without it).
    ca_recheck_s: float = S.WEBHOOK_CA_RECHECK.default
    # OPTUNE_STATS_URL of injected monitors: the servo's stats Service.
    stats_url: str = DEFAULT_STATS_URL
    # native | plain | auto (auto: by the cluster's version, from k8s_version or /version).
    sidecar_style: str = "auto"
    # (major, minor) to assume instead of asking /version.
    k8s_version: tuple[int, int] | None = None
    # Time for the whole WHATS_NEXT exchange per pod; well under WEBHOOK_TIMEOUT_S.
    budget_s: float = S.WEBHOOK_BUDGET.default
    # False: inject the monitor only, never ask the backend.
    exchange: bool = True
    # DESCRIPTION ranges of cpu (cores) and mem (GiB); ADJUST values outside are refused.
    ranges: Ranges = field(default_factory=Ranges)


def load_webhook_config(environ: Mapping[str, str]) -> WebhookConfig:
    """WebhookConfig from OPTUNE_WEBHOOK_* (and friends); ConfigError lists every problem."""
    env = EnvReader(environ)
    problems, text = env.problems, env.text
    ca_recheck_s = env.setting(S.WEBHOOK_CA_RECHECK)
    if 0 < ca_recheck_s < MIN_CA_RECHECK_S:
        problems.append(
            f"{S.WEBHOOK_CA_RECHECK.name}={ca_recheck_s:g}: 0 turns the re-check"
            f" off; otherwise at least {MIN_CA_RECHECK_S:g} s"
        )
    cert, key = text("OPTUNE_WEBHOOK_CERT"), text("OPTUNE_WEBHOOK_KEY")
    if (cert is None) != (key is None):
        problems.append("OPTUNE_WEBHOOK_CERT and OPTUNE_WEBHOOK_KEY: set both, or neither")
    style = (text("OPTUNE_SIDECAR_STYLE") or "auto").lower()
    if style not in SIDECAR_STYLES:
        problems.append(f"OPTUNE_SIDECAR_STYLE={style!r}: expected auto, native or plain")
    version = None
    raw_version = text("OPTUNE_K8S_VERSION")
    if raw_version is not None:
        version = parse_k8s_version("", "", raw_version)
        if version is None:
            problems.append(f"OPTUNE_K8S_VERSION={raw_version!r}: expected 1.28, v1.30.2, ...")
    stats_url = text("OPTUNE_STATS_SERVICE_URL") or DEFAULT_STATS_URL
    if not is_http_url(stats_url):
        problems.append(f"OPTUNE_STATS_SERVICE_URL={stats_url!r}: expected http(s)://host:port/")
    cfg = WebhookConfig(
        port=env.setting(S.WEBHOOK_PORT),
        bind=env.ip_address("OPTUNE_WEBHOOK_BIND", DEFAULT_BIND),
        cert_file=cert,
        key_file=key,
        tls_dir=text("OPTUNE_WEBHOOK_TLS_DIR") or DEFAULT_TLS_DIR,
        service_name=env.dns_label("OPTUNE_WEBHOOK_SERVICE", DEFAULT_SERVICE),
        service_namespace=env.dns_label("OPTUNE_WEBHOOK_NAMESPACE", DEFAULT_NAMESPACE),
        webhook_config_name=env.dns_subdomain("OPTUNE_WEBHOOK_CONFIG_NAME", DEFAULT_CONFIG_NAME),
        patch_ca=env.flag("OPTUNE_WEBHOOK_PATCH_CA", True),
        ca_recheck_s=ca_recheck_s,
        stats_url=stats_url,
        sidecar_style=style,
        k8s_version=version,
        budget_s=env.setting(S.WEBHOOK_BUDGET),
        exchange=env.flag("OPTUNE_WEBHOOK_EXCHANGE", True),
    )
    if problems:
        raise ConfigError(problems)
    return cfg


def use_native_sidecar(cfg: WebhookConfig, server_version: tuple[int, int] | None) -> bool:
    """Native sidecar or plain container; an unknown version is treated as old (plain)."""
    if cfg.sidecar_style != "auto":
        return cfg.sidecar_style == "native"
    version = cfg.k8s_version or server_version
    return version is not None and version >= NATIVE_SIDECAR_SINCE
