"""`servo measure -- CMD ARGS...`: run one command here and measure it as a job is in a cluster.

The command line and the delivery: `runner.py` runs and measures the command (a fresh cgroup
when one can be made, else getrusage and psutil samples), `servo.core.measure_figures` builds
the event (pure); it goes to the backend when OPTUNE_URL is set, else into the local store.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import time
import uuid
from collections.abc import Mapping

from servo.core.errors import EXIT_CONFIG, ConfigError, ReportError
from servo.core.measure_figures import (
    build_param,
    command_from_args,
    default_app_id,
    event_id_for,
    exit_code_for,
    format_summary,
)
from servo.core.models import Event
from servo.local.runner import EXIT_CANNOT_RUN, EXIT_NOT_FOUND, measure_command
from servo.system.config import Config, load_config

logger = logging.getLogger(__name__)

# Someone waits at a terminal: retry a send for at most a minute, then keep it locally.
SEND_DEADLINE_MAX_S = 60.0
DESCRIPTION = (
    "Run one command here and measure it as a job is measured in a cluster: duration, exit"
    " code, CPU and peak memory (in a fresh cgroup when one can be made). The MEASUREMENT is"
    " sent to OPTUNE_URL when set, else stored in the local event store ($SERVO_DB)."
)


# -- command line ---------------------------------------------------------------------------
def add_measure_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `measure` subcommand (its own args, then `-- CMD ARGS...`)."""
    parser = subparsers.add_parser(
        "measure",
        help="run one command here and record its measurement",
        description=DESCRIPTION,
    )
    _add_arguments(parser)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--app-id", help="app id to report under (default: command basename)")
    parser.add_argument(
        "--no-cgroup",
        action="store_true",
        help="do not make a cgroup; measure with getrusage and psutil (approximate)",
    )
    parser.add_argument(
        "cmd", nargs=argparse.REMAINDER, metavar="-- CMD ARGS", help="the command to run"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="servo measure", description=DESCRIPTION)
    _add_arguments(parser)
    return parser


def run_measure(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Run `args.cmd`, deliver its MEASUREMENT, and return the command's exit status."""
    cmd = command_from_args(args.cmd)
    if not cmd:
        print(
            "servo measure: no command given (servo measure [options] -- CMD ARGS...)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    try:
        # Checked before the run: a bad OPTUNE_URL should not cost a long run's result.
        cfg = load_config(environ) if environ.get("OPTUNE_URL") else None
    except ConfigError as e:
        lines = "\n".join(f"  - {p}" for p in e.problems)
        print(f"servo measure: configuration error:\n{lines}", file=sys.stderr)
        return EXIT_CONFIG
    app_id = args.app_id or default_app_id(cmd)
    try:
        figures = measure_command(cmd, use_cgroup=not args.no_cgroup, out=sys.stderr)
    except OSError as e:
        print(f"servo measure: cannot run {cmd[0]!r}: {e.strerror or e}", file=sys.stderr)
        return EXIT_NOT_FOUND if isinstance(e, FileNotFoundError) else EXIT_CANNOT_RUN
    event = Event(
        id=event_id_for(str(uuid.uuid4())),
        event="MEASUREMENT",
        app_id=app_id,
        param=build_param(figures, cmd=cmd, host=socket.gethostname()),
    )
    delivered = deliver(event, cfg=cfg, environ=environ)
    print(format_summary(figures, delivered=delivered), file=sys.stderr)
    return exit_code_for(figures.returncode)


# -- delivery -------------------------------------------------------------------------------
def deliver(event: Event, *, cfg: Config | None, environ: Mapping[str, str]) -> str:
    """Send to the backend (cfg given) or store locally; return where it went, for the user."""
    if cfg is not None:
        from servo.report.reporter import Reporter  # requests + tenacity: only when sending

        reporter = Reporter(cfg.report)
        try:
            reporter.send(event, deadline_s=min(cfg.report.deadline_s, SEND_DEADLINE_MAX_S))
            return f"sent to {cfg.report.url_for(event.app_id)}"
        except (ReportError, KeyboardInterrupt) as e:
            why = str(e) if isinstance(e, ReportError) else "interrupted"
            print(f"servo measure: sending failed: {why}", file=sys.stderr)
            return f"NOT sent; {store_locally(event, environ=environ)} instead"
        finally:
            reporter.session.close()
    return store_locally(event, environ=environ)


def store_locally(event: Event, *, environ: Mapping[str, str]) -> str:
    from servo.store.events import EventStore, StoredEvent, default_db_path

    path = default_db_path(environ)
    with EventStore(path) as store:
        store.add(
            StoredEvent(
                received_at=time.time(),
                account=environ.get("OPTUNE_ACCOUNT") or "local",
                app_id=event.app_id,
                event_id=event.id,
                event=event.event,
                body=event.body(),
                pod_uid=None,
            )
        )
    return f"stored in {path} (app id {event.app_id})"
