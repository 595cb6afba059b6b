"""`servo check`: the checks of servo/check/checks.py from the command line, for first-time setup.

Reads the same environment and flags (`--kubeconfig`, `--context`, `--namespace`) as `servo
run`; prints one line per check (plain text, or `--format json`) with the fix for each problem.
Exit status: checks.EXIT_CODES (0 works, 1 something will not work, 2 configuration error, 3 no
usable Kubernetes credentials, 4 API server unreachable), also in `servo check --help`.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from servo.check.checks import (
    DEFAULT_TIMEOUT_S,
    EXIT_CODES,
    CheckOptions,
    exit_code,
    render_json,
    render_text,
    run_checks,
)
from servo.check.host import NODE_SYS_ROOT
from servo.system.cliflags import add_kube_flags, kube_flags

# One network call of a check: long enough for a slow API server, short enough to answer.
MIN_TIMEOUT_S, MAX_TIMEOUT_S = 0.1, 300.0

DESCRIPTION = (
    "What the servo would do with the current configuration: the configuration, Kubernetes "
    "credentials, the API server, each watched namespace and the RBAC verbs on pods "
    "(SelfSubjectAccessReview), the backend (a HELLO), the outbox directory, the stats and "
    "metrics ports and, on a node, the cgroup layout the monitor would find."
)
EPILOG = "exit status (the first that applies):\n" + "\n".join(
    f"  {code}  {meaning}" for code, meaning in EXIT_CODES
)


def add_check_parser(subparsers: Any) -> None:
    """Add the `check` subcommand."""
    p = subparsers.add_parser(
        "check",
        help="check the configuration, cluster access and backend (first-time setup)",
        description=textwrap.fill(DESCRIPTION, width=78),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_kube_flags(p, what="check")
    p.add_argument("--format", choices=("text", "json"), default="text", dest="check_format")
    p.add_argument(
        "--sys-root",
        type=Path,
        default=None,
        help=f"the host's /sys, to check the cgroup layout (default: {NODE_SYS_ROOT} when it "
        "exists, else that check is skipped)",
    )
    p.add_argument("--pod-uid", default=None, help="also locate this pod's cgroup on the node")
    p.add_argument(
        "--timeout",
        type=timeout_arg,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds per network call, {MIN_TIMEOUT_S:g}..{MAX_TIMEOUT_S:g} "
        f"(default {DEFAULT_TIMEOUT_S:g})",
    )


def timeout_arg(text: str) -> float:
    """--timeout: finite seconds in range (argparse turns the error into exit 2 and usage)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not MIN_TIMEOUT_S <= value <= MAX_TIMEOUT_S:  # nan fails this too
        raise argparse.ArgumentTypeError(
            f"{text[:40]!r}: expected seconds in {MIN_TIMEOUT_S:g}..{MAX_TIMEOUT_S:g}"
        )
    return value


def run_check(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Run every check, print the results, return the exit status."""
    root = logging.getLogger()
    if not root.handlers:
        # The results are the output; retry warnings of the clients would only repeat them.
        root.addHandler(logging.NullHandler())
    flags = kube_flags(args)
    opts = CheckOptions(
        kubeconfig=flags.kubeconfig,
        context=flags.context,
        namespaces=flags.namespaces,
        sys_root=getattr(args, "sys_root", None),
        pod_uid=getattr(args, "pod_uid", None),
        timeout_s=float(getattr(args, "timeout", DEFAULT_TIMEOUT_S)),
    )
    results = run_checks(environ, opts)
    fmt = getattr(args, "check_format", "text")
    sys.stdout.write(render_json(results) if fmt == "json" else render_text(results))
    sys.stdout.flush()
    return exit_code(results)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m servo.check.cli check [...]`: the subcommand on its own (until, and beside,
    its wiring into `servo`)."""
    parser = argparse.ArgumentParser(prog="servo")
    parser.add_argument("--kubeconfig", default=argparse.SUPPRESS)
    add_check_parser(parser.add_subparsers(dest="command", required=True))
    return run_check(parser.parse_args(argv), os.environ)


if __name__ == "__main__":
    sys.exit(main())
