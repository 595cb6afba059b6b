"""The stats receiver: a small threaded HTTP server where monitors POST their pod's stats.

POST / (or /stats) with `{"id": <pod uid>, "stats": {...}}` as JSON. The handler is thin:
check size and media type, parse (servo.stats), hand over to `accept`, answer with its
verdict. `accept` decides who may send what (the monitor's projected service-account token,
checked by a TokenReview) so the HTTP layer holds no policy. Every refusal is a JSON
`{"error": ...}` and a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from servo.httpserve import BackgroundServer, BodyHandler
from servo.stats import MonitorStats, StatsError, parse_post_body

logger = logging.getLogger(__name__)

# A stats object is under 4 KiB (the termination message limit); leave room, refuse floods.
MAX_BODY_BYTES = 16 * 1024
PATHS = ("/", "/stats")


@dataclass(frozen=True, slots=True)
class Answer:
    """What `accept` says: an HTTP status and a short message for the monitor's log."""

    status: int
    message: str


# accept(uid, stats, client_ip, bearer_token or None) -> Answer
Accept = Callable[[str, MonitorStats, str, str | None], Answer]


class StatsReceiver:
    """Owns the server thread; `start()` binds (port 0 = any free port), `stop()` closes."""

    def __init__(self, accept: Accept, *, bind: str, port: int) -> None:
        self.accept = accept
        self._bind, self._port = bind, port
        self._server: BackgroundServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(_Handler):
            owner = receiver

        self._server = BackgroundServer(Handler, self._bind, self._port, "stats-receiver")
        logger.info("stats receiver listening", extra={"address": self.address})

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


def _bearer(header: str | None) -> str | None:
    if header and header.startswith("Bearer "):
        return header[len("Bearer ") :].strip() or None
    return None


class _Handler(BodyHandler):
    owner: StatsReceiver
    server_version = "servo-stats"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("stats receiver: " + format, *args)

    def _answer(self, status: int, doc: dict[str, Any]) -> None:
        self.send_json(status, doc)

    def _refuse(self, status: int, why: str, **extra: Any) -> None:
        logger.warning(
            "stats refused",
            extra={"status": status, "why": why, "client": self.client_address[0], **extra},
        )
        self._answer(status, {"error": why})

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        if self.path.split("?", 1)[0] not in PATHS:
            self._refuse(404, f"no such path {self.path[:60]!r}; POST stats to /")
            return
        try:
            length = int(self.headers.get("Content-Length") or "")
        except ValueError:
            self.close_connection = True
            self._refuse(411, "a Content-Length is required")
            return
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True  # the unread body must not be taken for a request
            self._refuse(413, f"body of {length} bytes is over {MAX_BODY_BYTES}")
            return
        media = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        body = self.rfile.read(length)
        if media != "application/json":
            self._refuse(415, f"Content-Type {media or 'none'!r}: send application/json")
            return
        try:
            uid, stats = parse_post_body(body)
        except StatsError as e:
            self._refuse(400, str(e))
            return
        token = _bearer(self.headers.get("Authorization"))
        try:
            answer = self.owner.accept(uid, stats, self.client_address[0], token)
        except Exception:  # noqa: BLE001 - one bad request never stops the receiver
            logger.exception("stats handling failed", extra={"uid": uid})
            self._answer(500, {"error": "internal error"})
            return
        if answer.status >= 400:
            self._refuse(answer.status, answer.message, uid=uid)
            return
        self._answer(answer.status, {"result": answer.message})

    def do_GET(self) -> None:  # noqa: N802
        self._answer(405, {"error": "POST stats as JSON to /"})
