"""`servo webhook` end to end, and the caBundle patch through the official client against a stub
of the one admissionregistration endpoint it uses (the API emulator serves pods only)."""

from __future__ import annotations

import argparse
import base64
import copy
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import requests
from kubernetes import client as k8s

from servo.webhook.cli import EXIT_CONFIG, add_webhook_parser, run_webhook
from servo.webhook.tls import CaBundleError, patch_ca_bundle
from tests.support.fakes.backend import RecordingBackend
from tests.support.webhookkit import admission_pod, decode_patch, review

CONFIG_PATH = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/servo-webhook"
CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


class StubApi:
    """GET and JSON-patch of one MutatingWebhookConfiguration; records what it was sent."""

    def __init__(self, config: dict[str, Any] | None, *, deny: int | None = None) -> None:
        self.config, self.deny = config, deny
        self.requests: list[tuple[str, str, str, Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def _reply(self, code: int, doc: Any) -> None:
                body = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _serve(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n)) if n else None
                stub.requests.append(
                    (
                        self.command,
                        self.path.split("?")[0],
                        self.headers.get("Content-Type", ""),
                        body,
                    )
                )
                if stub.deny is not None:
                    self._reply(stub.deny, {"kind": "Status", "code": stub.deny})
                elif self.path.split("?")[0] != CONFIG_PATH or stub.config is None:
                    self._reply(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
                elif self.command == "GET":
                    self._reply(200, stub.config)
                else:
                    try:
                        stub.config = jsonpatch.apply_patch(stub.config, body)
                    except jsonpatch.JsonPatchException as e:
                        self._reply(422, {"kind": "Status", "code": 422, "message": str(e)})
                        return
                    self._reply(200, stub.config)

            do_GET = do_PATCH = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def client(self) -> k8s.ApiClient:
        cfg = k8s.Configuration()
        cfg.host = f"http://127.0.0.1:{self.server.server_address[1]}"
        return k8s.ApiClient(cfg)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def webhook_config(bundle: str | None = None) -> dict[str, Any]:
    client: dict[str, Any] = {
        "service": {"name": "servo-webhook", "namespace": "servo", "path": "/mutate", "port": 443}
    }
    if bundle:
        client["caBundle"] = bundle
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "servo-webhook"},
        "webhooks": [
            {
                "name": "pods.servo.optune.io",
                "clientConfig": client,
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
            }
        ],
    }


@pytest.fixture
def stub() -> Iterator[StubApi]:
    s = StubApi(webhook_config())
    yield s
    s.close()


def test_ca_bundle_is_patched_with_a_json_patch(stub: StubApi) -> None:
    changed = patch_ca_bundle(
        stub.client(), "servo-webhook", CA, service="servo-webhook", namespace="servo"
    )

    assert changed == 1
    [get, patch] = stub.requests
    assert get[:2] == ("GET", CONFIG_PATH)
    assert patch[:3] == ("PATCH", CONFIG_PATH, "application/json-patch+json")
    assert stub.config is not None
    assert stub.config["webhooks"][0]["clientConfig"]["caBundle"] == base64.b64encode(CA).decode()
    # Already right: read only, no patch.
    assert (
        patch_ca_bundle(
            stub.client(), "servo-webhook", CA, service="servo-webhook", namespace="servo"
        )
        == 0
    )
    assert [r[0] for r in stub.requests] == ["GET", "PATCH", "GET"]


@pytest.mark.parametrize(("deny", "config"), [(403, webhook_config()), (None, None)])
def test_ca_bundle_errors_name_the_configuration(deny: int | None, config: Any) -> None:
    s = StubApi(config, deny=deny)
    try:
        with pytest.raises(CaBundleError, match="mutatingwebhookconfiguration servo-webhook"):
            patch_ca_bundle(
                s.client(), "servo-webhook", CA, service="servo-webhook", namespace="servo"
            )
    finally:
        s.close()


def test_configuration_without_our_service_is_an_error(stub: StubApi) -> None:
    with pytest.raises(CaBundleError, match="no webhook calls service servo/elsewhere"):
        patch_ca_bundle(stub.client(), "servo-webhook", CA, service="elsewhere", namespace="servo")


