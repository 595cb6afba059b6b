"""RecordingBackend: a real HTTP backend on 127.0.0.1 that records what the servo sends.

It stands in for the measurement backend (OPTUNE_URL) in integration tests: it records every
request, answers like the Opsani servo protocol (``WHATS_NEXT`` gets a ``MEASURE`` command, all
else ``{"status": "ok"}``) and can be told to fail, answer late or reset the connection for the
next requests. It never judges auth or payloads; tests assert on what it recorded.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.fakes.tcpserver import ConnectionTrackingServer

__all__ = ["Received", "RecordingBackend"]

HOST = "127.0.0.1"
# Statuses whose responses must not carry a body nor a Content-Length (RFC 9110, 6.4.1).
NO_BODY_STATUSES = frozenset({204, 304})
# Body of scripted non-2xx answers; injected failures take theirs from fail_next().
SCRIPTED_ERROR_BODY = b'{"error":"scripted"}'
DEFAULT_REPLY: dict[str, Any] = {"status": "ok"}
WHATS_NEXT_REPLY: dict[str, Any] = {"cmd": "MEASURE", "param": {}}


class _Headers(dict[str, str]):
    """Request headers with lower-cased keys; look-ups ignore case, as HTTP does."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__()
        for key, value in items:
            low = key.lower()
            # Repeated fields combine into one comma-separated value (RFC 9110, 5.3).
            self[low] = f"{self[low]}, {value}" if low in self else value

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


@dataclass(frozen=True)
class Received:
    """One request as the backend saw it; ``json`` is None when the body is not valid JSON."""

    method: str
    path: str
    headers: dict[str, str]  # keys lower-cased; look-ups are case-insensitive
    body: bytes
    json: Any | None
    # time.monotonic() once the request was read (shared by every process on the machine, so a
    # bench compares it with stamps taken elsewhere).
    read_at: float = 0.0

    @property
    def event(self) -> str | None:
        """The ``event`` field of a JSON object body, else None."""
        if isinstance(self.json, dict) and isinstance(self.json.get("event"), str):
            return str(self.json["event"])
        return None

    @property
    def param(self) -> Any:
        """The ``param`` field of a JSON object body, else None."""
        return self.json.get("param") if isinstance(self.json, dict) else None

    @property
    def event_id(self) -> str | None:
        """The body's ``id``, else the ``Idempotency-Key`` header, else None."""
        if isinstance(self.json, dict) and self.json.get("id") is not None:
            return str(self.json["id"])
        key = self.headers.get("Idempotency-Key")
        return str(key) if key is not None else None


@dataclass(frozen=True)
class _Action:
    """What to do with one upcoming request instead of the normal answer."""

    kind: str  # "status" | "delay" | "reset"
    status: int = 200
    body: bytes | None = None  # None: the normal reply for 2xx, SCRIPTED_ERROR_BODY otherwise
    retry_after_s: float | None = None
    delay_s: float = 0.0


class _Server(ConnectionTrackingServer):
    """The recording backend's server: knows its open connections, so stop() can cut them."""

    def __init__(self, address: tuple[str, int], backend: RecordingBackend) -> None:
        self.backend = backend
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    """Reads one request, records it, and answers as the backend's next action says."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, a kept-alive client waits ~40 ms
    # for the delayed ACK before the body arrives.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests read the records, not the access log."""

    def do_POST(self) -> None:
        self._serve()

    do_PUT = do_PATCH = do_DELETE = do_GET = do_POST

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = self.rfile.readline(65537)
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                break
            parts.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF that ends each chunk
        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
            pass  # trailer fields, ignored
        return b"".join(parts)

    def _serve(self) -> None:
        backend = self.server.backend
        body = self._read_body()
        try:
            parsed: Any | None = json.loads(body) if body else None
        except ValueError:
            parsed = None
        req = Received(
            method=self.command,
            path=self.path,
            headers=_Headers(self.headers.items()),
            body=body,
            json=parsed,
            read_at=time.monotonic(),
        )
        action = backend._record_and_pop(req)

        if action is not None and action.kind == "reset":
            self.server.reset(self.connection)
            self.close_connection = True
            return
        if action is not None and action.kind == "delay":
            if backend._stopping.wait(action.delay_s):
                self.close_connection = True
                return
            action = None

        status = action.status if action is not None else 200
        if action is not None and action.body is not None:
            payload = action.body
        elif 200 <= status < 300:
            payload = json.dumps(backend._reply_for(req)).encode()
        else:
            payload = SCRIPTED_ERROR_BODY
        if 200 <= status < 300:
            backend._accept(req)

        self.send_response(status)
        if action is not None and action.retry_after_s is not None:
            self.send_header("Retry-After", _format_seconds(action.retry_after_s))
        if status in NO_BODY_STATUSES:
            self.end_headers()
            return
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _format_seconds(seconds: float) -> str:
    """Retry-After value: whole seconds as HTTP says ("2"); fractions ("0.2") for fast tests."""
    return str(int(seconds)) if float(seconds).is_integer() else format(seconds, "g")


