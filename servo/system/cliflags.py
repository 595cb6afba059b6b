"""The flags every command that talks to the Kubernetes API shares, spelled as kubectl spells
them: `--kubeconfig`, `--context` and `--namespace` (`-n`). A flag wins over its variable
(KUBECONFIG, POD_NAMESPACES); load_config checks the namespaces, credentials.py the rest.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

NAMESPACE_HELP = (
    "namespace to watch; repeat it or give a comma-separated list, * for all "
    "(wins over POD_NAMESPACES; default: POD_NAMESPACES, else default)"
)


@dataclass(frozen=True, slots=True)
class KubeFlags:
    """What the command line said; None where it said nothing (the environment decides)."""

    kubeconfig: str | None = None
    context: str | None = None
    # Each --namespace value as given (a value may be a comma-separated list).
    namespaces: tuple[str, ...] | None = None


def add_kube_flags(parser: Any, *, namespaces: bool = True, what: str = "watch") -> None:
    """Add --kubeconfig, --context and (unless `namespaces` is False) --namespace/-n.

    Defaults are SUPPRESS so that `servo --kubeconfig X run` keeps X: a subparser's default
    would otherwise overwrite what the main parser read."""
    parser.add_argument(
        "--kubeconfig",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="kubeconfig file (wins over KUBECONFIG; default: KUBECONFIG, the in-cluster "
        "service account when in a pod, else ~/.kube/config)",
    )
    parser.add_argument(
        "--context",
        default=argparse.SUPPRESS,
        metavar="NAME",
        help="kubeconfig context to use (default: its current-context)",
    )
    if namespaces:
        parser.add_argument(
            "-n",
            "--namespace",
            action="append",
            dest="namespaces",
            default=argparse.SUPPRESS,
            metavar="NS",
            help=NAMESPACE_HELP.replace("to watch", f"to {what}"),
        )


def kube_flags(args: argparse.Namespace) -> KubeFlags:
    """The flags of add_kube_flags as parsed (absent attributes: not given)."""
    given = getattr(args, "namespaces", None)
    return KubeFlags(
        kubeconfig=getattr(args, "kubeconfig", None),
        context=getattr(args, "context", None),
        namespaces=tuple(given) if given is not None else None,
    )
