"""The flaky proxy in front of the collector: forwards the servo's POSTs, and with a seeded
random.Random fails a share of them (ALL_FAULTS, before or after the collector stored the
event), refuses all of them, or stops listening. Each request becomes a WireRecord; the
collector itself is servo/collector/server.py.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from tests.support.fakes.tcpserver import ConnectionTrackingServer
from tests.support.faults.settings import FAULT_SLEEP_S, HOST

# Answer without forwarding / forward, then fail the answer (the collector stored it: the
# servo's retry is a duplicate delivery the stable id must absorb).
FAULTS_BEFORE = ("500", "503", "timeout", "reset")
FAULTS_AFTER = ("timeout-after", "reset-after", "503-after")
ALL_FAULTS = FAULTS_BEFORE + FAULTS_AFTER


@dataclass(frozen=True, slots=True)
class WireRecord:
    """One request as the proxy saw it."""

    event: str | None
    event_id: str | None
    uid: str | None  # the pod uid a MEASUREMENT names
    fault: str  # "" for a clean pass, "refused" in refuse mode, else one of ALL_FAULTS
    forwarded: int | None  # the collector's status when forwarded, else None
    answered: int | None  # the status the servo got; None after a reset or a timeout


def _describe(body: bytes) -> tuple[str | None, str | None, str | None]:
    try:
        doc = json.loads(body)
    except ValueError:
        return None, None, None
    if not isinstance(doc, dict):
        return None, None, None
    param = doc.get("param")
    ann = param.get("annotations") if isinstance(param, dict) else None
    uid = ann.get("uid") if isinstance(ann, dict) else None
    return doc.get("event"), doc.get("id"), uid if isinstance(uid, str) else None


class _ProxyServer(ConnectionTrackingServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a SIGKILLed servo resets its connections; that is the point here."""

    def __init__(self, address: tuple[str, int], proxy: FlakyProxy) -> None:
        self.proxy = proxy
        super().__init__(address, _ProxyHandler)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _ProxyServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet: the proxy's records are the log."""

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        proxy = self.server.proxy
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        event, event_id, uid = _describe(body)
        fault, latency_s = proxy._decide()
        forwarded: int | None = None
        answered: int | None = None
        try:
            if fault in ("refused", "500", "503"):
                answered = 503 if fault != "500" else 500
                self._answer(answered, b'{"error":"injected"}', retry_after="0.1")
            elif fault == "timeout":
                self._hang(proxy)
            elif fault == "reset":
                self._reset()
            else:
                forwarded, payload = proxy._forward(self.path, body, dict(self.headers.items()))
                if fault == "timeout-after":
                    self._hang(proxy)
                elif fault == "reset-after":
                    self._reset()
                elif fault == "503-after":
                    answered = 503
                    self._answer(503, b'{"error":"injected after storing"}')
                else:
                    if latency_s > 0:
                        proxy._stopping.wait(latency_s)
                    answered = forwarded
                    self._answer(forwarded, payload)
        finally:
            proxy._record(WireRecord(event, event_id, uid, fault, forwarded, answered))

    def _answer(self, status: int, payload: bytes, *, retry_after: str | None = None) -> None:
        self.send_response(status)
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _hang(self, proxy: FlakyProxy) -> None:
        """Answer nothing until the client's timeout has passed, then close."""
        proxy._stopping.wait(proxy.hang_s)
        self.close_connection = True

    def _reset(self) -> None:
        self.server.reset(self.connection)
        self.close_connection = True


class FlakyProxy:
    """An HTTP proxy on 127.0.0.1 in front of the collector that, with a seeded random.Random,
    fails a share of the requests (ALL_FAULTS), answers 503 to all of them (`refuse`), or stops
    listening altogether (`down()`, then `up()` on the same port)."""

    def __init__(
        self,
        target: str,
        *,
        seed: int = 0,
        fault_rate: float = 0.0,
        faults: Iterable[str] = ALL_FAULTS,
        latency_s: tuple[float, float] = (0.0, 0.0),
        hang_s: float = FAULT_SLEEP_S,
    ) -> None:
        parts = urlsplit(target)
        self._target = (parts.hostname or HOST, parts.port or 80)
        self._rng = random.Random(f"proxy-{seed}")
        self.fault_rate = fault_rate
        self.faults = tuple(faults)
        self.latency_s = latency_s
        self.hang_s = hang_s
        self.refuse = False
        self._lock = threading.Lock()
        self._records: list[WireRecord] = []
        self._stopping = threading.Event()
        self._server: _ProxyServer | None = None
        self._port = 0

    def up(self) -> FlakyProxy:
        """Listen (a free port the first time, the same port after `down()`)."""
        server = _ProxyServer((HOST, self._port), self)
        self._port = server.server_address[1]
        threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"flaky-proxy-{self._port}",
        ).start()
        self._server = server
        return self

    start = up

    def down(self) -> None:
        """Stop listening (connection refused) and cut the open connections."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.cut_connections()
            server.server_close()

    def stop(self) -> None:
        self._stopping.set()
        self.down()

    @property
    def listening(self) -> bool:
        return self._server is not None

    def url_template(self) -> str:
        return f"http://{HOST}:{self._port}/accounts/{{acct}}/applications/{{app_id}}/servo"

    @property
    def records(self) -> list[WireRecord]:
        with self._lock:
            return list(self._records)

    def _record(self, rec: WireRecord) -> None:
        with self._lock:
            self._records.append(rec)

    def _decide(self) -> tuple[str, float]:
        with self._lock:
            if self.refuse:
                return "refused", 0.0
            fault = ""
            if self.fault_rate > 0 and self._rng.random() < self.fault_rate:
                fault = self._rng.choice(self.faults)
            low, high = self.latency_s
            return fault, (self._rng.uniform(low, high) if high > 0 else 0.0)

    def _forward(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(*self._target, timeout=10)
        try:
            given = {k.lower(): v for k, v in headers.items()}
            fwd = {"Content-Type": "application/json"}
            for name in ("Authorization", "Idempotency-Key", "User-Agent"):
                if given.get(name.lower()):
                    fwd[name] = given[name.lower()]
            conn.request("POST", path, body, fwd)
            resp = conn.getresponse()
            return resp.status, resp.read()
        except OSError as e:
            return 502, json.dumps({"error": f"collector unreachable: {e}"}).encode()
        finally:
            conn.close()
