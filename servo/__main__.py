"""`servo`: parse the command line and hand it to the command's package, with the environment
(the one place a command's environment comes from). Each command is imported when chosen, so
`--help`, `--version` and a configuration error never load the kubernetes client."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from servo import __version__

ENV_HELP = """\
environment (see README for every variable):
  OPTUNE_URL          backend URL template with {acct} and {app_id}
                      (default: the bundled collector, http://servo-collector.servo.svc:8090/...)
  OPTUNE_ACCOUNT      account name for {acct} (default with the default URL: default)
  OPTUNE_AUTH_TOKEN   bearer token (no Authorization header when unset)
  OPTUNE_AUTH_TOKEN_FILE  the same token from a file (a Secret volume; re-read on change)
  POD_NAMESPACES      comma-separated namespaces to watch, or * (default: default);
                      --namespace wins over it
  KUBECONFIG          kubeconfig file(s); --kubeconfig wins over it, --context picks a context
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
    from servo.run.cli import add_run_flags

    for p in (parser, run):
        add_run_flags(p)
    from servo.collector.commands import add_collector_parser, add_report_parser

    add_collector_parser(sub)
    add_report_parser(sub)
    from servo.webhook.cli import add_webhook_parser

    add_webhook_parser(sub)
    from servo.local.measure import add_measure_parser

    add_measure_parser(sub)
    from servo.check.cli import add_check_parser

    add_check_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "collector":
        from servo.collector.commands import run_collector

        return run_collector(args, os.environ)
    if args.command == "report":
        from servo.collector.commands import run_report

        return run_report(args, os.environ)
    if args.command == "webhook":
        from servo.webhook.cli import run_webhook

        return run_webhook(args, os.environ)
    if args.command == "check":
        from servo.check.cli import run_check

        return run_check(args, os.environ)
    if args.command == "measure":
        from servo.local.measure import run_measure

        return run_measure(args, os.environ)
    from servo.run.cli import run_daemon

    return run_daemon(args, os.environ)


if __name__ == "__main__":
    sys.exit(main())
