"""`servo collector` settings: each from its flag, else its COLLECTOR_* variable, else the
default; every number an integer inside a documented range; tokens, each bound to an account or
to any; and the bind rule (without tokens, loopback only unless the collector is declared open).
`resolve` collects every problem and raises one ConfigError naming them all.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from servo.core.errors import ConfigError

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limit:
    """One integer setting: `--<flag>` or env `env`, default, and the range it must be in."""

    key: str
    env: str
    default: int
    lo: int
    hi: int
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")


LIMITS = (
    Limit("port", "COLLECTOR_PORT", 8090, 0, 65535, "TCP port; 0 picks a free one"),
    Limit(
        "retention_days",
        "COLLECTOR_RETENTION_DAYS",
        90,
        1,
        36500,
        "events older than this many days are deleted",
    ),
    Limit(
        "max_runs",
        "COLLECTOR_MAX_RUNS",
        10_000,
        1,
        10_000_000,
        "events of one type (MEASUREMENT: runs) kept per application",
    ),
    Limit(
        "max_event_bytes",
        "COLLECTOR_MAX_EVENT_BYTES",
        64 * 1024,
        1024,
        MIB,
        "largest event stored, in bytes of JSON (413 above it)",
    ),
    Limit(
        "max_app_bytes",
        "COLLECTOR_MAX_APP_BYTES",
        64 * MIB,
        MIB,
        2**40,
        "stored bytes kept per application, oldest events deleted first",
    ),
    Limit(
        "max_db_bytes",
        "COLLECTOR_MAX_DB_BYTES",
        512 * MIB,
        16 * MIB,
        2**44,
        "stored bytes kept in the whole file, oldest events deleted first",
    ),
)


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """A bearer token and the account it may write to (None: any account)."""

    token: str
    account: str | None = None


def parse_tokens(text: str, *, source: str, sep: str = "\n") -> tuple[list[TokenGrant], list[str]]:
    """Entries `token` (any account), `account:token` or `*:token` (any account, for a token
    that holds a ':'); blanks and `#` comments skipped. (grants, problems)."""
    grants: list[TokenGrant] = []
    problems: list[str] = []
    for n, raw in enumerate(text.split(sep), 1):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        account, colon, token = entry.partition(":")
        if not colon:
            account, token = "*", entry
        if not token or not token.isascii() or not token.isprintable() or " " in token:
            problems.append(f"{source} entry {n}: a token is printable ASCII without spaces")
        elif not account:
            problems.append(f"{source} entry {n}: empty account before ':'")
        else:
            grants.append(TokenGrant(token, None if account == "*" else account))
    return grants, problems


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_address(host: str) -> bool:
    """An IP address, or a host name of dot-separated labels of letters, digits and '-'."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.split(".")
    return 0 < len(host) <= 253 and all(
        0 < len(label) <= 63 and label.replace("-", "").isalnum() and label.isascii()
        for label in labels
    )


def bind_problem(bind: str, *, has_tokens: bool, open_: bool, name: str = "--bind") -> str | None:
    """Why the collector may not listen on `bind` (given as `name`), or None."""
    if not _is_address(bind):
        return f"{name}={bind[:80]!r}: expected an IP address or a host name"
    if has_tokens or open_ or is_loopback(bind):
        return None
    return (
        f"{name}={bind!r}: without tokens (COLLECTOR_TOKENS or --tokens-file) the collector"
        " takes writes from anyone who reaches it; configure tokens, bind 127.0.0.1, or"
        " declare it open with --open (COLLECTOR_OPEN=true)"
    )


def _int(raw: str, name: str, limit: Limit, problems: list[str]) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        problems.append(f"{name}={raw[:40]!r}: expected an integer {limit.lo}..{limit.hi}")
        return limit.default
    if not limit.lo <= value <= limit.hi:
        problems.append(f"{name}={raw[:40]!r}: expected {limit.lo}..{limit.hi}")
        return limit.default
    return value


def resolve_limits(args: Any, environ: Mapping[str, str], problems: list[str]) -> dict[str, int]:
    """Each limit from its flag (a string, or None when not given), else its variable."""
    out: dict[str, int] = {}
    for limit in LIMITS:
        flag_value = getattr(args, limit.key, None)
        if flag_value is not None:
            out[limit.key] = _int(flag_value, limit.flag, limit, problems)
        elif (env_value := environ.get(limit.env, "")).strip():
            out[limit.key] = _int(env_value, limit.env, limit, problems)
        else:
            out[limit.key] = limit.default
    return out


def resolve_open(args: Any, environ: Mapping[str, str], problems: list[str]) -> bool:
    if getattr(args, "open", False):
        return True
    raw = environ.get("COLLECTOR_OPEN", "").strip().lower()
    if raw in _TRUE:
        return True
    if raw and raw not in _FALSE:
        problems.append(f"COLLECTOR_OPEN={raw[:40]!r}: expected true or false")
    return False


def check_or_raise(problems: list[str]) -> None:
    if problems:
        raise ConfigError(problems)
