"""The admission webhook's HTTPS server: POST AdmissionReviews to the configured path, GET
/healthz and /readyz for the kubelet.

TLS is wrapped per connection and the handshake runs in the handler's thread (a slow client
cannot stall accept); the answer to a review comes from webhook.Admitter, which never raises.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from servo.core.settings import WEBHOOK_PORT
from servo.http.server import BodyHandler
from servo.webhook.config import DEFAULT_BIND, MAX_BODY_BYTES

if TYPE_CHECKING:
    from servo.webhook.review import Admitter

logger = logging.getLogger(__name__)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], owner: WebhookServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        if self.owner.before_accept is not None:
            self.owner.before_accept()
        # The handshake runs in the handler's thread, so a slow client cannot stall accept().
        return self.owner.ssl_context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        ), addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.warning(
            "webhook connection failed", extra={"peer": str(client_address)}, exc_info=True
        )


class _Handler(BodyHandler):
    # Seconds a connection may idle or dawdle (the API server's own timeout is 5 s or less).
    timeout = 10
    server: _Server

    def setup(self) -> None:
        super().setup()
        conn = self.connection
        if isinstance(conn, ssl.SSLSocket):
            conn.do_handshake()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("webhook request", extra={"line": format % args})

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        if urlsplit(self.path).path in ("/healthz", "/readyz"):
            self.send_json(200, {"status": "ok"})
        else:
            self.send_json(404, {"error": "no such page"})

    def do_POST(self) -> None:  # noqa: N802
        owner = self.server.owner
        # The API server appends ?timeout=5s to the configured path.
        if urlsplit(self.path).path != owner.path:
            self.send_json(404, {"error": f"POST AdmissionReviews to {owner.path}"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY_BYTES:
            self.send_json(413 if length > 0 else 400, {"error": "bad Content-Length"})
            return
        # The Admitter never raises; should it, the handler base answers 500.
        self.send_json(*owner.admitter.answer(self.rfile.read(length)))


@dataclass
class WebhookServer:
    """HTTPS server for AdmissionReviews; `start()` binds (port 0 = any), `stop()` closes."""

    admitter: Admitter
    ssl_context: ssl.SSLContext
    bind: str = DEFAULT_BIND
    port: int = WEBHOOK_PORT.default
    path: str = "/mutate"
    # Called before each accepted connection is wrapped (certificate reload).
    before_accept: Callable[[], None] | None = None
    _server: _Server | None = None
    _thread: threading.Thread | None = None

    def start(self) -> WebhookServer:
        self._server = _Server((self.bind, self.port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )
        self._thread.start()
        logger.info("webhook listening", extra={"bind": self.bind, "port": self.bound_port})
        return self

    @property
    def serving(self) -> bool:
        """The accept loop runs (for /healthz on the metrics port)."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def bound_port(self) -> int:
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> WebhookServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
