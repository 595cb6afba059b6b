"""Delivery: the termination message file first, then a POST to the servo's stats receiver.

The file needs no network and no credentials, so it is written before anything can fail on the
wire. The POST (stdlib http.client) is retried briefly, the pod is dying: connection errors,
timeouts, 408, 429 and 5xx; other answers are final. It runs in a daemon thread joined with a
bound, so even a name lookup that hangs cannot keep the monitor (and a plain-style pod) alive.
Nothing here raises: each channel reports success as a bool.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from mon.errors import DeliveryError
from mon.logs import get_logger
from mon.wire import Stats, StatsPost, fit_termination_message

logger = get_logger(__name__)

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# A service-account token is a JWT of a few KiB; anything larger is not one.
MAX_TOKEN_BYTES = 16 * 1024


def read_token(path: Path) -> str | None:
    """The bearer token in `path` now, or None (no file, empty, oversized, not printable).

    The kubelet rotates a projected token file, so it is read before every try."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_TOKEN_BYTES + 1)
    except OSError:
        return None
    token = raw.decode("ascii", errors="replace").strip()
    if not token or len(raw) > MAX_TOKEN_BYTES or not token.isprintable() or " " in token:
        logger.warning("stats token file unusable", extra={"path": str(path)})
        return None
    return token


def write_termination_message(path: Path, stats: Stats) -> bool:
    """Write the stats, shrunk to fit 4096 bytes, where Kubernetes picks them up."""
    data = fit_termination_message(stats)
    try:
        with path.open("wb") as f:
            f.write(data)
    except OSError as e:
        logger.error("termination message not written", extra={"path": str(path), "error": str(e)})
        return False
    logger.info("termination message written", extra={"path": str(path), "bytes": len(data)})
    return True


def is_retryable(exc: BaseException) -> bool:
    """PURE: worth another try? Connection trouble and server-side or rate-limit answers."""
    if isinstance(exc, DeliveryError):
        return exc.status is None or exc.status in RETRYABLE_STATUSES or exc.status >= 500
    return False


def backoff_s(attempt: int) -> float:
    """Wait before try `attempt + 1`: 0.2 s, 0.4 s, ... at most 1 s, plus up to 0.2 s jitter."""
    return min(1.0, 0.2 * 2.0 ** (attempt - 1)) + random.uniform(0, 0.2)


def post_once(url: str, data: bytes, headers: dict[str, str], timeout_s: float) -> int:
    """One POST; raises DeliveryError for connection trouble and answers of 300 and above."""
    parts = urlsplit(url)
    conn_type = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    conn = conn_type(parts.hostname or "", parts.port, timeout=timeout_s)
    try:
        conn.request("POST", target, body=data, headers=headers)
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException, ValueError) as e:
        raise DeliveryError(f"POST failed: {type(e).__name__}: {e}") from e
    finally:
        conn.close()
    if status >= 300:
        raise DeliveryError(f"POST answered {status}", status=status)
    return status


def _post_with_retries(
    *,
    url: str,
    data: bytes,
    token_file: Path | None,
    timeout_s: float,
    attempts: int,
    deadline_s: float,
    wait: Callable[[int], float],
) -> bool:
    started = time.monotonic()
    for attempt in range(1, attempts + 1):
        headers = {"Content-Type": "application/json"}
        token = read_token(token_file) if token_file is not None else None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            status = post_once(url, data, headers, timeout_s)
        except DeliveryError as e:
            pause = wait(attempt)
            last = attempt == attempts or time.monotonic() - started + pause > deadline_s
            if last or not is_retryable(e):
                logger.error(
                    "stats POST gave up", extra={"url": url, "error": str(e), "status": e.status}
                )
                return False
            logger.warning(
                "stats POST failed, will retry", extra={"attempt": attempt, "error": str(e)}
            )
            time.sleep(pause)
        else:
            logger.info("stats POST accepted", extra={"url": url, "status": status})
            return True
    return False


def post_stats(
    *,
    url: str,
    body: StatsPost,
    token_file: Path | None,
    timeout_s: float,
    attempts: int = 3,
    deadline_s: float = 3.0,
    wait: Callable[[int], float] = backoff_s,
) -> bool:
    """POST `{"id", "stats"}` with a short retry; True when the receiver accepted it.

    Returns within `deadline_s` + `timeout_s` (plus a second) whatever the network does.
    """
    data = json.dumps(body, separators=(",", ":")).encode()
    result: list[bool] = []

    def attempt_all() -> None:
        result.append(
            _post_with_retries(
                url=url,
                data=data,
                token_file=token_file,
                timeout_s=timeout_s,
                attempts=attempts,
                deadline_s=deadline_s,
                wait=wait,
            )
        )

    worker = threading.Thread(target=attempt_all, name="post", daemon=True)
    worker.start()
    worker.join(deadline_s + timeout_s + 1.0)
    if not result:
        logger.error("stats POST abandoned at its deadline", extra={"url": url})
        return False
    return result[0]
