"""KubeClient.stream_watch over the official client against canned HTTP answers: the fast
chunked reader, urllib3's reader for other bodies (Content-Length, gzip), and broken streams."""

from __future__ import annotations

import gzip
import json
import socket
import threading
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from servo.core.errors import KubeError
from servo.kube.client import KubeClient
from tests.support.helpers import job_pod

EVENTS = [{"type": "ADDED", "object": job_pod(f"p{i}", uid=f"u{i}")} for i in range(3)] + [
    {"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": "77"}}}
]
LINES = b"".join(json.dumps(e).encode() + b"\n" for e in EVENTS)


def chunked(payload: bytes, size: int) -> bytes:
    parts = [payload[i : i + size] for i in range(0, len(payload), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)


class CannedServer:
    """Answers every request on a connection with the next canned answer (raw bytes), then
    keeps the connection open (`hold`) or closes it."""

    def __init__(self, answers: list[bytes], *, hold: bool = False) -> None:
        self.answers = list(answers)
        self.hold = hold
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests = 0
        self._done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                while self.answers:
                    request = b""
                    while b"\r\n\r\n" not in request:
                        data = conn.recv(65536)
                        if not data:
                            break
                        request += data
                    if not request:
                        break
                    self.requests += 1
                    conn.sendall(self.answers.pop(0))
                if self.hold:
                    self._done.wait(10)

    def close(self) -> None:
        self._done.set()
        self.sock.close()


def head(extra: str) -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}\r\n".encode()


@pytest.fixture
def kube_for() -> Iterator[object]:
    servers: list[CannedServer] = []

    def make(answers: list[bytes], *, hold: bool = False) -> tuple[KubeClient, CannedServer]:
        server = CannedServer(answers, hold=hold)
        servers.append(server)
        return KubeClient(k8s.ApiClient(k8s.Configuration(host=server.url))), server

    yield make
    for s in servers:
        s.close()


def watch(kube: KubeClient, idle_timeout_s: float = 5.0) -> list[tuple[str, str | None]]:
    out = []
    for line in kube.stream_watch(
        "default", resource_version="1", timeout_s=30, idle_timeout_s=idle_timeout_s
    ):
        meta = line.pod.metadata if line.pod else None
        out.append((line.type, meta.name or meta.resource_version if meta else None))
    return out


EXPECTED = [("ADDED", "p0"), ("ADDED", "p1"), ("ADDED", "p2"), ("BOOKMARK", "77")]


@pytest.mark.parametrize("size", [1, 7, 100, 100_000])
def test_chunked_watch_split_anywhere(kube_for, size: int) -> None:  # type: ignore[no-untyped-def]
    kube, _ = kube_for(
        [head("Transfer-Encoding: chunked\r\n") + chunked(LINES, size) + b"0\r\n\r\n"]
    )
    assert watch(kube) == EXPECTED


def test_content_length_and_gzip_bodies_are_read_by_urllib3(kube_for) -> None:  # type: ignore[no-untyped-def]
    plain = head(f"Content-Length: {len(LINES)}\r\n") + LINES
    zipped = gzip.compress(LINES)
    gz = head("Transfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n")
    gz += chunked(zipped, 50) + b"0\r\n\r\n"
    kube, _ = kube_for([plain])
    assert watch(kube) == EXPECTED
    kube, _ = kube_for([gz])
    assert watch(kube) == EXPECTED


def test_two_watches_one_after_the_other(kube_for) -> None:  # type: ignore[no-untyped-def]
    # The first watch's connection is closed, not reused half-read: the second one works.
    answer = head("Transfer-Encoding: chunked\r\n") + chunked(LINES, 300) + b"0\r\n\r\n"
    kube, server = kube_for([answer, answer])
    assert watch(kube) == EXPECTED and watch(kube) == EXPECTED
    assert server.requests == 2


def test_a_stream_cut_before_its_last_chunk_is_broken(kube_for) -> None:  # type: ignore[no-untyped-def]
    kube, _ = kube_for([head("Transfer-Encoding: chunked\r\n") + chunked(LINES, 300)])
    seen: list[str] = []
    with pytest.raises(KubeError) as e:
        for line in kube.stream_watch(
            "default", resource_version="1", timeout_s=30, idle_timeout_s=5
        ):
            seen.append(line.type)
    assert e.value.status == 0 and e.value.reason == "StreamBroken"
    assert seen == ["ADDED", "ADDED", "ADDED", "BOOKMARK"]  # what came is still delivered


def test_bad_framing_and_bad_json_are_bad_streams(kube_for) -> None:  # type: ignore[no-untyped-def]
    for body in (b"zz\r\nhello\r\n0\r\n\r\n", chunked(b"not json\n", 100) + b"0\r\n\r\n"):
        kube, _ = kube_for([head("Transfer-Encoding: chunked\r\n") + body])
        with pytest.raises(KubeError) as e:
            watch(kube)
        assert e.value.reason == "BadStream"


def test_a_silent_stream_times_out(kube_for) -> None:  # type: ignore[no-untyped-def]
    kube, _ = kube_for(
        [head("Transfer-Encoding: chunked\r\n") + chunked(LINES[:50], 50)], hold=True
    )
    with pytest.raises(KubeError) as e:
        watch(kube, idle_timeout_s=0.5)
    assert e.value.status == 0
