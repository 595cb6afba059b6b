"""`servo run` start-up: its flags, configuration (exit 2 on problems), logging, the API client,
the outbox and the run loop, and the signals that stop it. Exit 2 also when there are no
Kubernetes credentials or the outbox directory is unusable: the message says which."""

from __future__ import annotations

import argparse
import logging
import signal
import sqlite3
from collections.abc import Mapping
from types import FrameType

from servo import __version__
from servo.core.errors import EXIT_CONFIG, ConfigError
from servo.system.cliflags import add_kube_flags, kube_flags
from servo.system.config import load_config, print_config_error, print_credentials_error
from servo.system.logs import configure_logging

logger = logging.getLogger("servo")


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of `servo run` (also taken before the command: `servo --namespace a run`)."""
    add_kube_flags(parser)
    parser.add_argument(
        "--log-format",
        choices=("json", "text"),
        default=argparse.SUPPRESS,
        help="log line format (default: json, or OPTUNE_LOG_FORMAT)",
    )


def run_daemon(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """`servo run`: watch and report until SIGTERM or SIGINT; 2 for a configuration error."""
    try:
        cfg = load_config(environ, flags=kube_flags(args))
    except ConfigError as e:
        print_config_error(e)
        return EXIT_CONFIG
    configure_logging(debug=cfg.debug, fmt=getattr(args, "log_format", cfg.log_format))
    logger.info("servo starting", extra={"version": __version__, "config": cfg.masked()})

    # Imported late: the kubernetes client is slow to import, and a config error needs none.
    from servo.kube.credentials import api_client_for
    from servo.report.outbox import Outbox
    from servo.run.app import Servo, StopRequest

    try:
        api = api_client_for(cfg.kubeconfig, environ, context=cfg.kube_context)
    except ConfigError as e:
        print_credentials_error(e)
        return EXIT_CONFIG
    try:
        outbox = Outbox(cfg.report.outbox_dir)
        outbox.depth()
    except (OSError, sqlite3.Error) as e:
        where = f"OPTUNE_OUTBOX_DIR={cfg.report.outbox_dir!r}"
        why = f"{where}: cannot keep the outbox there ({e}); point it at a writable volume"
        print_config_error(ConfigError([why]))
        return EXIT_CONFIG
    stop = StopRequest()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.request(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    Servo(cfg, api, outbox=outbox).run(stop)
    return 0
