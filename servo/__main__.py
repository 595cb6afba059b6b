"""Start-up only: parse flags, load config (exit 2 on problems), configure logging, run."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from servo import __version__
from servo.config import load_config
from servo.errors import ConfigError

logger = logging.getLogger("servo")

EXIT_CONFIG = 2

ENV_HELP = """\
environment (see README for every variable):
  OPTUNE_URL          backend URL template with {acct} and {app_id} (required)
  OPTUNE_ACCOUNT      account name for {acct}
  OPTUNE_AUTH_TOKEN   bearer token (no Authorization header when unset)
  POD_NAMESPACES      comma-separated namespaces to watch, or * (default: default)
  OPTUNE_APP_ID       where the app id is in a pod (default: spec/containers/0/env/[JOBID])
  OPTUNE_DEBUG        0..5, more is chattier (default 0)
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
    from servo.report import Reporter

    try:
        api = load_api_client(cfg.kubeconfig)
    except ConfigError as e:
        print_config_error(e)
        return EXIT_CONFIG
    stop = threading.Event()
    servo = Servo(cfg, KubeClient(api), Reporter(cfg.report))

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
