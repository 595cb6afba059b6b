"""The two token sources that outlive one read: a token file and a token command.

A token file is re-read when it changes (projected service-account tokens rotate); a token
command runs without a shell, its token cached and fetched again before its `exp`. Both hand
the API client a fresh token through its refresh hook. No token text is ever logged.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import shlex
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from servo.core.errors import ConfigError, KubeError

logger = logging.getLogger(__name__)

TOKEN_FILE_ENV = "OPTUNE_KUBE_TOKEN_FILE"
TOKEN_COMMAND_ENV = "OPTUNE_KUBE_TOKEN_COMMAND"
# A token file is re-read when it changes, and at least this often (a rewrite within the
# file system's timestamp granularity, same size and inode, would otherwise go unseen).
TOKEN_FILE_RECHECK_S = 60.0
# Run the token command again when less than this share of the token's lifetime is left...
REFRESH_FRACTION = 0.1
# ...or less than this many seconds, whichever comes first.
REFRESH_MARGIN_S = 300.0
# Claims beyond this (year 5000) are nonsense, not times: the token is treated as without them.
MAX_EPOCH_S = 95_617_584_000
# A token without a readable `exp` claim: run the command again after this long.
UNKNOWN_EXPIRY_REFRESH_S = 300.0
# After a failed refresh while the cached token is still valid, wait this long before retrying.
FAILED_REFRESH_RETRY_S = 30.0
COMMAND_TIMEOUT_S = 30.0
STDERR_EXCERPT_CHARS = 300


class TokenFile:
    """A token file, re-read when its mtime, size or inode changes (or every minute)."""

    def __init__(self, path: str, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._read_at = 0.0
        self._token = ""

    def token_now(self) -> str:
        """Read the file at start: a problem is a ConfigError."""
        try:
            self._read()
        except (OSError, ValueError) as e:
            raise ConfigError([f"{TOKEN_FILE_ENV}={str(self.path)!r}: {_why(e)}"]) from e
        return self._token

    def _read(self) -> None:
        st = self.path.stat()
        text = self.path.read_text(encoding="utf-8").strip()
        if not text:
            raise ValueError("the file is empty")
        if any(c.isspace() for c in text):
            raise ValueError("the file holds more than one token (whitespace inside)")
        self._token = text
        self._stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        self._read_at = self._clock()

    def refresh_hook(self, configuration: Any) -> None:
        with self._lock:
            try:
                st = self.path.stat()
                stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
                stale = self._clock() - self._read_at >= TOKEN_FILE_RECHECK_S
                if stamp != self._stamp or stale:
                    self._read()
                    logger.debug("token file read", extra={"path": str(self.path)})
            except (OSError, ValueError) as e:
                # Mid-rotation, or gone: keep the token we have; the server judges it.
                logger.warning(
                    "token file unreadable, keeping the token read before",
                    extra={"path": str(self.path), "error": _why(e)},
                )
            configuration.api_key = {"authorization": f"Bearer {self._token}"}


class TokenCommand:
    """A command that prints a token (kubectl create token); run again before the token ends."""

    def __init__(
        self,
        command: str,
        *,
        clock: Callable[[], float] = time.time,
        timeout_s: float = COMMAND_TIMEOUT_S,
        refresh_fraction: float = REFRESH_FRACTION,
        refresh_margin_s: float = REFRESH_MARGIN_S,
    ) -> None:
        self.command = command
        try:
            self.argv = shlex.split(command)
        except ValueError as e:
            raise ConfigError([f"{TOKEN_COMMAND_ENV}={command!r}: cannot split it: {e}"]) from e
        if not self.argv:
            raise ConfigError([f"{TOKEN_COMMAND_ENV} is empty"])
        self._clock = clock
        self._timeout_s = timeout_s
        self._fraction = refresh_fraction
        self._margin_s = refresh_margin_s
        self._lock = threading.Lock()
        self._token: str | None = None
        self.expires_at: float | None = None
        self.refresh_at = 0.0
        # How many times the command ran (tests, logs).
        self.runs = 0

    def token_now(self) -> str:
        """The token, running the command when there is none or it is due; ConfigError when
        the command fails and no valid token is cached."""
        with self._lock:
            now = self._clock()
            if self._token is not None and now < self.refresh_at:
                return self._token
            try:
                self._run(now)
            except ConfigError as e:
                if self._token is None or not self._still_valid(now):
                    raise
                self.refresh_at = now + FAILED_REFRESH_RETRY_S
                logger.warning(
                    "token command failed; the cached token is still valid, retrying later",
                    extra={"error": e.problems[0], "retry_s": FAILED_REFRESH_RETRY_S},
                )
            assert self._token is not None
            return self._token

    def _still_valid(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at

    def refresh_hook(self, configuration: Any) -> None:
        try:
            token = self.token_now()
        except ConfigError as e:
            # Inside a request: surface as an authentication failure the watch loop handles.
            raise KubeError(401, "TokenCommandFailed", e.problems[0]) from e
        configuration.api_key = {"authorization": f"Bearer {token}"}

    def _run(self, now: float) -> None:
        name = f"{TOKEN_COMMAND_ENV} {self.command!r}"
        try:
            proc = subprocess.run(  # noqa: S603 - the operator's own command, no shell
                self.argv, capture_output=True, text=True, timeout=self._timeout_s, check=False
            )
        except FileNotFoundError as e:
            raise ConfigError([f"{name}: {self.argv[0]!r} not found on PATH"]) from e
        except subprocess.TimeoutExpired as e:
            raise ConfigError([f"{name}: no answer within {self._timeout_s:g} s"]) from e
        except OSError as e:
            raise ConfigError([f"{name}: cannot run it: {e.strerror or e}"]) from e
        self.runs += 1
        if proc.returncode != 0:
            err = " ".join(proc.stderr.split())[-STDERR_EXCERPT_CHARS:] or "(no stderr)"
            raise ConfigError([f"{name} failed (exit {proc.returncode}): {err}"])
        token = proc.stdout.strip()
        if not token or any(c.isspace() for c in token):
            raise ConfigError([f"{name} printed no single token on stdout"])
        exp, iat = jwt_times(token)
        self._token = token
        self.expires_at = exp
        if exp is None:
            self.refresh_at = now + UNKNOWN_EXPIRY_REFRESH_S
        else:
            issued = iat if iat is not None and iat <= now else now
            lifetime = max(0.0, exp - issued)
            self.refresh_at = exp - max(self._fraction * lifetime, self._margin_s)
        logger.debug(
            "token command ran",
            extra={"runs": self.runs, "expires_in_s": None if exp is None else round(exp - now)},
        )


def jwt_times(token: str) -> tuple[float | None, float | None]:
    """(exp, iat) of a JWT's payload (base64url JSON), unverified; None where unreadable."""
    parts = token.split(".")
    if len(parts) != 3:
        return None, None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        return None, None
    if not isinstance(claims, dict):
        return None, None
    return _number(claims.get("exp")), _number(claims.get("iat"))


def _number(value: object) -> float | None:
    """A claim's epoch seconds, when it is a finite time this side of year 5000 (json.loads
    takes NaN, Infinity and 400-digit integers; float() of the last raises)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < MAX_EPOCH_S:
        return float(value)
    return None


def _why(e: Exception) -> str:
    if isinstance(e, OSError):
        return e.strerror or str(e)
    return str(e)
