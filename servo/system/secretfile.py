"""A secret kept in a file, as a Kubernetes Secret volume mounts it, re-read when it changes.

A Secret volume is updated by an atomic swap of its `..data` symlink: the path then resolves to
a new file, so its inode (and usually mtime and size) changes. `SecretFile.current()` looks at
the file's stat at most once per `check_interval_s` and reads it only when that changed (or
after `reread_s`, for a rewrite in place that keeps all three), so a send costs a clock read.
At start a problem is a ConfigError naming the variable; later a failed read keeps the last
good secret and logs one warning until a read works again. No secret text is ever logged.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable

from servo.core.errors import ConfigError

logger = logging.getLogger(__name__)

# A bearer token is a few hundred bytes, a JWT a few KiB; anything this big is the wrong file.
MAX_SECRET_BYTES = 16 * 1024
# How often the file's stat is looked at: a rotated Secret is in use within a second.
CHECK_INTERVAL_S = 1.0
# Read again after this long even when the stat looks the same (a rewrite in place within the
# file system's timestamp resolution, same size and inode).
REREAD_S = 60.0

_Stamp = tuple[int, int, int, int]


class SecretFileError(ValueError):
    """The file cannot give a secret: missing, unreadable, empty, too big, or not one token."""


def check_secret_text(text: str) -> str:
    """The secret without the whitespace around it (the trailing newline of `echo` or an
    editor); SecretFileError when it is empty or not printable ASCII, which an HTTP header
    cannot carry (a control character would split or end the header)."""
    secret = text.strip()
    if not secret:
        raise SecretFileError("it is empty")
    if not all(" " <= c <= "~" for c in secret):
        raise SecretFileError("it holds control or non-ASCII characters; expected one token")
    return secret


def read_secret(path: str) -> tuple[str, _Stamp]:
    """The secret in `path` and the stat it was read with; SecretFileError with the reason."""
    try:
        # O_NONBLOCK: a FIFO named by mistake must not hang the start; it is refused below.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise SecretFileError(e.strerror or str(e)) from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise SecretFileError(f"it is {kind}; expected a file holding one token")
        data = _read_up_to(fd, MAX_SECRET_BYTES + 1)
    except OSError as e:
        raise SecretFileError(e.strerror or str(e)) from e
    finally:
        os.close(fd)
    if len(data) > MAX_SECRET_BYTES:
        raise SecretFileError(f"it is larger than {MAX_SECRET_BYTES} bytes; expected one token")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as e:
        raise SecretFileError("it holds non-ASCII bytes; expected one token") from e
    return check_secret_text(text), _stamp(st)


def _read_up_to(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = os.read(fd, left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _stamp(st: os.stat_result) -> _Stamp:
    return (st.st_ino, st.st_dev, st.st_mtime_ns, st.st_size)


class SecretFile:
    """One secret file: read at start (ConfigError when it cannot be), then kept current."""

    def __init__(
        self,
        path: str,
        *,
        variable: str,
        clock: Callable[[], float] = time.monotonic,
        check_interval_s: float = CHECK_INTERVAL_S,
        reread_s: float = REREAD_S,
    ) -> None:
        self.path = path
        # The environment variable that named the file, for messages.
        self.variable = variable
        self._clock = clock
        self._check_interval_s = check_interval_s
        self._reread_s = reread_s
        self._lock = threading.Lock()
        try:
            self._secret, self._stamp = read_secret(path)
        except SecretFileError as e:
            raise ConfigError([f"{variable}={path!r}: {e}"]) from e
        now = clock()
        self._checked_at = now
        self._read_at = now
        self._warned = False
        # How many times the file was read (tests, logs).
        self.reads = 1

    def __repr__(self) -> str:
        return f"SecretFile({self.path!r}, variable={self.variable!r})"

    def current(self) -> str:
        """The secret, re-read first when the file changed; never raises."""
        now = self._clock()
        if now - self._checked_at < self._check_interval_s:
            return self._secret
        with self._lock:
            if now - self._checked_at >= self._check_interval_s:
                self._checked_at = now
                self._refresh(now)
            return self._secret

    def _refresh(self, now: float) -> None:
        try:
            stamp = _stamp(os.stat(self.path))
            if stamp == self._stamp and now - self._read_at < self._reread_s:
                return
            secret, stamp = read_secret(self.path)
        except (OSError, SecretFileError) as e:
            if not self._warned:
                # Mid-rotation, or removed: the last good secret still works until the backend
                # says otherwise.
                logger.warning(
                    "secret file unreadable, keeping the secret read before",
                    extra={
                        "variable": self.variable,
                        "path": self.path,
                        "error": getattr(e, "strerror", None) or str(e),
                    },
                )
                self._warned = True
            return
        changed = secret != self._secret
        self._secret, self._stamp, self._read_at = secret, stamp, now
        self.reads += 1
        if self._warned or changed:
            logger.info(
                "secret file read again",
                extra={"variable": self.variable, "path": self.path, "changed": changed},
            )
        self._warned = False
