"""The bundled collector: the backend side of the protocol, storing every event in SQLite.

POST `/accounts/{acct}/applications/{app_id}/servo` (and the original's
`/metrics/{acct}/{app_id}/servo`) with `{"id"?, "event", "param"}`. Bearer tokens, each for one
account or any, are checked with a constant-time compare; without tokens it listens on loopback
only unless declared open. A MEASUREMENT is kept without the figures that fail the checks of
event_check (the answer names them); each event is stored once per event id within its
account, app id and event type. WHATS_NEXT is answered from a responses file (per app id, `*`
for the rest), MEASURE by default. GET `/` is the page of jobs and their histories;
`/api/jobs` and `/api/jobs/<app id>` are its JSON (strict: never NaN); `/healthz` says the
process is up.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlsplit

from servo.collector.settings import TokenGrant, bind_problem
from servo.collector.wire import (
    MAX_BODY_BYTES,
    MAX_EVENT_BYTES,
    BadRequest,
    Post,
    answer_for,
    authorise,
    grants_of,
    load_responses,
    parse_post,
    route_of,
)
from servo.core.summary import JobSummary, run_from_body, summarise
from servo.http.server import BackgroundServer, BodyHandler
from servo.store.events import EventStore, StoredEvent, pod_uid_of

logger = logging.getLogger(__name__)

__all__ = ["MAX_BODY_BYTES", "Collector", "load_responses", "page_html"]


@dataclass
class Collector:
    """The server; `start()` binds (port 0 = any free port), `stop()` closes."""

    store: EventStore
    # Bearer tokens; a bare string may write to any account.
    tokens: Collection[str | TokenGrant] = frozenset()
    responses: Mapping[str, Any] = field(default_factory=dict)
    bind: str = "127.0.0.1"
    port: int = 8090
    # Declared open: without tokens, it may listen beyond loopback.
    is_open: bool = False
    max_event_bytes: int = MAX_EVENT_BYTES
    grants: tuple[TokenGrant, ...] = field(default=(), init=False)
    _server: BackgroundServer | None = None

    def __post_init__(self) -> None:
        self.grants = grants_of(self.tokens)

    def start(self) -> Collector:
        """Listen; ValueError when the bind rule forbids the address."""
        owner = self
        problem = bind_problem(self.bind, has_tokens=bool(self.grants), open_=self.is_open)
        if problem:
            raise ValueError(problem)

        class Handler(_Handler):
            collector = owner

        self._server = BackgroundServer(Handler, self.bind, self.port, "collector")
        if not self.grants and self.is_open:
            logger.warning(
                "collector is open: anyone who reaches it may write events",
                extra={"bind": self.bind},
            )
        elif not self.grants:
            logger.warning(
                "collector accepts events without a token, from this host only",
                extra={"bind": self.bind},
            )
        logger.info("collector listening", extra={"url": self.url, "db": str(self.store.path)})
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://{self._server.host}:{self._server.port}"

    def url_template(self) -> str:
        """An OPTUNE_URL for servos reporting here."""
        return self.url + "/accounts/{acct}/applications/{app_id}/servo"

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what the handler asks of it --------------------------------------------------

    def receive(self, post: Post) -> tuple[bool, Mapping[str, Any]]:
        """Store one event; (was it new, the answer)."""
        new = self.store.add(
            StoredEvent(
                received_at=time.time(),
                account=post.account,
                app_id=post.app_id,
                event_id=post.event_id,
                event=post.event,
                body=post.body,
                pod_uid=pod_uid_of(post.body),
            )
        )
        answer = answer_for(post, self.responses)
        return new, {**answer, "dropped": dict(post.dropped)} if post.dropped else answer

    def jobs(self) -> list[dict[str, Any]]:
        runs = [
            r
            for e in self.store.events(event="MEASUREMENT")
            if (r := run_from_body(e.app_id, e.received_at, e.body))
        ]
        return [summary_json(s) for s in summarise(runs)]

    def history(self, app_id: str) -> list[dict[str, Any]]:
        out = []
        for e in self.store.events(event="MEASUREMENT", app_id=app_id):
            run = run_from_body(e.app_id, e.received_at, e.body)
            if run is not None:
                out.append(
                    {
                        "at": run.at_s,
                        "failed": run.failed,
                        "exitcode": run.exitcode,
                        "pod": run.pod,
                        "message": run.message,
                        **run.figures,
                    }
                )
        return out


def summary_json(s: JobSummary) -> dict[str, Any]:
    return {
        "app_id": s.app_id,
        "runs": s.runs,
        "failures": s.failures,
        "last_run": s.last_run_s,
        "trend_pct": s.trend_pct,
        **{name: {"p50": sp.p50, "p95": sp.p95, "max": sp.max} for name, sp in s.spreads.items()},
    }


def strict_json(doc: Any) -> bytes:
    """JSON that every parser takes: ValueError rather than a NaN or an Infinity."""
    return json.dumps(doc, allow_nan=False).encode()


def page_html() -> bytes:
    return resources.files("servo.collector").joinpath("web/index.html").read_bytes()


class _Handler(BodyHandler):
    collector: Collector
    server_version = "servo-collector"
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("collector: " + format, *args)

    def _send(self, status: int, data: bytes, content_type: str = "application/json") -> None:
        self.send_body(status, data, content_type, Cache_Control="no-store")

    def _json(self, status: int, doc: Any) -> None:
        try:
            data = strict_json(doc)
        except (ValueError, RecursionError):
            logger.exception(
                "collector could not encode an answer", extra={"path": self.path[:200]}
            )
            status, data = 500, strict_json({"error": "could not encode the answer"})
        self._send(status, data)

    def _refuse(self, status: int, why: str, *, unread: bool = False) -> None:
        """Answer an error; with the body left unread, close rather than parse it as the next
        request."""
        if unread:
            self.close_connection = True
        logger.warning(
            "collector refused a request",
            extra={"status": status, "why": why, "path": self.path[:200]},
        )
        self._json(status, {"error": why})

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        route = route_of(self.path)
        if route is None:
            self._refuse(
                404, "POST events to /accounts/{acct}/applications/{app_id}/servo", unread=True
            )
            return
        denied = authorise(self.headers.get("Authorization"), self.collector.grants, route[0])
        if denied:
            why = (
                "missing or wrong bearer token"
                if denied == 401
                else ("this bearer token may not write to this account")
            )
            self._refuse(denied, why, unread=True)
            return
        raw = self._body()
        if raw is None:
            return
        try:
            post = parse_post(
                *route,
                raw,
                self.headers.get("Idempotency-Key"),
                max_event_bytes=self.collector.max_event_bytes,
            )
            new, answer = self.collector.receive(post)
        except BadRequest as e:
            self._refuse(e.status, str(e))
            return
        except Exception:  # noqa: BLE001 - a store failure is the sender's cue to retry
            logger.exception("collector could not store an event")
            self._json(503, {"error": "could not store the event; retry"})
            return
        self._log_stored(post, new=new)
        self._json(200, answer)

    def _body(self) -> bytes | None:
        """The request body, or None once a refusal has been sent."""
        try:
            length = int(self.headers.get("Content-Length") or "")
        except ValueError:
            self._refuse(411, "a Content-Length is required", unread=True)
            return None
        if not 0 <= length <= MAX_BODY_BYTES:
            self._refuse(413, f"body of {length} bytes is over {MAX_BODY_BYTES}", unread=True)
            return None
        return self.rfile.read(length)

    @staticmethod
    def _log_stored(post: Post, *, new: bool) -> None:
        fields = {"event": post.event, "app_id": post.app_id, "event_id": post.event_id}
        if post.dropped:
            logger.warning(
                "event stored without fields that failed the checks",
                extra={**fields, "dropped": dict(post.dropped)},
            )
        logger.info("event stored" if new else "duplicate event ignored", extra=fields)

    def do_GET(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        try:
            if path in ("/", "/index.html"):
                self._send(200, page_html(), "text/html; charset=utf-8")
            elif path == "/healthz":
                self._json(200, {"status": "ok"})
            elif path == "/api/jobs":
                self._json(200, self.collector.jobs())
            elif path.startswith("/api/jobs/") and len(path) > len("/api/jobs/"):
                self._json(200, self.collector.history(unquote(path[len("/api/jobs/") :])))
            else:
                self._refuse(404, "no such page")
        except Exception:  # noqa: BLE001 - one bad read answers 500, the server goes on
            logger.exception("collector could not answer", extra={"path": path[:200]})
            self._json(500, {"error": "could not read the store"})
