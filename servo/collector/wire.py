"""PURE: the collector's side of the protocol: which URL names which account and app id, what
a POST body must hold (a MEASUREMENT without the fields that fail event_check, named in the
answer), what WHATS_NEXT is answered, and whether a bearer token may write to an account
(constant-time compares of every token).
"""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from servo.collector.settings import TokenGrant
from servo.core.event_check import checked_measurement

MAX_BODY_BYTES = 1024 * 1024
# Largest event kept, as stored JSON: a servo's MEASUREMENT is about 1 KiB.
MAX_EVENT_BYTES = 64 * 1024
# Longest account or app id taken from a URL: app ids come from pod env values, usually short.
MAX_NAME_CHARS = 1024
DEFAULT_ANSWER: Mapping[str, Any] = {"cmd": "MEASURE", "param": {}}
EVENTS = frozenset(
    {"HELLO", "GOODBYE", "WHATS_NEXT", "DESCRIPTION", "ADJUSTMENT", "MEASUREMENT", "DIAG"}
)


class BadRequest(ValueError):
    """A request the collector refuses with 400 (the message says why)."""

    status = 400


class TooLarge(BadRequest):
    status = 413


@dataclass(frozen=True, slots=True)
class Post:
    """A protocol call, checked."""

    account: str
    app_id: str
    event: str
    event_id: str
    body: Mapping[str, Any]
    # MEASUREMENT fields left out of `body`, and why.
    dropped: Mapping[str, str] = field(default_factory=dict)


def _null_constant(_name: str) -> None:
    """NaN and Infinity are not JSON: read as null, so that the checks drop them."""
    return None


def route_of(path: str) -> tuple[str, str] | None:
    """(account, app id) of a protocol URL, or None for any other path."""
    parts = [unquote(p) for p in urlsplit(path).path.split("/") if p]
    if len(parts) == 5 and parts[0] == "accounts" and parts[2] == "applications":
        if parts[4] == "servo":
            return parts[1], parts[3]
    if len(parts) == 4 and parts[0] == "metrics" and parts[3] == "servo":
        return parts[1], parts[2]
    return None


def parse_post(
    account: str,
    app_id: str,
    raw: bytes,
    idempotency_key: str | None,
    *,
    max_event_bytes: int = MAX_EVENT_BYTES,
) -> Post:
    """PURE: check a protocol body; raise BadRequest naming what is wrong."""
    if len(account) > MAX_NAME_CHARS or len(app_id) > MAX_NAME_CHARS:
        raise BadRequest(f"account and app id: at most {MAX_NAME_CHARS} characters each")
    try:
        doc = json.loads(raw, parse_constant=_null_constant)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"body is not JSON: {e}") from e
    except RecursionError:
        raise BadRequest("body is nested too deeply") from None
    if not isinstance(doc, dict):
        raise BadRequest("body: expected a JSON object with event and param")
    event = doc.get("event")
    if not isinstance(event, str) or event not in EVENTS:
        raise BadRequest(f"event: expected one of {', '.join(sorted(EVENTS))}, got {event!r}"[:300])
    event_id = doc.get("id") or idempotency_key
    if event_id is not None and (not isinstance(event_id, str) or len(event_id) > 200):
        raise BadRequest("id: expected a string of at most 200 characters")
    dropped: Mapping[str, str] = {}
    if event == "MEASUREMENT":
        doc["param"], dropped = checked_measurement(doc.get("param"))
    try:
        size = len(json.dumps(doc, separators=(",", ":"), allow_nan=False).encode())
    except (ValueError, RecursionError):
        raise BadRequest("body is nested too deeply") from None
    if size > max_event_bytes:
        raise TooLarge(f"event of {size} bytes is over {max_event_bytes}")
    return Post(account, app_id, event, event_id or f"{uuid.uuid4()}:{event}", doc, dropped)


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


def grants_of(tokens: Collection[str | TokenGrant]) -> tuple[TokenGrant, ...]:
    """Bare strings are tokens for any account."""
    return tuple(t if isinstance(t, TokenGrant) else TokenGrant(t) for t in tokens)


def authorise(header: str | None, grants: Collection[TokenGrant], account: str) -> int:
    """0 when `Authorization: Bearer <token>` may write to `account`; else 401 (no such
    token) or 403 (a token for other accounts). Every token is compared, in constant time."""
    if not grants:
        return 0
    given = (header[7:].strip() if header and header.startswith("Bearer ") else "").encode()
    known = allowed = False
    for grant in grants:  # no early exit: the time taken says nothing about which one matched
        match = hmac.compare_digest(given, grant.token.encode())
        known |= match
        allowed |= match and grant.account in (None, account)
    if not given or not known:
        return 401
    return 0 if allowed else 403
