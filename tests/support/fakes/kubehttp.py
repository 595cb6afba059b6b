"""The HTTP side of the Kubernetes API emulator: routing, RBAC verbs, bodies, watch streams.

`KubeEmulator` (kubeapi.py) holds the state and the API semantics; this module turns
HTTP/1.1 requests into calls on it and writes the answers as the API server would (JSON bodies
with Content-Length, watches as chunked streams, errors as Status bodies).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from tests.support.fakes.kubeauthz import SSAR, discovery, forbidden, self_review
from tests.support.fakes.kubelogic import (
    NAMESPACE_MISMATCH,
    PATCHERS,
    ApiError,
    Pod,
    Visible,
    err,
    status_body,
)
from tests.support.fakes.kuberoutes import TRUE, Route, route_of, verb_of
from tests.support.fakes.kubeselect import object_filter
from tests.support.fakes.kubetokens import TOKEN_REVIEWS

if TYPE_CHECKING:
    from tests.support.fakes.kubeapi import KubeEmulator


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    verb: str = ""
    namespace: str | None = None
    resource: str = ""  # "pods", "leases", "selfsubjectaccessreviews"; "" for other URLs
    status: int = 0
    peer: str = ""  # the client's host:port: one value per TCP connection


@dataclass(eq=False)  # identity hash: tracked in a set
class WatchState:
    sock: socket.socket
    drop_after: int | None = None
    dropped: bool = False
    sent: int = 0


def _canonical(header: str) -> str:
    """Header names as Go's net/http canonicalizes them (authorization -> Authorization)."""
    return "-".join(part.capitalize() for part in header.split("-"))


def _int(query: dict[str, str], key: str, default: int) -> int:
    value = query.get(key) or ""
    if not value:
        return default
    if not value.isdigit():
        raise err(400, f"invalid {key} {value!r}: must be a non-negative integer")
    return int(value)


def _filter(route: Route, query: dict[str, str]) -> Visible:
    labels, fields = query.get("labelSelector"), query.get("fieldSelector")
    return object_filter(route.namespace, labels, fields, route.resource)


def _counted(query: dict[str, str]) -> bool:
    """The server reports remainingItemCount only for lists without selectors."""
    return not query.get("labelSelector") and not query.get("fieldSelector")


def _continue(query: dict[str, str]) -> tuple[str, int] | None:
    token = query.get("continue")
    if not token:
        return None
    snapshot, _, offset = token.partition(":")
    if not offset.isdigit():
        raise err(400, f"continue key is not valid: {token!r}")
    return snapshot, int(offset)


def _object_for(body: Any, namespace: str, name: str, kind: str = "Pod") -> Pod:
    """An update's body must be an object of the URL's name and namespace."""
    if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
        raise err(400, f"the body is not a {kind} object")
    meta = body["metadata"]
    if meta.get("name") != name:
        raise err(
            400,
            f"the name of the object ({meta.get('name')}) does not match the name on the URL "
            f"({name})",
        )
    if meta.get("namespace") not in (None, namespace):
        raise err(400, NAMESPACE_MISMATCH)
    return body


