"""What the servo's small HTTP servers share: a keep-alive handler that answers with a body in
one call, and a server run in a daemon thread (port 0 = any free port).

Used by the collector, the stats receiver and the operations endpoint; each keeps only its
routes and rules.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class BodyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle and the peer's
    # delayed ACK hold each keep-alive answer back by ~40 ms.
    disable_nagle_algorithm = True
    # A client that stalls mid-request must not hold a thread for long.
    timeout = 10

    def send_body(self, status: int, data: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(data)

    def send_json(self, status: int, doc: Any, **headers: str) -> None:
        self.send_body(status, json.dumps(doc).encode(), "application/json", **headers)


class BackgroundServer:
    """A ThreadingHTTPServer serving from a daemon thread until `stop()`."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], bind: str, port: int,
                 name: str) -> None:  # fmt: skip
        self._server: ThreadingHTTPServer | None = ThreadingHTTPServer((bind, port), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                         name=name, daemon=True).start()  # fmt: skip

    @property
    def host(self) -> str:
        return str(self._server.server_address[0]) if self._server is not None else ""

    @property
    def port(self) -> int:
        return int(self._server.server_address[1]) if self._server is not None else 0

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
