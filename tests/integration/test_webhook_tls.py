"""The webhook's HTTPS server: a client that trusts another CA is refused the handshake, a renewed
certificate reaches new connections, TLS below 1.2 is refused, and the paths other than the
review answer as a health check or 404."""

from __future__ import annotations

import datetime as dt
import os
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from servo.system.config import load_config
from servo.webhook.admission import MonitorSpec
from servo.webhook.review import Admitter
from servo.webhook.server import WebhookServer
from servo.webhook.tls import (
    CertPair,
    CertReloader,
    generate_ca,
    generate_serving_cert,
    server_context,
    write_pair,
)
from tests.support.webhookkit import Hook


def test_client_with_another_ca_is_refused_the_handshake(
    start_hook: Callable[..., Hook], tmp_path: Path
) -> None:
    hook = start_hook(exchange=False)
    other = write_pair(generate_ca("other", now=dt.datetime.now(dt.UTC)), tmp_path, "other")[0]

    with pytest.raises(requests.exceptions.SSLError):
        requests.post(hook.url, data=b"{}", verify=str(other), timeout=5)


def test_healthz_and_wrong_path(start_hook: Callable[..., Hook]) -> None:
    hook = start_hook(exchange=False)
    base = f"https://localhost:{hook.server.bound_port}"

    assert requests.get(f"{base}/healthz", verify=str(hook.ca), timeout=5).status_code == 200
    assert (
        requests.post(f"{base}/other", data=b"{}", verify=str(hook.ca), timeout=5).status_code
        == 404
    )


# -- certificates -------------------------------------------------------------------------


def test_renewed_certificate_is_served_to_new_connections(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    ca1, ca2 = generate_ca("one", now=now), generate_ca("two", now=now)
    ca1_file, _ = write_pair(ca1, tmp_path, "ca1")
    ca2_file, _ = write_pair(ca2, tmp_path, "ca2")

    def serving(ca: CertPair) -> tuple[Path, Path]:
        pair = generate_serving_cert(ca, ["localhost"], now=now, ip_addresses=["127.0.0.1"])
        return write_pair(pair, tmp_path, "tls")

    cert, key = serving(ca1)
    ctx = server_context(cert, key)
    clock = [0.0]
    reloader = CertReloader(ctx, cert, key, clock=lambda: clock[0], check_s=1.0)
    cfg = load_config({})
    admitter = Admitter(
        cfg, monitor=MonitorSpec("servo-monitor", "m", "http://s/", True), exchange=None
    )
    with WebhookServer(admitter, ctx, bind="127.0.0.1", port=0, before_accept=reloader) as srv:
        url = f"https://localhost:{srv.bound_port}/healthz"
        assert requests.get(url, verify=str(ca1_file), timeout=5).status_code == 200
        serving(ca2)
        st = cert.stat()
        os.utime(cert, (st.st_atime, st.st_mtime + 10))
        clock[0] = 5.0
        # The first connection after the change triggers the reload and gets the new cert.
        session = requests.Session()
        assert session.get(url, verify=str(ca2_file), timeout=5).status_code == 200
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(url, verify=str(ca1_file), timeout=5)


def test_server_context_refuses_tls_1_1(tls: dict[str, Path]) -> None:
    assert server_context(tls["cert"], tls["key"]).minimum_version == ssl.TLSVersion.TLSv1_2
