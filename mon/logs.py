"""Logging set-up: JSON lines on stderr (one per event), or text for local runs.

Only this module configures handlers. Messages are constant strings; facts travel in `extra=`
under stable keys (pod_uid, path, error, cue, status, attempt...).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName"}


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, msg and the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update(extra_fields(record))
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """`time level logger: msg key=value ...` for people at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = extra_fields(record)
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        return line


class _PodUidFilter(logging.Filter):
    """Stamps every record with the pod UID, so each line says which pod it is about."""

    def __init__(self, pod_uid: str) -> None:
        super().__init__()
        self.pod_uid = pod_uid

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "pod_uid"):
            record.pod_uid = self.pod_uid
        return True


def configure_logging(
    *, debug: bool, fmt: str, pod_uid: str = "", stream: TextIO | None = None
) -> None:
    """Install one stderr handler on the root logger; idempotent."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if pod_uid:
        handler.addFilter(_PodUidFilter(pod_uid))
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    # urllib3 logs every retry and connection at DEBUG; ours already say what matters.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
