"""The stats receiver: a small threaded HTTP server where monitors POST their pod's stats.

POST / (or /stats) with `{"id": <pod uid>, "stats": {...}}` as JSON. The handler is thin:
check size and media type, parse (servo.core.monitor_stats), hand over to `accept`, answer with its
verdict. `accept` decides who may send what (the monitor's projected service-account token,
checked by a TokenReview) so the HTTP layer holds no policy. Every refusal is a JSON
`{"error": ...}` and a log line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from servo.core.monitor_stats import MonitorStats, StatsError, parse_post_body
from servo.http.server import BodyHandler, ServedEndpoint

logger = logging.getLogger(__name__)

# A stats object is under 4 KiB (the termination message limit); leave room, refuse floods.
MAX_BODY_BYTES = 16 * 1024
PATHS = ("/", "/stats")
_DIGITS = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True, slots=True)
class Answer:
    """What `accept` says: an HTTP status and a short message for the monitor's log."""

    status: int
    message: str


# accept(uid, stats, client_ip, bearer_token or None) -> Answer
Accept = Callable[[str, MonitorStats, str, str | None], Answer]


class StatsReceiver(ServedEndpoint):
    """The receiver's server; who may send what is `accept`'s to decide."""

    thread_name = "stats-receiver"

    def __init__(self, accept: Accept, *, bind: str, port: int) -> None:
        super().__init__(bind=bind, port=port)
        self.accept = accept

    def handler(self) -> type[_Handler]:
        receiver = self

        class Handler(_Handler):
            owner = receiver

        return Handler

    def start(self) -> None:
        super().start()
        logger.info("stats receiver listening", extra={"address": self.address})


def _bearer(header: str | None) -> str | None:
    if header and header.startswith("Bearer "):
        return header[len("Bearer ") :].strip() or None
    return None


class _Handler(BodyHandler):
    owner: StatsReceiver
    server_version = "servo-stats"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("stats receiver: " + format, *args)

    def _answer(self, status: int, doc: dict[str, Any], **headers: str) -> None:
        self.send_json(status, doc, **headers)

    def _refuse(self, status: int, why: str, **extra: Any) -> None:
        logger.warning(
            "stats refused",
            extra={"status": status, "why": why, "client": self.client_address[0], **extra},
        )
        self._answer(status, {"error": why})

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's own refusals (bad request line, unsupported method, oversized
        headers) as JSON too; the request's body, if any, was not read: close."""
        self.close_connection = True
        if self.request_version == "HTTP/0.9":
            # A request line the stdlib could not read leaves this default, which would
            # suppress the status line and headers: answer as HTTP/1.0 instead.
            self.request_version = "HTTP/1.0"
        self._refuse(code, message or "bad request")

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        try:
            self._post()
        except Exception:  # noqa: BLE001 - one bad request never stops the receiver
            logger.exception("stats request failed")
            self.close_connection = True
            self._answer(500, {"error": "internal error"})

    def _read_body(self) -> bytes | None:
        """The body by its Content-Length; None after a refusal (then the connection closes,
        so what was not read is never taken for the next request)."""
        if self.headers.get("Transfer-Encoding") is not None:
            self.close_connection = True
            self._refuse(411, "send the body with a Content-Length, not chunked")
            return None
        raw = (self.headers.get("Content-Length") or "").strip()
        if not raw:
            self.close_connection = True
            self._refuse(411, "a Content-Length is required")
            return None
        if not _DIGITS.fullmatch(raw):
            self.close_connection = True
            self._refuse(400, "Content-Length is not a byte count")
            return None
        length = int(raw)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._refuse(413, f"body of {length} bytes is over {MAX_BODY_BYTES}")
            return None
        try:
            body = self.rfile.read(length)
        except OSError:  # a client that stalls past the timeout
            body = b""
        if len(body) < length:
            self.close_connection = True
            self._refuse(400, "the body ended before its Content-Length")
            return None
        return body

    def _post(self) -> None:
        if self.path.split("?", 1)[0] not in PATHS:
            self.close_connection = True  # the body is left unread
            self._refuse(404, f"no such path {self.path[:60]!r}; POST stats to /")
            return
        body = self._read_body()
        if body is None:
            return
        media = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if media != "application/json":
            self._refuse(415, f"Content-Type {media or 'none'!r}: send application/json")
            return
        try:
            uid, stats = parse_post_body(body)
        except StatsError as e:
            self._refuse(400, str(e))
            return
        token = _bearer(self.headers.get("Authorization"))
        answer = self.owner.accept(uid, stats, self.client_address[0], token)
        if answer.status >= 400:
            self._refuse(answer.status, answer.message, uid=uid)
            return
        self._answer(answer.status, {"result": answer.message})

    def do_GET(self) -> None:  # noqa: N802
        self._answer(405, {"error": "POST stats as JSON to /"}, Allow="POST")
