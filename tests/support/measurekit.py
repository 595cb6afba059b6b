"""`servo measure` as a child process: the workload whose own figures are the truth (it touches
100 MiB page by page and burns ~1 s of its own CPU, then prints its getrusage), the command, and
what it stored."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from servo.store.events import EventStore, StoredEvent
from tests.support.livecg import CGROUP_MOUNT, own_cgroup, unavailable_reason

MIB = 1 << 20
TOUCHED_BYTES = 100 * MIB
SLACK_BYTES = 16 * MIB
BURN_S = 1.0
CGROUP_REASON = unavailable_reason()
REPO = Path(__file__).resolve().parents[2]
MEASURE = [sys.executable, "-m", "servo", "measure"]
WORKLOAD = r"""
import json, resource, sys, time
cpu_s, mem_bytes, page = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
buf = bytearray(mem_bytes)
for i in range(0, mem_bytes, page):
    buf[i] = 1
t0 = time.process_time()
x = 0
while time.process_time() - t0 < cpu_s:
    for _ in range(10000):
        x += 1
r = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"cpu_s": r.ru_utime + r.ru_stime}), flush=True)
"""
WORKLOAD_CMD = [
    sys.executable,
    "-I",
    "-S",
    "-c",
    WORKLOAD,
    str(BURN_S),
    str(TOUCHED_BYTES),
    str(os.sysconf("SC_PAGE_SIZE")),
]


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTUNE_")}
    env["SERVO_DB"] = str(tmp_path / "servo.db")
    env.update(extra)
    return env


def measure(
    args: list[str], env: dict[str, str], *, timeout_s: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MEASURE, *args], capture_output=True, text=True, env=env, timeout=timeout_s, cwd=REPO
    )


def stored(tmp_path: Path) -> list[StoredEvent]:
    with EventStore(tmp_path / "servo.db") as store:
        return store.events(event="MEASUREMENT")


def only_param(tmp_path: Path) -> dict[str, Any]:
    (event,) = stored(tmp_path)
    param: dict[str, Any] = event.body["param"]
    return param


def value(param: dict[str, Any], metric: str) -> float:
    return float(param["metrics"][metric]["value"])


def leftover_cgroups() -> list[Path]:
    found: list[Path] = []
    for controller in ("memory", "cpuacct"):
        base = CGROUP_MOUNT / controller / own_cgroup(controller).lstrip("/")
        found += base.glob("servo-measure-*")
    return found
