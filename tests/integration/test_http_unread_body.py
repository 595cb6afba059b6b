"""The servo's HTTP servers over a real keep-alive socket: an answer sent while the request's
body is unread closes the connection, so the body is never parsed as a second request; a
request whose body was read keeps the connection for the next one."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from servo.http.ops import OpsServer
from tests.support.webhookkit import Hook

# A second request hidden in the first one's body: answered only if the body were misread.
SMUGGLED = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
LAST = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def request(method: str, path: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def responses_until_close(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; a server that keeps the connection open
    runs into the socket timeout, which fails the test."""
    sock.settimeout(5)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            pytest.fail(f"connection kept open after: {data!r}")
        if not chunk:
            return data
        data += chunk


@pytest.fixture
def ops() -> Iterator[OpsServer]:
    server = OpsServer(
        CollectorRegistry(),
        health=lambda: (True, {}),
        ready=lambda: (True, {}),
        bind="127.0.0.1",
        port=0,
    )
    server.start()
    yield server
    server.stop()


def test_ops_error_answer_with_an_unread_body_closes_the_connection(ops: OpsServer) -> None:
    with socket.create_connection(("127.0.0.1", ops.port)) as sock:
        sock.sendall(request("GET", "/nope", SMUGGLED))
        data = responses_until_close(sock)

    assert data.count(b"HTTP/1.1 ") == 1 and data.startswith(b"HTTP/1.1 404")
    assert b"Connection: close" in data


def test_ops_keeps_alive_when_there_is_no_body(ops: OpsServer) -> None:
    with socket.create_connection(("127.0.0.1", ops.port)) as sock:
        sock.sendall(request("GET", "/nope") + request("GET", "/readyz") + LAST)
        data = responses_until_close(sock)

    assert data.count(b"HTTP/1.1 ") == 3 and b"HTTP/1.1 200" in data


def _tls_socket(hook: Hook) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(hook.ca))
    raw = socket.create_connection(("127.0.0.1", hook.server.bound_port))
    return ctx.wrap_socket(raw, server_hostname="localhost")


def test_webhook_wrong_path_with_a_body_closes_the_connection(
    start_hook: Callable[..., Hook], tls: dict[str, Path]
) -> None:
    hook = start_hook(exchange=False)
    with _tls_socket(hook) as sock:
        sock.sendall(request("POST", "/elsewhere", SMUGGLED))
        data = responses_until_close(sock)

    assert data.count(b"HTTP/1.1 ") == 1 and data.startswith(b"HTTP/1.1 404")


def test_webhook_keeps_alive_after_a_review_whose_body_it_read(
    start_hook: Callable[..., Hook], tls: dict[str, Path]
) -> None:
    hook = start_hook(exchange=False)
    body = b'{"kind": "AdmissionReview", "request": {"uid": "u-1"}}'
    with _tls_socket(hook) as sock:
        sock.sendall(request("POST", "/mutate", body) + LAST)
        data = responses_until_close(sock)

    assert data.count(b"HTTP/1.1 200") == 2 and b'"uid": "u-1"' in data


class BrokenCollector:
    def collect(self) -> Iterator[object]:
        raise RuntimeError("a collector that fails")


def test_a_route_that_raises_gets_a_500_and_the_server_goes_on() -> None:
    registry = CollectorRegistry()
    registry.register(BrokenCollector())  # type: ignore[arg-type]
    server = OpsServer(
        registry, health=lambda: (True, {}), ready=lambda: (True, {}), bind="127.0.0.1", port=0
    )
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(request("GET", "/metrics"))
            data = responses_until_close(sock)
        assert data.startswith(b"HTTP/1.1 500") and b'"internal error"' in data
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(LAST)
            assert responses_until_close(sock).startswith(b"HTTP/1.1 200")
    finally:
        server.stop()
