"""What the servo's small HTTP servers share: a keep-alive handler that answers with a body in
one call, and a server run in a daemon thread (port 0 = any free port).

Used by the collector, the stats receiver and the operations endpoint; each keeps only its
routes and rules.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)


class _CountingReader(io.BufferedIOBase):
    """The request stream, counting the bytes handlers read, so the base knows whether a
    request's body is still waiting on the connection."""

    def __init__(self, raw: io.BufferedIOBase) -> None:
        super().__init__()
        self._raw = raw
        self.count = 0

    def read(self, size: int | None = -1, /) -> bytes:
        data = self._raw.read(size)
        self.count += len(data)
        return data

    def read1(self, size: int = -1, /) -> bytes:
        data = self._raw.read1(size)
        self.count += len(data)
        return data

    def readline(self, size: int | None = -1, /) -> bytes:
        line = self._raw.readline(size)
        self.count += len(line)
        return line

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()
        super().close()


class BodyHandler(BaseHTTPRequestHandler):
    """Keep-alive, but an answer sent while the request's body is (partly) unread closes the
    connection: those bytes would otherwise be parsed as the next request."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle and the peer's
    # delayed ACK hold each keep-alive answer back by ~40 ms.
    disable_nagle_algorithm = True
    # A client that stalls mid-request must not hold a thread for long.
    timeout = 10
    _reader: _CountingReader
    _body_starts_at = 0
    _answered = False
    path = ""

    def setup(self) -> None:
        super().setup()
        self._reader = _CountingReader(self.rfile)
        self.rfile = self._reader

    def parse_request(self) -> bool:
        ok = super().parse_request()
        self._body_starts_at = self._reader.count
        self._answered = False
        return ok

    def send_response(self, code: int, message: str | None = None) -> None:
        self._answered = True
        super().send_response(code, message)

    def handle_one_request(self) -> None:
        """One request; whatever a route raises, the client gets a 500 (if nothing was sent
        yet) and the connection is closed: no traceback on stderr, no request left unanswered."""
        try:
            super().handle_one_request()
        except OSError:
            self.close_connection = True  # the client went away: nobody to answer
        except Exception:  # noqa: BLE001 - one bad request never stops the server
            logger.exception("request failed", extra={"path": (self.path or "")[:200]})
            self.close_connection = True
            if not self._answered:
                try:
                    self.send_json(500, {"error": "internal error"})
                except OSError:
                    pass

    def body_unread(self) -> bool:
        """Part of this request's body is still on the connection (or its length unknown)."""
        headers = getattr(self, "headers", None)
        if headers is None:
            return True  # the request line itself was bad: nothing after it can be trusted
        if headers.get("Transfer-Encoding"):
            return True  # chunked bodies are not read by these servers at all
        try:
            length = int(headers.get("Content-Length") or 0)
        except ValueError:
            return True
        return length < 0 or self._reader.count - self._body_starts_at < length

    def send_body(self, status: int, data: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        if self.body_unread():
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def send_json(self, status: int, doc: Any, **headers: str) -> None:
        # NaN and Infinity are not JSON: a strict client could not parse such an answer, so a
        # document holding one fails the route (a 500) rather than going out.
        body = json.dumps(doc, allow_nan=False).encode()
        self.send_body(status, body, "application/json", **headers)


class BackgroundServer:
    """A ThreadingHTTPServer serving from a daemon thread until `stop()`."""

    def __init__(
        self, handler: type[BaseHTTPRequestHandler], bind: str, port: int, name: str
    ) -> None:
        self._server: ThreadingHTTPServer | None = ThreadingHTTPServer((bind, port), handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name=name, daemon=True
        ).start()

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


class ServedEndpoint:
    """An endpoint that owns its BackgroundServer: `start()` binds (port 0 = any free port)
    with the handler class `handler()` gives, `stop()` closes; port and address once started."""

    thread_name = "http"

    def __init__(self, *, bind: str, port: int) -> None:
        self._bind, self._port = bind, port
        self._server: BackgroundServer | None = None

    def handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self) -> None:
        self._server = BackgroundServer(self.handler(), self._bind, self._port, self.thread_name)

    @property
    def address(self) -> str:
        return f"{self._server.host}:{self._server.port}" if self._server is not None else ""

    @property
    def port(self) -> int:
        return self._server.port if self._server is not None else 0

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
