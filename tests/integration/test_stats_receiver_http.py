"""The stats receiver at the byte level: every request gets one JSON answer, and a body the
receiver did not read is never taken for a second request on the same connection."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from tests.support.harness import RunningServo

SMUGGLED = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def exchange(servo: RunningServo, data: bytes) -> list[tuple[int, Any]]:
    """Send raw bytes, end the write side, read to EOF: [(status, JSON body)] per answer."""
    receiver = servo.servo.receiver
    assert receiver is not None
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    answers = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        assert headers["Content-Type"] == "application/json", head
        length = int(headers["Content-Length"])
        answers.append((int(lines[0].split()[1]), json.loads(rest[:length])))
        raw = rest[length:]
    return answers


def request(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode() + b"\r\n" + body


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (
            request(f"POST /nope HTTP/1.1\nHost: x\nContent-Length: {len(SMUGGLED)}\n") + SMUGGLED,
            404,
        ),
        (request("POST / HTTP/1.1\nHost: x\nContent-Length: 1_0\n") + SMUGGLED, 400),
        (request("POST / HTTP/1.1\nHost: x\nContent-Length: 99999999\n") + SMUGGLED, 413),
        (
            request("POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n")
            + b"1b\r\n"
            + SMUGGLED
            + b"\r\n0\r\n\r\n",
            411,
        ),
        (request("PUT / HTTP/1.1\nHost: x\nContent-Length: 27\n") + SMUGGLED, 501),
        (b"NONSENSE\r\n\r\n" + SMUGGLED, 400),
        (request("POST / HTTP/1.1\nHost: x\nContent-Length: 500\n") + b'{"id":', 400),
    ],
    ids=["unknown-path", "bad-length", "oversized", "chunked", "method", "request-line", "short"],
)
def test_one_json_answer_and_the_unread_body_is_never_a_request(
    start_servo: Any, data: bytes, status: int
) -> None:
    servo = start_servo()
    [(got, doc)] = exchange(servo, data)
    assert got == status and isinstance(doc["error"], str)


def test_a_read_refusal_keeps_the_connection_for_the_next_request(start_servo: Any) -> None:
    servo = start_servo()
    body = b"not json"
    first = request(
        f"POST / HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: {len(body)}\n",
        body,
    )
    answers = exchange(servo, first + SMUGGLED)
    assert [s for s, _ in answers] == [400, 405]
