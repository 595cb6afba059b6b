"""Start-up only: parse flags, load config (exit 2 on problems), configure logging, run."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sqlite3
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

from servo import __version__
from servo.config import load_config
from servo.errors import ConfigError

logger = logging.getLogger("servo")

EXIT_CONFIG = 2

ENV_HELP = """\
environment (see README for every variable):
  OPTUNE_URL          backend URL template with {acct} and {app_id}
                      (default: the bundled collector, http://servo-collector.servo.svc:8090/...)
  OPTUNE_ACCOUNT      account name for {acct} (default with the default URL: default)
  OPTUNE_AUTH_TOKEN   bearer token (no Authorization header when unset)
  POD_NAMESPACES      comma-separated namespaces to watch, or * (default: default)
  OPTUNE_APP_ID       where the app id is in a pod (default: spec/containers/0/env/[JOBID])
  OPTUNE_DEBUG        0..5, more is chattier (default 0)
  OPTUNE_KUBE_TOKEN_FILE, OPTUNE_KUBE_TOKEN_COMMAND (with OPTUNE_KUBE_SERVER)
                      credentials outside a pod; `servo check` tests the whole setup
  OPTUNE_WEBHOOK_*    the admission webhook (servo webhook): see the README, The admission webhook
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="servo",
        description="Watch batch-job pods and report one measurement per finished job.",
        epilog=ENV_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="watch pods and report (the default command)")
    for p in (parser, run):
        p.add_argument(
            "--kubeconfig",
            default=argparse.SUPPRESS,
            help="kubeconfig file (default: in-cluster, KUBECONFIG, ~/.kube/config)",
        )
        p.add_argument(
            "--log-format",
            choices=("json", "text"),
            default=argparse.SUPPRESS,
            help="log line format (default: json, or OPTUNE_LOG_FORMAT)",
        )
    add_collector_parser(sub)
    add_report_parser(sub)
    from servo.webhook_cli import add_webhook_parser

    add_webhook_parser(sub)
    from servo.measure import add_measure_parser

    add_measure_parser(sub)
    from servo.check_cli import add_check_parser

    add_check_parser(sub)
    return parser


def add_collector_parser(sub: Any) -> None:
    from servo.collector_settings import LIMITS

    # Every default is None: the environment is read by cmd_collector alone, when the command
    # runs, so that a bad COLLECTOR_* value never breaks another command (or --version).
    p = sub.add_parser(
        "collector",
        help="the bundled backend: store every event in SQLite, serve the jobs page",
        description="Receive protocol events from servos (and `servo measure`), store them in "
        "SQLite, answer WHATS_NEXT, and serve a page of jobs and their histories at /.",
    )
    p.add_argument("--bind", default=None, help="address to listen on (env COLLECTOR_BIND; "
                   "default 0.0.0.0 with tokens or --open, else 127.0.0.1)")  # fmt: skip
    p.add_argument("--open", action="store_true", default=False,
                   help="without tokens, take writes from anyone who reaches the address "
                   "(env COLLECTOR_OPEN=true)")  # fmt: skip
    for limit in LIMITS:
        p.add_argument(limit.flag, default=None, metavar="N",
                       help=f"{limit.help} (env {limit.env}; {limit.lo}..{limit.hi}, "
                       f"default {limit.default})")  # fmt: skip
    p.add_argument("--db", default=None, help="SQLite file (default: $SERVO_DB or "
                   "~/.local/share/servo/servo.db)")  # fmt: skip
    p.add_argument("--tokens-file", default=None,
                   help="file of accepted bearer tokens, one per line: TOKEN (any account) or "
                   "ACCOUNT:TOKEN (env COLLECTOR_TOKENS_FILE; also COLLECTOR_TOKENS, "
                   "comma-separated)")  # fmt: skip
    p.add_argument(
        "--responses",
        default=None,
        help='JSON file of WHATS_NEXT answers: {"<app id>" or "*": {"cmd", "param"}} '
        "(env COLLECTOR_RESPONSES)",
    )
    p.add_argument("--log-format", choices=("json", "text"), default="text")


def add_report_parser(sub: Any) -> None:
    from servo.jobs_report import FORMATS

    p = sub.add_parser(
        "report",
        help="per-job summaries of the stored measurements",
        description="Runs, failures, duration / CPU / peak memory p50, p95 and "
        "max, last run and trend per app id, from the local SQLite store.",
    )
    p.add_argument("--db", default=None, help="SQLite file (default: $SERVO_DB or "
                   "~/.local/share/servo/servo.db)")  # fmt: skip
    p.add_argument("--app", default=None, help="only this app id")
    p.add_argument("--since", default=None, help="only runs since: 24h, 7d, 2026-11-01, ...")
    p.add_argument("--format", choices=FORMATS, default="table")


def cmd_collector(args: argparse.Namespace) -> int:
    from servo.collector_cli import collector_from_args
    from servo.logs import configure_logging

    try:
        collector = collector_from_args(args, os.environ)
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
        print(f"servo collector: cannot listen on {collector.bind}:{collector.port}: {e}",
              file=sys.stderr)  # fmt: skip
        collector.store.close()
        return 1
    print(f"servo collector: {collector.url}/ (POST events to {collector.url_template()})",
          file=sys.stderr)  # fmt: skip
    stop.wait()
    collector.stop()
    collector.store.close()
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from servo.jobs_report import report_text
    from servo.store import EventStore, default_db_path

    path = args.db or default_db_path()
    if not os.path.exists(path):
        print(f"servo report: no store at {path} yet (run: servo measure -- sleep 1)",
              file=sys.stderr)  # fmt: skip
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "collector":
        return cmd_collector(args)
    if args.command == "report":
        return cmd_report(args)
    if args.command == "webhook":
        from servo.webhook_cli import run_webhook

        return run_webhook(args, os.environ)
    if args.command == "check":
        from servo.check_cli import run_check

        return run_check(args, os.environ)
    if args.command == "measure":
        from servo.measure import run_measure

        return run_measure(args, os.environ)
    return cmd_run(args)


def cmd_run(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(os.environ, kubeconfig=getattr(args, "kubeconfig", None))
    except ConfigError as e:
        print_config_error(e)
        return EXIT_CONFIG
    from servo.logs import configure_logging

    configure_logging(debug=cfg.debug, fmt=getattr(args, "log_format", cfg.log_format))
    logger.info("servo starting", extra={"version": __version__, "config": cfg.masked()})

    # Imported late: the kubernetes client is slow to import, and a config error needs none.
    from servo.app import Servo
    from servo.kube import KubeClient, load_api_client
    from servo.outbox import Outbox
    from servo.report import Reporter

    try:
        api = load_api_client(cfg.kubeconfig)
    except ConfigError as e:
        print_config_error(e)
        return EXIT_CONFIG
    try:
        outbox = Outbox(cfg.report.outbox_dir)
        outbox.depth()
    except (OSError, sqlite3.Error) as e:
        print_config_error(ConfigError([
            f"OPTUNE_OUTBOX_DIR={cfg.report.outbox_dir!r}: cannot keep the outbox there ({e});"
            " point it at a writable volume"]))  # fmt: skip
        return EXIT_CONFIG
    stop = threading.Event()
    reporter = Reporter(cfg.report, outbox=outbox)
    servo = Servo(cfg, KubeClient(api), reporter)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        servo.stop_reason = signal.Signals(signum).name
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    servo.run(stop)
    return 0


def print_config_error(e: ConfigError) -> None:
    lines = "\n".join(f"  - {p}" for p in e.problems)
    print(f"servo: configuration error ({len(e.problems)} problem(s)):\n{lines}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
