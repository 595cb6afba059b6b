"""Logging: JSON lines on stderr (one per event), or text for people at a terminal.

The stdlib `logging` package is not used: importing it was a fifth of the monitor's start-up
CPU, and the monitor needs one handler only. Messages are constant strings; facts travel in
`extra=` under stable keys (pod_uid, path, error, cue, status, attempt...).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Mapping

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
_NAMES = {DEBUG: "DEBUG", INFO: "INFO", WARNING: "WARNING", ERROR: "ERROR"}


class _Sink:
    """Where every logger writes; set once by `configure_logging`."""

    def __init__(self) -> None:
        self.level = INFO
        self.fmt = "json"
        self.pod_uid = ""
        self.stream: TextIO | None = None
        self.lock = threading.Lock()


_SINK = _Sink()


def _timestamp(now: float) -> str:
    millis = int(now * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{millis:03d}+00:00"


def format_line(
    *, level: int, name: str, msg: str, fields: Mapping[str, object], fmt: str, now: float
) -> str:
    """PURE: one log line (no newline) in `fmt` ("json" or "text")."""
    if fmt == "json":
        doc: dict[str, object] = {
            "time": _timestamp(now),
            "level": _NAMES.get(level, str(level)),
            "logger": name,
            "msg": msg,
        }
        doc.update(fields)
        return json.dumps(doc, default=str, separators=(",", ":"))
    line = f"{_timestamp(now)} {_NAMES.get(level, str(level)):<7} {name}: {msg}"
    if fields:
        line += " " + " ".join(f"{k}={v}" for k, v in fields.items())
    return line


class Logger:
    """`logging.Logger`'s few methods the monitor uses, writing through the one sink."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def debug_enabled(self) -> bool:
        return _SINK.level <= DEBUG

    def _emit(self, level: int, msg: str, extra: Mapping[str, object] | None) -> None:
        if level < _SINK.level:
            return
        fields: dict[str, object] = {"pod_uid": _SINK.pod_uid} if _SINK.pod_uid else {}
        fields.update(extra or {})
        line = format_line(
            level=level, name=self.name, msg=msg, fields=fields, fmt=_SINK.fmt, now=time.time()
        )
        stream = _SINK.stream or sys.stderr
        with _SINK.lock:
            try:
                stream.write(line + "\n")
                stream.flush()
            except (OSError, ValueError):
                pass  # stderr closed: the figures still go out

    def debug(self, msg: str, *, extra: Mapping[str, object] | None = None) -> None:
        self._emit(DEBUG, msg, extra)

    def info(self, msg: str, *, extra: Mapping[str, object] | None = None) -> None:
        self._emit(INFO, msg, extra)

    def warning(self, msg: str, *, extra: Mapping[str, object] | None = None) -> None:
        self._emit(WARNING, msg, extra)

    def error(self, msg: str, *, extra: Mapping[str, object] | None = None) -> None:
        self._emit(ERROR, msg, extra)

    def exception(self, msg: str, *, extra: Mapping[str, object] | None = None) -> None:
        """ERROR with the current exception's traceback under `exc`."""
        import traceback  # only when something went wrong

        self._emit(ERROR, msg, {**(extra or {}), "exc": traceback.format_exc()})


def get_logger(name: str) -> Logger:
    return Logger(name)


def configure_logging(
    *, debug: bool, fmt: str, pod_uid: str = "", stream: TextIO | None = None
) -> None:
    """Set the one sink: level, format, the pod UID stamped on every line, the stream."""
    _SINK.level = DEBUG if debug else INFO
    _SINK.fmt = fmt
    _SINK.pod_uid = pod_uid
    _SINK.stream = stream