# -- `servo webhook` ----------------------------------------------------------------------


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="servo")
    add_webhook_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["webhook", *argv])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cli_self_generates_tls_patches_the_ca_and_serves(
    tmp_path: Path, stub: StubApi, backend: RecordingBackend
) -> None:
    port, metrics_port = _free_port(), _free_port()
    kubeconfig = tmp_path / "kubeconfig.json"
    host = stub.client().configuration.host
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "stub",
                "clusters": [{"name": "stub", "cluster": {"server": host}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "stub", "context": {"cluster": "stub", "user": "u"}}],
            }
        )
    )
    env = {
        "OPTUNE_URL": backend.url_template(),
        "OPTUNE_ACCOUNT": "acme",
        "POD_NAMESPACES": "default",
        "OPTUNE_K8S_VERSION": "1.28",
        "OPTUNE_WEBHOOK_TLS_DIR": str(tmp_path / "tls"),
        "OPTUNE_WEBHOOK_BIND": "127.0.0.1",
        "OPTUNE_METRICS_PORT": str(metrics_port),
        "OPTUNE_METRICS_BIND": "127.0.0.1",
    }
    stop = threading.Event()
    result: list[int] = []
    args = _parse("--port", str(port), "--kubeconfig", str(kubeconfig), "--log-format", "text")
    t = threading.Thread(target=lambda: result.append(run_webhook(args, env, stop)))
    t.start()
    try:
        ca = tmp_path / "tls" / "ca.crt"
        deadline = time.monotonic() + 10
        answer = None
        while answer is None and time.monotonic() < deadline:
            try:
                pod = admission_pod()
                resp = requests.post(
                    f"https://localhost:{port}/mutate", json=review(pod), verify=str(ca), timeout=5
                )
                answer = resp.json()
            except (requests.ConnectionError, OSError):
                time.sleep(0.05)
        assert answer is not None, "webhook did not come up"
        out = jsonpatch.apply_patch(copy.deepcopy(pod), decode_patch(answer))
        assert out["spec"]["containers"][-1]["name"] == "servo-monitor"  # 1.28: plain
        assert stub.config is not None
        bundle = stub.config["webhooks"][0]["clientConfig"]["caBundle"]
        assert base64.b64decode(bundle) == ca.read_bytes()
        assert not (tmp_path / "tls" / "ca.key").exists()  # the CA key never stays on disk
        # Metrics and probes in plain HTTP on the metrics port, as the servo has them.
        ops = f"http://127.0.0.1:{metrics_port}"
        text = requests.get(f"{ops}/metrics", timeout=5).text
        assert 'servo_webhook_reviews_total{result="patched"} 1.0' in text
        assert "servo_webhook_review_seconds_count 1.0" in text
        assert requests.get(f"{ops}/healthz", timeout=5).status_code == 200
        assert requests.get(f"{ops}/readyz", timeout=5).json()["port"] == port
    finally:
        stop.set()
        t.join(timeout=10)
    assert result == [0]


def test_cli_configuration_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"OPTUNE_SIDECAR_STYLE": "sideways", "POD_NAMESPACES": "Not A Namespace"}
    status = run_webhook(_parse("--tls-cert", "/nonexistent.crt"), env, threading.Event())
    err = capsys.readouterr().err

    assert status == EXIT_CONFIG
    assert "OPTUNE_SIDECAR_STYLE" in err and "POD_NAMESPACES" in err
    assert "--tls-cert and --tls-key" in err and "/nonexistent.crt: no such file" in err


def test_cli_numbers_and_addresses_out_of_range_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"OPTUNE_WEBHOOK_PORT": "8443.9", "OPTUNE_WEBHOOK_BUDGET": "nan"}
    status = run_webhook(_parse("--port", "70000", "--bind", "abc"), env, threading.Event())
    err = capsys.readouterr().err

    assert status == EXIT_CONFIG
    assert "OPTUNE_WEBHOOK_PORT='8443.9': expected an integer in 0..65535" in err
    assert "OPTUNE_WEBHOOK_BUDGET='nan'" in err
    assert "--port 70000: expected 0..65535" in err and "--bind 'abc'" in err


def test_cli_refuses_a_tls_directory_that_is_a_link(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "tls").symlink_to(elsewhere)
    env = {
        "OPTUNE_WEBHOOK_TLS_DIR": str(tmp_path / "tls"),
        "OPTUNE_WEBHOOK_PATCH_CA": "false",
        "OPTUNE_SIDECAR_STYLE": "native",
        "OPTUNE_WEBHOOK_PORT": "0",
        "OPTUNE_METRICS_PORT": "0",
        "OPTUNE_METRICS_BIND": "127.0.0.1",
    }
    stop = threading.Event()
    stop.set()  # were the files written, the webhook would stop at once, with status 0
    status = run_webhook(_parse("--bind", "127.0.0.1"), env, stop)

    assert status == EXIT_CONFIG
    assert "OPTUNE_WEBHOOK_TLS_DIR=" in capsys.readouterr().err
    assert list(elsewhere.iterdir()) == []
