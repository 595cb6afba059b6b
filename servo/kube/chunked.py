"""An HTTP/1.1 chunked body, fed in pieces of any size, turned into newline-delimited lines.

Why not urllib3's chunked reader: it reads one chunk per call through http.client's 8 KiB
buffered socket file, so a 13 KB watch event costs a size line, two or three recv calls and a
CRLF read, about 18 us of a 2-core machine's time (more than decoding it). Reading the socket
in blocks of up to 1 MiB and splitting the frames here costs about 4 us per event when
the stream is busy, and nothing more when it is not (a read returns what has arrived).
Pure: no I/O; watch_stream.py feeds it.
"""

from __future__ import annotations

# A chunk-size line is a hex number and optional extensions: anything this long is garbage.
MAX_SIZE_LINE = 4096
# etcd keeps objects under ~1.5 MiB: a watch line past this is garbage, not a pod, and would
# otherwise be held in memory until the stream ends.
MAX_LINE_BYTES = 16 * 1024 * 1024


class ChunkedError(ValueError):
    """The bytes are not a valid chunked body."""


class ChunkedLines:
    """feed(bytes) -> the complete lines so far (without "\\n"); `done` after the last chunk."""

    def __init__(self) -> None:
        self.done = False
        self._buf = b""  # unparsed framing: a partial size line or the CRLF after a chunk
        self._left = 0  # payload bytes still to come in the current chunk
        self._crlf = False  # the CRLF that ends a chunk's payload is due
        self._tail: list[bytes] = []  # pieces of a line that has not ended yet
        self._tail_bytes = 0

    @property
    def tail(self) -> bytes:
        """What came after the last newline (a last line without one, at the end)."""
        return b"".join(self._tail)

    def feed(self, data: bytes) -> list[bytes]:
        if self.done:
            return []
        buf = self._buf + data if self._buf else data
        pos, end = 0, len(buf)
        lines: list[bytes] = []
        while pos < end:
            if self._left:
                stop = min(pos + self._left, end)
                self._left -= stop - pos
                self._crlf = not self._left
                pos = self._split_lines(buf, pos, stop, lines)
            elif self._crlf:
                if end - pos < 2:
                    break
                if buf[pos : pos + 2] != b"\r\n":
                    raise ChunkedError(f"no CRLF after a chunk: {buf[pos : pos + 20]!r}")
                pos += 2
                self._crlf = False
            else:
                eol = buf.find(b"\r\n", pos, pos + MAX_SIZE_LINE)
                if eol < 0:
                    if end - pos >= MAX_SIZE_LINE:
                        raise ChunkedError(f"chunk size line too long: {buf[pos : pos + 20]!r}")
                    break
                size = _chunk_size(buf[pos:eol])
                pos = eol + 2
                if size == 0:
                    self.done = True  # trailers, if any, are not read: the stream is closed
                    pos = end
                else:
                    self._left = size
        self._buf = buf[pos:] if pos < end else b""
        return lines

    def _split_lines(self, buf: bytes, pos: int, stop: int, lines: list[bytes]) -> int:
        """Lines of the payload buf[pos:stop]; each line is copied once, straight from the
        block read (no joining of whole blocks: a busy stream's reads are up to 1 MiB)."""
        nl = buf.find(b"\n", pos, stop)
        while nl >= 0:
            if self._tail:
                self._tail.append(buf[pos:nl])
                lines.append(b"".join(self._tail))
                self._tail, self._tail_bytes = [], 0
            else:
                lines.append(buf[pos:nl])
            pos = nl + 1
            nl = buf.find(b"\n", pos, stop)
        if pos < stop:
            self._tail.append(buf[pos:stop])
            self._tail_bytes += stop - pos
            if self._tail_bytes > MAX_LINE_BYTES:
                raise ChunkedError(f"a watch line longer than {MAX_LINE_BYTES} bytes")
        return stop


def _chunk_size(line: bytes) -> int:
    text = line.split(b";", 1)[0].strip()  # chunk extensions (";name=value") are ignored
    if not text or text.strip(_HEX_DIGITS):
        raise ChunkedError(f"bad chunk size line: {line[:40]!r}")
    return int(text, 16)


_HEX_DIGITS = b"0123456789abcdefABCDEF"
