"""The certificate the webhook serves with: given as files, or made here and its CA installed.

Without a certificate the webhook makes its own CA and serving pair in OPTUNE_WEBHOOK_TLS_DIR,
patches the CA into its MutatingWebhookConfiguration (retried at start) and checks now and
then that the CA is still there. Problems give the exit status and a line on stderr.
"""

from __future__ import annotations

import datetime as dt
import logging
import ssl
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servo.core.errors import EXIT_CONFIG, EXIT_FAILED
from servo.webhook.config import WebhookConfig

logger = logging.getLogger(__name__)

# Attempts (1 s apart, then 2, 4, ...) to install the CA before giving up at start.
CA_PATCH_ATTEMPTS = 5


def _self_generated_tls(
    wcfg: WebhookConfig, api_client: Any, stop: threading.Event
) -> tuple[Path, Path, bytes] | None:
    from servo.webhook.tls import (
        CaBundleError,
        generate_ca,
        generate_serving_cert,
        patch_ca_bundle,
        service_dns_names,
        write_pair,
    )

    now = dt.datetime.now(dt.UTC)
    ca = generate_ca(f"servo-webhook-ca {wcfg.service_namespace}", now=now)
    names = service_dns_names(wcfg.service_name, wcfg.service_namespace) + ["localhost"]
    serving = generate_serving_cert(ca, names, now=now, ip_addresses=["127.0.0.1"])
    directory = Path(wcfg.tls_dir)
    write_pair(ca, directory, "ca", with_key=False)  # the CA's key is not needed again
    cert_path, key_path = write_pair(serving, directory, "tls")
    if not wcfg.patch_ca:
        logger.info(
            "self-generated CA not installed (OPTUNE_WEBHOOK_PATCH_CA=false)",
            extra={"ca": str(directory / "ca.crt")},
        )
        return cert_path, key_path, ca.cert_pem
    wait_s = 1.0
    for attempt in range(1, CA_PATCH_ATTEMPTS + 1):
        try:
            changed = patch_ca_bundle(
                api_client,
                wcfg.webhook_config_name,
                ca.cert_pem,
                service=wcfg.service_name,
                namespace=wcfg.service_namespace,
            )
            logger.info(
                "caBundle installed",
                extra={"webhooks": changed, "config": wcfg.webhook_config_name},
            )
            return cert_path, key_path, ca.cert_pem
        except CaBundleError as e:
            log = logger.error if attempt == CA_PATCH_ATTEMPTS else logger.warning
            log("caBundle patch failed", extra={"attempt": attempt, "error": str(e)})
        if stop.wait(wait_s):
            return None
        wait_s *= 2
    return None


def recheck_ca(wcfg: WebhookConfig, api_client: Any, ca_pem: bytes, stop: threading.Event) -> None:
    """Put the CA back when someone replaced the configuration without it."""
    from servo.webhook.tls import CaBundleError, patch_ca_bundle

    while not stop.wait(wcfg.ca_recheck_s):
        try:
            if patch_ca_bundle(
                api_client,
                wcfg.webhook_config_name,
                ca_pem,
                service=wcfg.service_name,
                namespace=wcfg.service_namespace,
            ):
                logger.warning("caBundle was missing or stale; installed again")
        except CaBundleError as e:
            logger.warning("caBundle check failed", extra={"error": str(e)})


@dataclass(frozen=True, slots=True)
class ServingTls:
    """The serving certificate: its files, the context, and our own CA when we made it."""

    ctx: ssl.SSLContext
    cert_path: Path
    key_path: Path
    ca_pem: bytes | None


def serving_tls(wcfg: WebhookConfig, api_client: Any, stop: threading.Event) -> ServingTls | int:
    """The TLS to serve with (made here when no certificate is given), or the exit status."""
    from servo.webhook.tls import server_context

    ca_pem: bytes | None = None
    if wcfg.cert_file is None:
        try:
            made = _self_generated_tls(wcfg, api_client, stop)
        except OSError as e:
            print(
                f"servo webhook: configuration error:\n  - OPTUNE_WEBHOOK_TLS_DIR="
                f"{wcfg.tls_dir!r}: cannot write the TLS files there ({e})",
                file=sys.stderr,
            )
            return EXIT_CONFIG
        if made is None:
            return 0 if stop.is_set() else EXIT_FAILED
        cert_path, key_path, ca_pem = made
    else:
        assert wcfg.key_file is not None
        cert_path, key_path = Path(wcfg.cert_file), Path(wcfg.key_file)
    try:
        ctx = server_context(cert_path, key_path)
    except (OSError, ValueError) as e:
        print(f"servo webhook: cannot load TLS certificate {cert_path}: {e}", file=sys.stderr)
        return EXIT_CONFIG
    return ServingTls(ctx, cert_path, key_path, ca_pem)
