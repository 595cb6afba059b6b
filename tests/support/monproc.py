"""Starting `python -m mon` as a subprocess against fixture trees (shared by the main tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.cgtree import POD_PATHS, POD_UID, cid

REPO = Path(__file__).resolve().parents[2]
APP, PAUSE, SELF = cid("app"), cid("pause"), cid("monitor")


@dataclass
class Monitor:
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    waiting: threading.Event = field(default_factory=threading.Event)

    def log(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.lines if line.startswith("{")]


def fake_proc(tmp_path: Path, own: str, *, sandbox: str | None = PAUSE) -> Path:
    """A /proc with self/cgroup naming our container and a mountinfo naming the sandbox."""
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    rel = POD_PATHS[("systemd", "burstable")]
    (proc / "self" / "cgroup").write_text(f"0::/{rel}/{own}\n")
    line = "1 0 254:1 / / rw - ext4 /dev/vda1 rw\n"
    if sandbox is not None:
        line += (
            f"2 1 254:1 /var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/{sandbox}/"
            "hostname /etc/hostname rw - ext4 /dev/vda1 rw\n"
        )
    (proc / "self" / "mountinfo").write_text(line)
    return proc


def mon_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "OPTUNE_POD_UID": POD_UID,
        "OPTUNE_SYS_ROOT": str(tmp_path),
        "OPTUNE_TERMINATION_LOG": str(tmp_path / "termination-log"),
        "OPTUNE_POLL_INTERVAL": "0.05",
    }
    env.update(extra)
    return env


Start = Callable[..., Monitor]


@pytest.fixture
def start() -> Iterator[Start]:
    started: list[Monitor] = []

    def run(env: Mapping[str, str], *args: str) -> Monitor:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mon", *args],
            cwd=REPO,
            env=dict(env),
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        mon = Monitor(proc)

        def read() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                mon.lines.append(line)
                if '"waiting for cue"' in line:
                    mon.waiting.set()

        threading.Thread(target=read, daemon=True).start()
        started.append(mon)
        return mon

    yield run
    for mon in started:
        if mon.proc.poll() is None:
            mon.proc.kill()
            mon.proc.wait()
