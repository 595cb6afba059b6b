"""Log lines: a value from outside (an app id, a pod name, an error) cannot forge a line or a
field, in the text format or in JSON."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from servo.system.logs import configure_logging

# The loggers configure_logging sets a level on (root first).
LOGGERS = ("", "servo", "kubernetes", "urllib3")
FORGED = "job-1\n2026-01-01 00:00:00,000 ERROR   servo: forged line\r\x1b[2K\u2028\u2029end"


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers = list(root.handlers)
    levels = {name: logging.getLogger(name).level for name in LOGGERS}
    stream = io.StringIO()
    yield stream
    root.handlers[:] = handlers
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def emit(stream: io.StringIO, fmt: str, msg: str = "job measured", **extra: object) -> str:
    configure_logging(debug=0, fmt=fmt, stream=stream)
    logging.getLogger("servo.test").info(msg, extra=extra)
    return stream.getvalue()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_value_with_control_characters_stays_on_its_line(output: io.StringIO, fmt: str) -> None:
    out = emit(output, fmt, app_id=FORGED, pod="default/p")
    assert out.endswith("\n") and len(out.splitlines()) == 1
    assert not any(c in out[:-1] for c in "\n\r\x1b\u2028\u2029")
    if fmt == "json":
        assert json.loads(out)["app_id"] == FORGED


def test_text_values_are_quoted_when_they_could_pass_for_other_fields(output: io.StringIO) -> None:
    out = emit(output, "text", app_id='a level=ERROR "x"', pod="default/p", n=3, empty="")
    assert out.rstrip("\n").endswith('app_id="a level=ERROR \\"x\\"" pod=default/p n=3 empty=""')


def test_text_message_with_a_newline_is_escaped_but_a_traceback_keeps_its_lines(
    output: io.StringIO,
) -> None:
    assert len(emit(output, "text", msg="first\nsecond").splitlines()) == 1
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("servo.test").exception("failed", extra={"pod": "ns/p"})
    lines = output.getvalue().splitlines()
    assert "failed pod=ns/p" in lines[1] and lines[-1] == "ValueError: boom"
