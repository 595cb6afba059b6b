"""`servo collector` start-up: flags and COLLECTOR_* variables -> a Collector ready to start,
with every problem (a number out of range, an unreadable file, a forbidden bind, a store that
cannot be opened) raised at once as one ConfigError.
"""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from servo.collector.server import Collector, load_responses
from servo.collector.settings import (
    TokenGrant,
    bind_problem,
    check_or_raise,
    parse_tokens,
    resolve_limits,
    resolve_open,
)
from servo.store.events import EventStore, default_db_path
from servo.store.retention import Retention


def _setting(args: argparse.Namespace, key: str, environ: Mapping[str, str], env: str) -> str:
    value = getattr(args, key, None)
    return value if value is not None else environ.get(env, "").strip()


def _tokens(
    args: argparse.Namespace, environ: Mapping[str, str], problems: list[str]
) -> list[TokenGrant]:
    grants, bad = parse_tokens(
        environ.get("COLLECTOR_TOKENS", ""), source="COLLECTOR_TOKENS", sep=","
    )
    problems += bad
    path = _setting(args, "tokens_file", environ, "COLLECTOR_TOKENS_FILE")
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            problems.append(f"--tokens-file {path}: {e}")
        else:
            more, bad = parse_tokens(text, source=f"--tokens-file {path}")
            grants += more
            problems += bad
    return grants


def _responses(
    args: argparse.Namespace, environ: Mapping[str, str], problems: list[str]
) -> dict[str, Any]:
    path = _setting(args, "responses", environ, "COLLECTOR_RESPONSES")
    if not path:
        return {}
    try:
        return load_responses(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        problems.append(f"--responses {path}: {e}")
        return {}


def collector_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> Collector:
    """The collector the flags and environment describe, not yet listening; ConfigError."""
    problems: list[str] = []
    limits = resolve_limits(args, environ, problems)
    is_open = resolve_open(args, environ, problems)
    grants = _tokens(args, environ, problems)
    responses = _responses(args, environ, problems)
    bind = _setting(args, "bind", environ, "COLLECTOR_BIND")
    name = "--bind" if args.bind is not None else "COLLECTOR_BIND"
    bind = bind or ("0.0.0.0" if grants or is_open else "127.0.0.1")  # noqa: S104
    if problem := bind_problem(bind, has_tokens=bool(grants), open_=is_open, name=name):
        problems.append(problem)
    check_or_raise(problems)
    retention = Retention(
        max_age_s=limits["retention_days"] * 86400.0,
        max_runs=limits["max_runs"],
        max_app_bytes=limits["max_app_bytes"],
        max_db_bytes=limits["max_db_bytes"],
    )
    path = args.db or default_db_path(environ)
    try:
        store = EventStore(path, retention=retention)
    except (OSError, sqlite3.Error) as e:
        check_or_raise([f"--db {path}: cannot open the store: {e}"])
        raise
    return Collector(
        store,
        tuple(grants),
        responses,
        bind=bind,
        port=limits["port"],
        is_open=is_open,
        max_event_bytes=limits["max_event_bytes"],
    )
