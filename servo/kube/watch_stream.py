"""A watch response body -> its decoded lines, read off the socket in large blocks.

A plainly chunked body (what the API server sends a watch as) is read from the socket file
below urllib3 in blocks of up to READ_SIZE and split by `chunked.py`; any other body is read
through urllib3. Each line is decoded by podwire; one line too deep to decode is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from servo.core.errors import KubeError
from servo.core.podstructs import WatchLine
from servo.core.podwire import DecodeError, TooDeepError, decode_event
from servo.kube.chunked import MAX_LINE_BYTES, ChunkedError, ChunkedLines

logger = logging.getLogger(__name__)

# How much of a watch stream one read may take: a busy stream's events in one system call
# (a read returns what has arrived; on a quiet stream that is one event).
READ_SIZE = 1024 * 1024


def watch_lines(resp: Any, *, whole: bool) -> Iterator[WatchLine]:
    """The decoded lines of a watch body, whose chunks may split lines anywhere."""
    body = _raw_chunked_body(resp)
    lines = _lines_of(body) if body is not None else _lines_via_urllib3(resp)
    try:
        for line in lines:
            # isspace() stops at the first other byte: no copy of a 13 KB line, as strip()
            if line and not line.isspace():
                try:
                    event = decode_event(line, whole=whole)
                except TooDeepError as e:
                    # One event the decoder cannot follow: the stream is fine, the next line
                    # is another event. Ending the stream would replay this one forever.
                    logger.error(
                        "watch event skipped: nested too deeply to decode",
                        extra={"pod": e.key, "bytes": len(line)},
                    )
                    continue
                yield event
    except (DecodeError, ChunkedError) as e:
        raise KubeError(0, "BadStream", str(e)) from e


def _raw_chunked_body(resp: Any) -> Any:
    """The socket file under urllib3 and http.client when the body is plainly chunked (what
    the API server sends a watch as), positioned at the body's start; else None (then
    urllib3 reads it). Used through read1() only, and the response is closed after it."""
    headers = resp.headers
    if headers.get("Transfer-Encoding", "").lower() != "chunked" or headers.get(
        "Content-Encoding", "identity"
    ).lower() not in ("", "identity"):
        return None
    fp = getattr(getattr(resp, "_fp", None), "fp", None)
    return fp if callable(getattr(fp, "read1", None)) else None


def _lines_of(body: Any) -> Iterator[bytes]:
    """Read the socket in big blocks (one recv returns what has arrived, up to READ_SIZE)
    and split chunks and lines in chunked.py."""
    parser = ChunkedLines()
    while not parser.done:
        data = body.read1(READ_SIZE)
        if not data:
            raise KubeError(0, "StreamBroken", "watch stream ended before its last chunk")
        yield from parser.feed(data)
    yield parser.tail


def _lines_via_urllib3(resp: Any) -> Iterator[bytes]:
    pending = b""
    for chunk in resp.stream(amt=None, decode_content=True):
        pending += chunk
        if b"\n" not in chunk:
            if len(pending) > MAX_LINE_BYTES:
                raise ChunkedError(f"a watch line longer than {MAX_LINE_BYTES} bytes")
            continue
        *lines, pending = pending.split(b"\n")
        yield from lines
    yield pending