class RecordingBackend:
    """Fake measurement backend: records every request, answers 2xx unless told otherwise.

    Injected behaviours (fail_next, delay_next, reset_next, script) queue up in the order they
    are asked for and each applies to one upcoming request; after the queue, answers are normal.
    """

    def __init__(
        self,
        *,
        reply: dict[str, Any] | None = None,
        whats_next_reply: dict[str, Any] | None = None,
    ) -> None:
        self._reply = dict(reply) if reply is not None else dict(DEFAULT_REPLY)
        self._whats_next = (
            dict(whats_next_reply) if whats_next_reply is not None else dict(WHATS_NEXT_REPLY)
        )
        self._cond = threading.Condition()
        self._received: list[Received] = []
        self._accepted: list[Received] = []
        self._actions: deque[_Action] = deque()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self._changes = 0  # bumped on every record, so wait_for() never misses one

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> RecordingBackend:
        """Listen on 127.0.0.1 (port 0 the first time, the same port after a stop())."""
        if self._server is not None:
            raise RuntimeError("RecordingBackend already started")
        self._stopping.clear()
        self._server = _Server((HOST, self._port), self)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"recording-backend-{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut open connections; records are kept. Safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.cut_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> RecordingBackend:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234``; known once start() has bound a port."""
        if not self._port:
            raise RuntimeError("RecordingBackend has no port yet: call start() first")
        return f"http://{HOST}:{self._port}"

    def url_template(self) -> str:
        """An OPTUNE_URL for this backend, with ``{acct}`` and ``{app_id}`` left to fill."""
        return f"{self.url}/accounts/{{acct}}/applications/{{app_id}}/servo"

    # -- what was received -----------------------------------------------------------------

    @property
    def received(self) -> list[Received]:
        """Every request so far, injected failures included (a snapshot, oldest first)."""
        with self._cond:
            return list(self._received)

    @property
    def accepted(self) -> list[Received]:
        """Requests answered 2xx (a snapshot, in the order the answers were sent)."""
        with self._cond:
            return list(self._accepted)

    def events(self, name: str) -> list[Received]:
        """Accepted requests whose body's ``event`` is ``name``."""
        return [r for r in self.accepted if r.event == name]

    def clear(self) -> None:
        """Forget what was received and drop queued injections."""
        with self._cond:
            self._received.clear()
            self._accepted.clear()
            self._actions.clear()

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 10) -> bool:
        """Wait until ``predicate()`` is true; re-checked on each request and every 50 ms."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._cond:
                seen = self._changes
            if predicate():  # called without the lock: it may call received/accepted/events
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with self._cond:
                if self._changes == seen:
                    self._cond.wait(min(left, 0.05))

    # -- fault injection -------------------------------------------------------------------

    def fail_next(
        self,
        count: int,
        status: int = 503,
        *,
        retry_after_s: float | None = None,
        body: bytes = b'{"error":"injected"}',
    ) -> None:
        """Answer the next ``count`` requests with ``status`` (and Retry-After if given)."""
        action = _Action("status", status=status, body=body, retry_after_s=retry_after_s)
        self._enqueue([action] * count)

    def delay_next(self, count: int, seconds: float) -> None:
        """Answer the next ``count`` requests normally but only after ``seconds``."""
        self._enqueue([_Action("delay", delay_s=seconds)] * count)

    def reset_next(self, count: int) -> None:
        """Read the next ``count`` requests, then reset the connection without answering."""
        self._enqueue([_Action("reset")] * count)

    def script(self, statuses: list[int]) -> None:
        """Answer the next requests with these statuses in turn, then normally again."""
        self._enqueue([_Action("status", status=s) for s in statuses])

    # -- used by the handler ---------------------------------------------------------------

    def _enqueue(self, actions: list[_Action]) -> None:
        with self._cond:
            self._actions.extend(actions)

    def _record_and_pop(self, req: Received) -> _Action | None:
        with self._cond:
            self._received.append(req)
            action = self._actions.popleft() if self._actions else None
            self._changes += 1
            self._cond.notify_all()
            return action

    def _accept(self, req: Received) -> None:
        with self._cond:
            self._accepted.append(req)
            self._changes += 1
            self._cond.notify_all()

    def _reply_for(self, req: Received) -> dict[str, Any]:
        return self._whats_next if req.event == "WHATS_NEXT" else self._reply
