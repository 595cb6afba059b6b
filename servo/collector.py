"""The bundled collector: the backend side of the protocol, storing every event in SQLite.

POST `/accounts/{acct}/applications/{app_id}/servo` (and the original's
`/metrics/{acct}/{app_id}/servo`) with `{"id"?, "event", "param"}`. Bearer tokens are checked
against a configured set with a constant-time compare (none configured: open, with a warning at
start). Each event is stored once per event id (`id` in the body, else the `Idempotency-Key`
header). WHATS_NEXT is answered from a responses file (per app id, `*` for the rest), MEASURE by
default. GET `/` is the page of jobs and their histories; `/api/jobs` and `/api/jobs/<app id>`
are its JSON; `/healthz` says the process is up.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlsplit

from servo.httpserve import BackgroundServer, BodyHandler
from servo.store import EventStore, StoredEvent, pod_uid_of
from servo.summary import run_from_body, summarise

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
DEFAULT_ANSWER: Mapping[str, Any] = {"cmd": "MEASURE", "param": {}}
EVENTS = frozenset(
    {"HELLO", "GOODBYE", "WHATS_NEXT", "DESCRIPTION", "ADJUSTMENT", "MEASUREMENT", "DIAG"}
)


class BadRequest(ValueError):
    """A request the collector refuses with 400 (the message says why)."""


@dataclass(frozen=True, slots=True)
class Post:
    """A protocol call, checked."""

    account: str
    app_id: str
    event: str
    event_id: str
    body: Mapping[str, Any]


def route_of(path: str) -> tuple[str, str] | None:
    """(account, app id) of a protocol URL, or None for any other path."""
    parts = [unquote(p) for p in urlsplit(path).path.split("/") if p]
    if len(parts) == 5 and parts[0] == "accounts" and parts[2] == "applications":
        if parts[4] == "servo":
            return parts[1], parts[3]
    if len(parts) == 4 and parts[0] == "metrics" and parts[3] == "servo":
        return parts[1], parts[2]
    return None


def parse_post(account: str, app_id: str, raw: bytes, idempotency_key: str | None) -> Post:
    """PURE: check a protocol body; raise BadRequest naming what is wrong."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"body is not JSON: {e}") from e
    if not isinstance(doc, dict):
        raise BadRequest("body: expected a JSON object with event and param")
    event = doc.get("event")
    if not isinstance(event, str) or event not in EVENTS:
        raise BadRequest(f"event: expected one of {', '.join(sorted(EVENTS))}, got {event!r}")
    event_id = doc.get("id") or idempotency_key
    if event_id is not None and (not isinstance(event_id, str) or len(event_id) > 200):
        raise BadRequest("id: expected a string of at most 200 characters")
    return Post(account, app_id, event, event_id or f"{uuid.uuid4()}:{event}", doc)


def answer_for(post: Post, responses: Mapping[str, Any]) -> Mapping[str, Any]:
    """PURE: what to answer. WHATS_NEXT gets the app's configured command, others an ack."""
    if post.event != "WHATS_NEXT":
        return {"status": "ok"}
    answer = responses.get(post.app_id, responses.get("*", DEFAULT_ANSWER))
    return answer if isinstance(answer, Mapping) else DEFAULT_ANSWER


def load_responses(text: str) -> dict[str, Any]:
    """A responses file: {"<app id>" or "*": {"cmd": ..., "param": ...}}."""
    doc = json.loads(text)
    if not isinstance(doc, dict):
        raise ValueError("expected a JSON object of app id -> {cmd, param}")
    for app_id, answer in doc.items():
        cmd = answer.get("cmd") if isinstance(answer, dict) else None
        if cmd not in ("DESCRIBE", "ADJUST", "MEASURE", "SLEEP"):
            raise ValueError(f"{app_id}: cmd must be DESCRIBE, ADJUST, MEASURE or SLEEP")
    return doc


