"""Logging set-up: JSON lines on stderr by default, text for local runs.

Only this module configures handlers. Messages are constant strings; facts travel in `extra=`
under stable keys (pod, uid, app_id, namespace, attempt, status, url, error...).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from servo.core.models import PodFacts

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName"}

# Libraries whose DEBUG output only helps at the highest OPTUNE_DEBUG levels.
_NOISY_LIBRARIES = ("kubernetes", "urllib3")


def level_for_debug(debug: int) -> tuple[int, int]:
    """OPTUNE_DEBUG 0..5 -> (servo level, library level).

    0: INFO (lifecycle, one line per job); 1-2: DEBUG for the servo (every event, every
    decision); 3-5: DEBUG for the kubernetes client and urllib3 too.
    """
    if debug <= 0:
        return logging.INFO, logging.WARNING
    if debug <= 2:
        return logging.DEBUG, logging.WARNING
    return logging.DEBUG, logging.DEBUG


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, msg and the extra fields.

    A measured job logs a line: encoded with msgspec (a quarter of json.dumps's time), the
    time's text made once per second.
    """

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""

    def _time(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            # "2024-05-14T09:12:03" once per second; the milliseconds and "+00:00" each line
            self._second_text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = second
        return f"{self._second_text}.{int((created - second) * 1000):03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update(extra_fields(record))
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        try:
            text = _ENCODER.encode(doc).decode()
        except (TypeError, ValueError, OverflowError):
            # Keys that are not strings and the like: the stdlib is more forgiving.
            return json.dumps(doc, default=str, separators=(",", ":"))
        # Valid JSON raw, but line breaks to str.splitlines() and JavaScript readers.
        if "\u2028" in text or "\u2029" in text:
            text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
        return text


# Anything msgspec cannot encode (an exception, a Path) is written as its str().
_ENCODER = msgspec.json.Encoder(enc_hook=str)


class TextFormatter(logging.Formatter):
    """`time level logger: msg key=value ...` for people at a terminal.

    Values come from outside (app ids, pod names, errors): control characters in them are
    escaped, and a value with spaces, quotes or '=' is quoted, so that no value can start a
    line of its own or pass for another field. Only a traceback spans lines.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.message = escape_text(record.getMessage())
        record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        fields = extra_fields(record)
        if fields:
            line += " " + " ".join(f"{k}={text_value(v)}" for k, v in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


_BARE = re.compile(r'[^\s"=\\]+')


def escape_text(text: str) -> str:
    """Non-printable characters (newline, CR, ESC, U+2028...) as Python escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def text_value(value: Any) -> str:
    """One value of a text log line: bare when it is one printable word, else quoted."""
    text = str(value)
    if _BARE.fullmatch(text) and text.isprintable():
        return text
    return '"' + escape_text(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'


def configure_logging(*, debug: int, fmt: str, stream: Any = None) -> None:
    """Install one stderr handler on the root logger; idempotent."""
    servo_level, library_level = level_for_debug(debug)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    # Neither format shows the caller's file and line, or process and thread ids: skip
    # collecting them for every record (the logging HOWTO's "Optimization" section).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(servo_level)
    logging.getLogger("servo").setLevel(servo_level)
    for name in _NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(library_level)


class PodLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger that already carries the pod, its uid and app id (kopf's ObjectLogger)."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        extra = dict(self.extra or {})
        extra.update(kwargs.get("extra") or {})
        kwargs["extra"] = extra
        return msg, kwargs


def pod_logger(logger: logging.Logger, facts: PodFacts) -> PodLogger:
    fields: Mapping[str, Any] = {"pod": facts.key, "uid": facts.uid, "app_id": facts.app_id}
    return PodLogger(logger, fields)
