"""Reading configuration from the environment: each value trimmed, converted and checked, and
every problem collected rather than stopping at the first (the caller raises ConfigError with
all of them, so one start names everything to fix). Used by servo/system/config.py and
servo/webhook/config.py.
"""

from __future__ import annotations

import ipaddress
import math
import string
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from servo.core.settings import N, Setting, plain_number

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

    def setting(self, s: Setting[N]) -> N:
        """The value of one row of servo/core/settings.py, or its default (with a problem noted)."""
        return self.number(s.name, s.default, s.kind, minimum=s.minimum, maximum=s.maximum)

    def number(
        self, name: str, default: N, convert: type[N], *, minimum: float, maximum: float
    ) -> N:
        """A finite number in minimum..maximum (an integer when `convert` is int: "8443.9" is
        refused, not truncated); else the default, with the problem noted."""
        raw = self.text(name)
        if raw is None:
            return default
        kind = "an integer" if convert is int else "a number"
        expected = f"expected {kind} in {plain_number(minimum)}..{plain_number(maximum)}"
        try:
            value = convert(raw)
        except (ValueError, OverflowError):
            self.problems.append(f"{name}={raw[:40]!r}: {expected}")
            return default
        # nan fails every comparison and inf passes a minimum: both are refused explicitly.
        if not math.isfinite(value) or not minimum <= value <= maximum:
            self.problems.append(f"{name}={raw[:40]!r}: {expected}")
            return default
        return value

    def ip_address(self, name: str, default: str) -> str:
        """An IP address to listen on (a host name or a typo would fail only at bind time)."""
        return self._checked(name, default, is_ip_address, "an IP address to listen on")

    def dns_label(self, name: str, default: str) -> str:
        """An RFC 1123 label (a namespace, a container name)."""
        return self._checked(
            name,
            default,
            is_dns_label,
            "a DNS-1123 label (lower-case letters, digits and '-', at most 63)",
        )

    def dns_subdomain(self, name: str, default: str) -> str:
        """An RFC 1123 subdomain (the name of a Lease, a webhook configuration)."""
        return self._checked(
            name,
            default,
            is_dns_subdomain,
            "a DNS-1123 subdomain (labels joined by '.', at most 253)",
        )

    def _checked(self, name: str, default: str, ok: Callable[[str], bool], what: str) -> str:
        raw = self.text(name) or default
        if not ok(raw):
            self.problems.append(f"{name}={raw[:80]!r}: expected {what}")
            return default
        return raw


def is_http_url(url: str) -> bool:
    """http(s)://host[:port]... with a host and a port in range (urlsplit raises for some
    malformed URLs, such as an unclosed IPv6 bracket, and .port for a port out of range)."""
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and port_ok


def is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_dns_subdomain(name: str) -> bool:
    """An RFC 1123 subdomain: dot-separated labels, at most 253 characters."""
    return 0 < len(name) <= 253 and all(is_dns_label(part) for part in name.split("."))


def is_dns_label(name: str) -> bool:
    """An RFC 1123 label (namespace and Service names): lower-case alphanumerics and '-', at
    most 63, neither end a '-'."""
    return (
        0 < len(name) <= 63 and set(name) <= _DNS_LABEL_CHARS and name[0] != "-" and name[-1] != "-"
    )
