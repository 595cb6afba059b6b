"""The servo as a child process: its command line and an environment without the caller's servo
settings (each process with an outbox of its own)."""

from __future__ import annotations

import os
import sys
import tempfile

SERVO = [sys.executable, "-m", "servo"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPTUNE_", "POD_NAMESP"))}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    # Each process gets an outbox of its own: a shared one would carry events between tests.
    env["OPTUNE_OUTBOX_DIR"] = tempfile.mkdtemp(prefix="servo-outbox-")
    env.update(OPTUNE_METRICS_PORT="0", OPTUNE_METRICS_BIND="127.0.0.1")
    env.update(extra)
    return env