def json_body(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError as e:
        raise err(400, f"the body is not JSON: {e}") from e


class Handler(BaseHTTPRequestHandler):
    emu: KubeEmulator
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle and the peer's
    # delayed ACK hold each keep-alive answer back by ~40 ms.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    # --- plumbing ---------------------------------------------------------------------

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _wire(self, doc: Any) -> bytes:
        data = json.dumps(doc).encode()
        for old, new in self.emu.wire_substitutions.items():
            data = data.replace(old, new)
        return data

    def _send_json(self, code: int, doc: Any) -> None:
        data = self._wire(doc)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, err: ApiError) -> None:
        self._send_json(err.code, status_body(err.code, err.reason, err.message))

    def _handle(self, method: str) -> None:
        split = urlsplit(self.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        body = self._read_body() if method in ("POST", "PUT", "PATCH", "DELETE") else b""
        host, port = self.client_address[:2]
        rec = RecordedRequest(
            method,
            split.path,
            query,
            {_canonical(k): v for k, v in self.headers.items()},
            body,
            peer=f"{host}:{port}",
        )
        self.emu.requests.append(rec)
        try:
            code, doc = self._answer(method, split.path, query, body, rec)
        except ApiError as e:
            rec.status = e.code
            self._send_error(e)
            return
        except Exception as e:  # a bug in the emulator: answer as the server's panic handler
            rec.status = 500
            self._send_error(err(500, f"emulator error: {e!r}"))
            return
        if code:
            rec.status = code
            self._send_json(code, doc)

    def _answer(
        self, method: str, path: str, query: dict[str, str], body: bytes, rec: RecordedRequest
    ) -> tuple[int, Any]:
        """(status, body) to send; (0, None) when the answer (a watch) was already sent."""
        if path.rstrip("/") == "/version":  # the client asks /version/
            self._authenticate(anonymous_ok=True)
            # Every field a real server sends: the client's model requires them all.
            return 200, {
                "major": "1",
                "minor": "30",
                "gitVersion": "v1.30.0-emu",
                "gitCommit": "0" * 40,
                "gitTreeState": "clean",
                "buildDate": "2024-04-17T17:27:03Z",
                "goVersion": "go1.22.2",
                "compiler": "gc",
                "platform": "linux/amd64",
            }
        doc = discovery(path, self.emu.url.removeprefix("http://"))
        if doc is not None:
            self._authenticate(anonymous_ok=True)
            if self.emu.token is not None and self.headers.get("Authorization") is None:
                # Discovery is for authenticated users only (system:discovery).
                raise err(403, f'forbidden: User "system:anonymous" cannot get path "{path}"')
            return 200, doc
        route = route_of(path)
        if route is None:
            raise err(404, "the server could not find the requested resource")
        verb = verb_of(method, route, query)
        rec.verb, rec.namespace, rec.resource = verb, route.namespace, route.resource
        if verb == "":
            raise err(405, f"the server does not allow this method ({method} {path})")
        self._authenticate(anonymous_ok=False)
        self._authorize(verb, route)
        fault = self.emu.take_fault(verb, route.resource)
        if fault is not None:
            raise err(fault, f"injected fault ({fault})")
        if verb == "watch":
            self._watch(route, query, rec)
            return 0, None
        if route.resource == "leases" and verb == "update":
            return self.emu.lease_replace(*self._target(route), self._lease_body(route, body))
        doc = self._dispatch(verb, route, query, body)
        return (201 if verb == "create" else 200), doc

    def _authenticate(self, *, anonymous_ok: bool) -> None:
        """A bearer token other than the emulator's is a 401; so is none, but for
        non-resource URLs (/version), which anonymous users may read."""
        token, auth = self.emu.token, self.headers.get("Authorization")
        if token is not None and auth != f"Bearer {token}":
            if auth is not None or not anonymous_ok:
                raise err(401, "Unauthorized")

    def _authorize(self, verb: str, route: Route) -> None:
        denied = self.emu.denial(verb, route.namespace, route.resource)
        if denied is not None:
            ns, sub = route.namespace, route.subresource
            raise err(denied, forbidden(self.emu.user, verb, route.resource, sub, ns))

    @staticmethod
    def _target(route: Route) -> tuple[str, str]:
        assert route.namespace is not None and route.name is not None
        return route.namespace, route.name

    def _lease_body(self, route: Route, body: bytes) -> Pod:
        return _object_for(json_body(body), *self._target(route), kind="Lease")

    def _patcher(self) -> Any:
        media = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if media not in PATCHERS:
            raise err(
                415,
                f"the body of the request was in an unknown format - accepted media types "
                f"include: {', '.join(PATCHERS)}",
            )
        return PATCHERS[media]

    def _dispatch(self, verb: str, route: Route, query: dict[str, str], body: bytes) -> Any:
        emu, resource = self.emu, route.resource
        ns, name, sub = route.namespace, route.name, route.subresource
        if resource == SSAR:
            return self_review(json_body(body), emu.denied)
        if resource == TOKEN_REVIEWS:
            return emu.tokens.review(json_body(body))
        if verb == "list":
            return emu.list_objects(
                resource,
                _filter(route, query),
                _int(query, "limit", 0),
                _continue(query),
                _counted(query),
            )
        assert ns is not None
        leases = resource == "leases"
        if verb == "create":
            body_doc = json_body(body)
            if leases:
                return emu.lease_create(ns, body_doc)
            return emu.create_from_request(ns, body_doc)
        assert name is not None
        if verb == "get":
            return emu.lease_get(ns, name) if leases else emu.get_or_404(ns, name)
        if verb == "patch":
            patcher = self._patcher()
            if leases:
                return emu.lease_patch(ns, name, patcher, json_body(body))
            return emu.apply_patch(ns, name, patcher, json_body(body), sub)
        if verb == "update":
            return emu.replace_pod(ns, name, _object_for(json_body(body), ns, name), sub)
        options = json_body(body)
        pre = options.get("preconditions") if isinstance(options, dict) else None
        pre = pre if isinstance(pre, dict) else None
        if leases:
            return emu.lease_delete(ns, name, pre)
        return emu.delete_from_request(ns, name, pre)

    # --- watch ------------------------------------------------------------------------

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _watch(self, route: Route, query: dict[str, str], rec: RecordedRequest) -> None:
        emu = self.emu
        expiry = emu.take_expiry()
        if expiry is True:
            raise err(410, "too old resource version: expired")
        # Bad selectors or versions are a 400 before the 200 goes out, as on the server.
        visible, since = _filter(route, query), _int(query, "resourceVersion", 0)
        timeout_s = _int(query, "timeoutSeconds", 0) or emu.min_request_timeout_s
        bookmarks = query.get("allowWatchBookmarks") in TRUE
        state = WatchState(self.connection)
        events: Iterator[dict[str, Any] | None]
        if expiry is False:
            gone = status_body(410, "Expired", "too old resource version: expired")
            events = iter([{"type": "ERROR", "object": gone}])
        else:
            deadline = time.monotonic() + timeout_s
            events = emu.watch_events(route.resource, visible, since, deadline, bookmarks, state)
        emu.register_watch(state)
        try:
            rec.status = 200
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            if state.drop_after == 0:
                self._cut()
                return
            for event in _until_dropped(events, state):
                if event is None:
                    self._cut()
                    return
                line = self._wire(event) + b"\n"
                if emu.split_chunks and len(line) > 3:
                    third = len(line) // 3
                    for piece in (line[:third], line[third : 2 * third], line[2 * third :]):
                        self._write_chunk(piece)
                        time.sleep(0.002)
                else:
                    self._write_chunk(line)
                state.sent += 1
                if state.drop_after is not None and state.sent >= state.drop_after:
                    self._cut()
                    return
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True
        finally:
            emu.unregister_watch(state)
            close = getattr(events, "close", None)
            if close is not None:
                close()

    def _cut(self) -> None:
        """End the stream without its terminating chunk: the client sees a broken stream."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")

    def do_PATCH(self) -> None:  # noqa: N802
        self._handle("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")


def _until_dropped(
    events: Iterator[dict[str, Any] | None], state: WatchState
) -> Iterator[dict[str, Any] | None]:
    """The events, then None once the stream is to be cut (drop_watches), even when that
    happens between two events or as the stream would end."""
    for event in events:
        if event is None or state.dropped:
            break
        yield event
    else:
        if not state.dropped:
            return
    yield None
