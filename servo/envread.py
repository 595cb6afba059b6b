"""Reading configuration from the environment: each value trimmed, converted and checked, and
every problem collected rather than stopping at the first (the caller raises ConfigError with
all of them, so one start names everything to fix). Used by config.py and webhook_config.py.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T", int, float)

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_DNS_LABEL_CHARS = frozenset(string.ascii_lowercase + string.digits + "-")


class EnvReader:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []

    def text(self, name: str) -> str | None:
        """The trimmed value; None when unset or blank."""
        value = self.environ.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def flag(self, name: str, default: bool) -> bool:
        raw = self.text(name)
        if raw is None:
            return default
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        self.problems.append(f"{name}={raw!r}: expected true or false")
        return default

    def number(
        self,
        name: str,
        default: T,
        convert: Callable[[str], T],
        *,
        minimum: float,
        maximum: float | None = None,
    ) -> T:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = convert(raw)
        except ValueError:
            kind = "an integer" if convert is int else "a number"
            self.problems.append(f"{name}={raw!r}: expected {kind}")
            return default
        if maximum is not None and not minimum <= value <= maximum:
            self.problems.append(f"{name}={raw!r}: expected {minimum:g}..{maximum:g}")
            return default
        if value < minimum:
            self.problems.append(f"{name}={raw!r}: must be at least {minimum:g}")
            return default
        return value


def is_dns_label(name: str) -> bool:
    """An RFC 1123 label (namespace and Service names): lower-case alphanumerics and '-', at
    most 63, neither end a '-'."""
    return (
        0 < len(name) <= 63 and set(name) <= _DNS_LABEL_CHARS and name[0] != "-" and name[-1] != "-"
    )
