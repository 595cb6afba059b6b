"""The operations endpoint: `/metrics` (Prometheus text format), `/healthz`, `/readyz`.

/healthz answers 200 while the servo's loops run (the kubelet restarts the pod otherwise);
/readyz answers 200 once every watched scope was listed and its watch is current (a stream is
open or was within the idle timeout). Both say why in a small JSON body.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

logger = logging.getLogger(__name__)

# (ok, details) for a probe.
Probe = Callable[[], tuple[bool, Mapping[str, Any]]]


class OpsServer:
    def __init__(
        self, registry: CollectorRegistry, *, health: Probe, ready: Probe, bind: str, port: int
    ) -> None:
        self.registry, self.health, self.ready = registry, health, ready
        self._bind, self._port = bind, port
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        owner = self

        class Handler(_Handler):
            ops = owner

        self._server = ThreadingHTTPServer((self._bind, self._port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                         name="ops-http", daemon=True).start()  # fmt: skip
        logger.info("metrics and probes listening", extra={"port": self.port})

    @property
    def port(self) -> int:
        return int(self._server.server_address[1]) if self._server is not None else 0

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Handler(BaseHTTPRequestHandler):
    ops: OpsServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle and the peer's
    # delayed ACK hold each keep-alive answer back by ~40 ms.
    disable_nagle_algorithm = True
    server_version = "servo-ops"
    timeout = 10

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # probes every few seconds would drown the log

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _probe(self, probe: Probe) -> None:
        try:
            ok, details = probe()
        except Exception as e:  # noqa: BLE001 - a probe that fails says so, it does not crash
            ok, details = False, {"error": str(e)}
        body = json.dumps({"status": "ok" if ok else "failing", **details}).encode()
        self._send(200 if ok else 503, body, "application/json")

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(self.ops.registry), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._probe(self.ops.health)
        elif path == "/readyz":
            self._probe(self.ops.ready)
        else:
            self._send(404, b'{"error": "try /metrics, /healthz or /readyz"}', "application/json")
