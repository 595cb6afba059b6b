from __future__ import annotations

import random

import pytest

from servo.kube.chunked import MAX_LINE_BYTES, MAX_SIZE_LINE, ChunkedError, ChunkedLines


def chunked(*payloads: bytes, ext: bytes = b"") -> bytes:
    body = b"".join(b"%x%s\r\n%s\r\n" % (len(p), ext, p) for p in payloads)
    return body + b"0\r\n\r\n"


def feed_all(parser: ChunkedLines, data: bytes, sizes: list[int]) -> list[bytes]:
    lines: list[bytes] = []
    pos = 0
    for size in sizes:
        lines += parser.feed(data[pos : pos + size])
        pos += size
    lines += parser.feed(data[pos:])
    return lines


def test_one_event_per_chunk() -> None:
    parser = ChunkedLines()
    lines = parser.feed(chunked(b'{"a":1}\n', b'{"b":2}\n'))
    assert lines == [b'{"a":1}', b'{"b":2}'] and parser.done and parser.tail == b""


@pytest.mark.parametrize("seed", range(20))
def test_any_split_of_bytes_and_chunks_gives_the_same_lines(seed: int) -> None:
    rng = random.Random(seed)
    events = [b'{"n":%d,"pad":"%s"}\n' % (i, b"x" * rng.randrange(0, 3000)) for i in range(40)]
    stream = b"".join(events)
    # chunks that split events anywhere, as the API server (or a proxy) may send them
    cuts = sorted(rng.sample(range(1, len(stream)), 30))
    payloads = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    body = chunked(*payloads, ext=b";x=y" if seed % 2 else b"")
    sizes = [rng.randrange(1, 700) for _ in range(200)]  # reads of any size, down to 1 byte
    parser = ChunkedLines()
    assert feed_all(parser, body, sizes) == [e[:-1] for e in events]
    assert parser.done


def test_a_last_line_without_newline_is_the_tail() -> None:
    parser = ChunkedLines()
    assert parser.feed(chunked(b'{"a":1}\n{"b"', b":2}")) == [b'{"a":1}']
    assert parser.done and parser.tail == b'{"b":2}'


def test_nothing_after_the_last_chunk_is_read() -> None:
    parser = ChunkedLines()
    parser.feed(chunked(b"x\n"))
    assert parser.feed(b"5\r\nhello\r\n") == [] and parser.done


def test_an_unfinished_stream_is_not_done() -> None:
    parser = ChunkedLines()
    assert parser.feed(b'8\r\n{"a":1}\n\r\n4\r\n{"b"') == [b'{"a":1}']
    assert not parser.done and parser.tail == b'{"b"'


@pytest.mark.parametrize(
    "body",
    [
        b"zz\r\nhello\r\n",  # not hex
        b"-5\r\nhello\r\n",
        b"0x5\r\nhello\r\n",
        b"\r\nhello\r\n",  # empty size
        b"5\r\nhelloXX",  # no CRLF after the payload
        b"5" * MAX_SIZE_LINE,  # a size line that never ends
    ],
)
def test_bad_framing_raises(body: bytes) -> None:
    with pytest.raises(ChunkedError):
        ChunkedLines().feed(body)


def test_a_line_that_never_ends_is_refused_not_kept() -> None:
    parser = ChunkedLines()
    piece = b"x" * (1024 * 1024)
    with pytest.raises(ChunkedError, match="longer than"):
        for _ in range(MAX_LINE_BYTES // len(piece) + 1):
            parser.feed(chunked(piece)[:-5])  # one chunk at a time, no last chunk
    # A long line that does end is fine.
    ok = ChunkedLines()
    assert ok.feed(chunked(piece, piece + b"\n")) == [piece + piece]
