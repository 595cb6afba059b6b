"""`servo collector` and `servo report`: their flags and their runs.

Every flag default is None so that the environment is read when the command runs, by
collector_from_args alone: a bad COLLECTOR_* value never breaks another command (or --version).
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import sys
import threading
from collections.abc import Mapping
from typing import Any

from servo.collector.cli import collector_from_args
from servo.collector.settings import LIMITS
from servo.collector.text_report import FORMATS, report_text
from servo.core.errors import EXIT_CONFIG, ConfigError
from servo.store.events import EventStore, default_db_path
from servo.system.config import print_config_error
from servo.system.logs import configure_logging


def add_collector_parser(sub: Any) -> None:
    # Every default is None: the environment is read by cmd_collector alone, when the command
    # runs, so that a bad COLLECTOR_* value never breaks another command (or --version).
    p = sub.add_parser(
        "collector",
        help="the bundled backend: store every event in SQLite, serve the jobs page",
        description="Receive protocol events from servos (and `servo measure`), store them in "
        "SQLite, answer WHATS_NEXT, and serve a page of jobs and their histories at /.",
    )
    p.add_argument(
        "--bind",
        default=None,
        help="address to listen on (env COLLECTOR_BIND; "
        "default 0.0.0.0 with tokens or --open, else 127.0.0.1)",
    )
    p.add_argument(
        "--open",
        action="store_true",
        default=False,
        help="without tokens, take writes from anyone who reaches the address "
        "(env COLLECTOR_OPEN=true)",
    )
    for limit in LIMITS:
        p.add_argument(
            limit.flag,
            default=None,
            metavar="N",
            help=f"{limit.help} (env {limit.env}; {limit.lo}..{limit.hi}, default {limit.default})",
        )
    p.add_argument(
        "--db",
        default=None,
        help="SQLite file (default: $SERVO_DB or ~/.local/share/servo/servo.db)",
    )
    p.add_argument(
        "--tokens-file",
        default=None,
        help="file of accepted bearer tokens, one per line: TOKEN (any account) or "
        "ACCOUNT:TOKEN (env COLLECTOR_TOKENS_FILE; also COLLECTOR_TOKENS, "
        "comma-separated)",
    )
    p.add_argument(
        "--responses",
        default=None,
        help='JSON file of WHATS_NEXT answers: {"<app id>" or "*": {"cmd", "param"}} '
        "(env COLLECTOR_RESPONSES)",
    )
    p.add_argument("--log-format", choices=("json", "text"), default="text")


def add_report_parser(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="per-job summaries of the stored measurements",
        description="Runs, failures, duration / CPU / peak memory p50, p95 and "
        "max, last run and trend per app id, from the local SQLite store.",
    )
    p.add_argument(
        "--db",
        default=None,
        help="SQLite file (default: $SERVO_DB or ~/.local/share/servo/servo.db)",
    )
    p.add_argument("--app", default=None, help="only this app id")
    p.add_argument("--since", default=None, help="only runs since: 24h, 7d, 2026-11-01, ...")
    p.add_argument("--format", choices=FORMATS, default="table")


def run_collector(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """`servo collector`: serve until SIGTERM or SIGINT; 2 for a configuration error."""
    try:
        collector = collector_from_args(args, environ)
    except ConfigError as e:
        print_config_error(e)
        return EXIT_CONFIG
    configure_logging(debug=0, fmt=args.log_format)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        collector.start()
    except OSError as e:
        print(
            f"servo collector: cannot listen on {collector.bind}:{collector.port}: {e}",
            file=sys.stderr,
        )
        collector.store.close()
        return 1
    print(
        f"servo collector: {collector.url}/ (POST events to {collector.url_template()})",
        file=sys.stderr,
    )
    stop.wait()
    collector.stop()
    collector.store.close()
    return 0


def run_report(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """`servo report`: the stored runs per job, as text; 1 without a store, 2 for a bad flag."""
    path = args.db or default_db_path(environ)
    if not os.path.exists(path):
        print(
            f"servo report: no store at {path} yet (run: servo measure -- sleep 1)", file=sys.stderr
        )
        return 1
    try:
        with EventStore(path) as store:
            text = report_text(store, fmt=args.format, app_id=args.app, since=args.since)
    except ValueError as e:
        print(f"servo report: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except (OSError, sqlite3.Error) as e:
        print(f"servo report: cannot read the store {path}: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0