def token_ok(header: str | None, tokens: frozenset[str]) -> bool:
    """Constant-time check of `Authorization: Bearer <token>` against every allowed token."""
    if not tokens:
        return True
    given = header[7:].strip() if header and header.startswith("Bearer ") else ""
    ok = False
    for token in tokens:  # no early exit: the time taken says nothing about which one matched
        ok |= hmac.compare_digest(given.encode(), token.encode())
    return ok and bool(given)


@dataclass
class Collector:
    """The server; `start()` binds (port 0 = any free port), `stop()` closes."""

    store: EventStore
    tokens: frozenset[str] = frozenset()
    responses: Mapping[str, Any] = field(default_factory=dict)
    bind: str = "127.0.0.1"
    port: int = 8090
    _server: BackgroundServer | None = None

    def start(self) -> Collector:
        owner = self

        class Handler(_Handler):
            collector = owner

        self._server = BackgroundServer(Handler, self.bind, self.port, "collector")
        if not self.tokens:
            logger.warning("collector accepts events without a token (no tokens configured)")
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
        return new, answer_for(post, self.responses)

    def jobs(self) -> list[dict[str, Any]]:
        runs = [r for e in self.store.events(event="MEASUREMENT")
                if (r := run_from_body(e.app_id, e.received_at, e.body))]  # fmt: skip
        return [summary_json(s) for s in summarise(runs)]

    def history(self, app_id: str) -> list[dict[str, Any]]:
        out = []
        for e in self.store.events(event="MEASUREMENT", app_id=app_id):
            run = run_from_body(e.app_id, e.received_at, e.body)
            if run is not None:
                out.append({"at": run.at_s, "failed": run.failed, "exitcode": run.exitcode,
                            "pod": run.pod, "message": run.message, **run.figures})  # fmt: skip
        return out


def summary_json(s: Any) -> dict[str, Any]:
    return {
        "app_id": s.app_id,
        "runs": s.runs,
        "failures": s.failures,
        "last_run": s.last_run_s,
        "trend_pct": s.trend_pct,
        **{name: {"p50": sp.p50, "p95": sp.p95, "max": sp.max} for name, sp in s.spreads.items()},
    }


def page_html() -> bytes:
    return resources.files("servo").joinpath("web/index.html").read_bytes()


class _Handler(BodyHandler):
    collector: Collector
    server_version = "servo-collector"
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("collector: " + format, *args)

    def _send(self, status: int, data: bytes, content_type: str = "application/json") -> None:
        self.send_body(status, data, content_type, Cache_Control="no-store")

    def _json(self, status: int, doc: Any) -> None:
        self.send_json(status, doc, Cache_Control="no-store")

    def _refuse(self, status: int, why: str) -> None:
        logger.warning("collector refused a request",
                       extra={"status": status, "why": why, "path": self.path[:200]})  # fmt: skip
        self._json(status, {"error": why})

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        route = route_of(self.path)
        if route is None:
            self._refuse(404, "POST events to /accounts/{acct}/applications/{app_id}/servo")
            return
        if not token_ok(self.headers.get("Authorization"), self.collector.tokens):
            self._refuse(401, "missing or wrong bearer token")
            return
        try:
            length = int(self.headers.get("Content-Length") or "")
        except ValueError:
            self.close_connection = True
            self._refuse(411, "a Content-Length is required")
            return
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            self._refuse(413, f"body of {length} bytes is over {MAX_BODY_BYTES}")
            return
        raw = self.rfile.read(length)
        try:
            post = parse_post(*route, raw, self.headers.get("Idempotency-Key"))
            new, answer = self.collector.receive(post)
        except BadRequest as e:
            self._refuse(400, str(e))
            return
        except Exception:  # noqa: BLE001 - a store failure is the sender's cue to retry
            logger.exception("collector could not store an event")
            self._json(503, {"error": "could not store the event; retry"})
            return
        logger.info("event stored" if new else "duplicate event ignored",
                    extra={"event": post.event, "app_id": post.app_id,
                           "event_id": post.event_id})  # fmt: skip
        self._json(200, answer)

    def do_GET(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
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
