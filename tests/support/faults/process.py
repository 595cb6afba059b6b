"""The servo as a real process (`python -m servo --kubeconfig ...`): started (waiting for its
first list), SIGKILLed, SIGTERMed and restarted on one outbox, each run logging JSON lines
to a file of its own. What it talks to is set up by rig.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from tests.support.faults.settings import wait_until

REPO = Path(__file__).resolve().parents[3]
SERVO = [sys.executable, "-m", "servo"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPTUNE_", "POD_NAMESP"))}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    env.update(extra)
    return env


class ServoProcess:
    """`python -m servo --kubeconfig ...`, started, SIGKILLed and restarted on one outbox;
    each run logs (JSON lines) to a file of its own."""

    def __init__(self, kubeconfig: Path, env: Mapping[str, str], log_dir: Path) -> None:
        self.kubeconfig = kubeconfig
        self.env = dict(env)
        self.log_dir = log_dir
        self.logs: list[Path] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.kills = 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, *, ready_timeout_s: float = 30) -> None:
        assert not self.alive, "servo already running"
        path = self.log_dir / f"servo-{len(self.logs)}.log"
        self.logs.append(path)
        self._log = open(path, "wb")  # noqa: SIM115 - closed when the process ends
        self.proc = subprocess.Popen(
            [*SERVO, "--kubeconfig", str(self.kubeconfig)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=clean_env(**self.env),
            cwd=REPO,
        )
        wait_until(
            lambda: not self.alive or self.said("listed pods", run=-1),
            ready_timeout_s,
            "the servo's first list",
            lambda: self.tail(),
        )
        assert self.alive, f"servo exited with {self.proc.returncode}: {self.tail()}"

    def kill(self) -> None:
        """SIGKILL: no shutdown at all, as an OOM kill or a node loss."""
        assert self.proc is not None and self.alive
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.kills += 1
        self._closed()

    def terminate(self, timeout_s: float = 60) -> tuple[int, float]:
        """SIGTERM as the kubelet sends it; (exit code, seconds to exit)."""
        assert self.proc is not None and self.alive
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout_s)
        self._closed()
        return code, time.monotonic() - started

    def close(self) -> None:
        if self.alive:
            self.kill()
        self._closed()

    def _closed(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def lines(self, run: int | None = None) -> list[dict[str, Any]]:
        """Parsed log lines of one run (index into `logs`), or of every run."""
        paths = self.logs if run is None else self.logs[run : (run + 1) or None]
        out = []
        for path in paths:
            for raw in path.read_bytes().splitlines():
                if raw.startswith(b"{"):
                    try:
                        out.append(json.loads(raw))
                    except ValueError:
                        pass  # a line still being written
        return out

    def said(self, msg: str, *, run: int | None = None) -> int:
        return sum(1 for line in self.lines(run) if line.get("msg") == msg)

    def errors(self) -> list[str]:
        """ERROR (and worse) log lines and tracebacks of every run."""
        out = [
            f"{ln.get('msg')} {ln.get('error', '')}".strip()
            for ln in self.lines()
            if ln.get("level") in ("ERROR", "CRITICAL")
        ]
        for path in self.logs:
            if b"Traceback" in path.read_bytes():
                out.append(f"traceback in {path.name}")
        return out

    def tail(self, n: int = 15) -> str:
        if not self.logs:
            return "(no log)"
        text = self.logs[-1].read_bytes().decode(errors="replace").splitlines()
        return "\n".join(text[-n:])
