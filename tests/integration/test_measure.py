"""`servo measure` as a process: real commands, real cgroups (as root), SQLite and a backend.

Workload: a Python child that touches 100 MiB page by page, burns ~1 s of its own CPU and prints
its own getrusage (whole life, start-up included) at exit; that is the truth figures are held to.

Tolerances, cgroup v1: cpu_time within 5% of the child's own CPU (the cgroup also holds the
few ms between fork and exec and the exit that frees the array). max_memory at least the 100 MiB
touched and at most 1.2 x 100 MiB + 16 MiB: the child joins the cgroup before it execs, so the
interpreter's private pages (~6 MiB for `python -I -S`), page tables of the array (~0.2 MiB)
and any page cache it reads first are charged too; 16 MiB covers those with room.
Fallback (rusage + psutil): cpu within 10%, memory at least the 100 MiB touched.
"""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import servo.local.measure
from servo.local.cgroup import CgroupUnavailableError, LocalCgroup
from servo.store.events import EventStore, StoredEvent
from tests.fakes.backend import RecordingBackend
from tests.mon.livecg import CGROUP_MOUNT, own_cgroup, unavailable_reason

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


@pytest.mark.cgroup
@pytest.mark.skipif(CGROUP_REASON is not None, reason=CGROUP_REASON or "")
def test_cgroup_v1_figures_match_a_known_workload_and_the_cgroup_is_removed(
    tmp_path: Path,
) -> None:
    proc = measure(["--app-id", "burn", "--", *WORKLOAD_CMD], clean_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    truth_cpu_s = json.loads(proc.stdout)["cpu_s"]
    param = only_param(tmp_path)
    assert param["annotations"]["measured_by"] == "cgroup-v1"
    assert value(param, "cpu_time") == pytest.approx(truth_cpu_s, rel=0.05)
    # cpuacct.stat counts USER_HZ ticks: its split agrees with cpuacct.usage to a few ticks.
    assert value(param, "cpu_user") + value(param, "cpu_system") == pytest.approx(
        value(param, "cpu_time"), abs=0.1
    )
    peak = value(param, "max_memory")
    assert TOUCHED_BYTES <= peak <= TOUCHED_BYTES * 1.2 + SLACK_BYTES, peak
    assert leftover_cgroups() == []
    print(f"cgroup: cpu {value(param, 'cpu_time'):.3f} s vs {truth_cpu_s:.3f} s, peak {peak}")


def test_fallback_figures_match_a_known_workload(tmp_path: Path) -> None:
    proc = measure(["--no-cgroup", "--", *WORKLOAD_CMD], clean_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "no cgroup (--no-cgroup)" in proc.stderr
    truth_cpu_s = json.loads(proc.stdout)["cpu_s"]
    param = only_param(tmp_path)
    assert param["annotations"]["measured_by"] == "rusage"
    assert value(param, "cpu_time") == pytest.approx(truth_cpu_s, rel=0.10)
    peak = value(param, "max_memory")
    assert peak >= TOUCHED_BYTES
    print(f"fallback: cpu {value(param, 'cpu_time'):.3f} s vs {truth_cpu_s:.3f} s, peak {peak}")


@pytest.mark.parametrize(
    ("script", "exit_code", "reason"),
    [
        ("exit 0", 0, "Completed"),
        ("exit 3", 3, "Error"),
        ("kill -KILL $$", 137, "Signal 9"),
    ],
)
def test_exit_code_passes_through_as_a_shell_would(
    tmp_path: Path, script: str, exit_code: int, reason: str
) -> None:
    proc = measure(["--", "sh", "-c", script], clean_env(tmp_path))
    assert proc.returncode == exit_code, proc.stderr
    (event,) = stored(tmp_path)
    assert event.app_id == "sh"
    assert event.account == "local"
    assert event.body["event"] == "MEASUREMENT"
    assert event.body["id"] == event.event_id and event.event_id.endswith(":MEASUREMENT")
    annotations = event.body["param"]["annotations"]
    assert annotations["exitcode"] == str(exit_code)
    assert annotations["reason"] == reason
    assert annotations["command"] == f"sh -c '{script}'"
    assert annotations["host"]
    assert value(event.body["param"], "duration") > 0
    assert f"stored in {tmp_path / 'servo.db'}" in proc.stderr


def test_sigterm_to_servo_is_forwarded_to_the_command(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    script = f"trap 'exit 42' TERM; touch {ready}; while :; do sleep 0.05; done"
    proc = subprocess.Popen(
        [*MEASURE, "--", "sh", "-c", script],
        env=clean_env(tmp_path),
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 10
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 42, err  # the command's trap ran: it got the SIGTERM
    assert only_param(tmp_path)["annotations"]["exitcode"] == "42"


def test_command_not_found_exits_127_and_records_nothing(tmp_path: Path) -> None:
    proc = measure(["--", str(tmp_path / "no-such-command")], clean_env(tmp_path))
    assert proc.returncode == 127
    assert "cannot run" in proc.stderr
    assert not (tmp_path / "servo.db").exists()
    if CGROUP_REASON is None:
        assert leftover_cgroups() == []


def test_sent_to_the_backend_when_optune_url_is_set(tmp_path: Path) -> None:
    with RecordingBackend() as backend:
        env = clean_env(tmp_path, OPTUNE_URL=backend.url_template(), OPTUNE_ACCOUNT="acme")
        proc = measure(["--app-id", "nightly/etl", "--", "true"], env)
        assert proc.returncode == 0, proc.stderr
        assert backend.wait_for(lambda: len(backend.events("MEASUREMENT")) == 1, timeout_s=5)
        (req,) = backend.events("MEASUREMENT")
    assert req.path == "/accounts/acme/applications/nightly%2Fetl/servo"
    assert req.event_id is not None and req.event_id.endswith(":MEASUREMENT")
    assert req.headers["Idempotency-Key"] == req.event_id
    assert req.param["annotations"]["command"] == "true"
    assert req.param["annotations"]["exitcode"] == "0"
    assert set(req.param["metrics"]) >= {"duration", "cpu_time", "max_memory"}
    assert "sent to http://127.0.0.1:" in proc.stderr
    assert not (tmp_path / "servo.db").exists()


def test_bad_optune_url_exits_2_before_running_anything(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    env = clean_env(tmp_path, OPTUNE_URL="ftp://x")
    proc = measure(["--", "touch", str(marker)], env)
    assert proc.returncode == 2
    assert "OPTUNE_URL='ftp://x'" in proc.stderr
    assert not marker.exists()


def test_progress_line_for_a_run_longer_than_3s(tmp_path: Path) -> None:
    proc = measure(["--", "sleep", "3.6"], clean_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "running" in line]
    assert len(lines) == 1, proc.stderr  # stderr is a pipe: plain lines, no \r
    assert lines[0].startswith("servo measure: running 3.")
    assert "cpu " in lines[0] and "memory " in lines[0]
    assert value(only_param(tmp_path), "duration") == pytest.approx(3.6, abs=0.3)


@pytest.mark.cgroup
@pytest.mark.skipif(CGROUP_REASON is not None, reason=CGROUP_REASON or "")
def test_processes_that_outlive_the_command_are_moved_out_and_the_cgroup_removed(
    tmp_path: Path,
) -> None:
    script = "sleep 1 </dev/null >/dev/null 2>&1 & exit 0"
    proc = measure(["--", "sh", "-c", script], clean_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "1 process(es) outlived the command" in proc.stderr
    assert leftover_cgroups() == []


def test_no_cgroup_possible_falls_back_saying_why(monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable() -> LocalCgroup:
        raise CgroupUnavailableError("cannot create /x: Permission denied")

    monkeypatch.setattr(servo.local.measure, "create_local_cgroup", unavailable)
    out = io.StringIO()
    figures = servo.local.measure.measure_command(["sh", "-c", "exit 4"], use_cgroup=True, out=out)
    assert (figures.measured_by, figures.returncode) == ("rusage", 4)
    assert out.getvalue() == (
        "servo measure: no cgroup (cannot create /x: Permission denied);"
        " measuring with getrusage and psutil (approximate)\n"
    )


def test_failing_to_join_the_cgroup_runs_the_command_once_without(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    class Unjoinable:
        removed = 0

        def preexec(self) -> Callable[[], None]:
            def join() -> None:
                raise OSError(errno.EACCES, "Permission denied")

            return join

        def remove(self) -> int:
            self.removed += 1
            return 0

    cg = Unjoinable()
    monkeypatch.setattr(servo.local.measure, "create_local_cgroup", lambda: cg)
    out = io.StringIO()
    runs = tmp_path / "runs"
    figures = servo.local.measure.measure_command(
        ["sh", "-c", f"echo x >> {runs}"], use_cgroup=True, out=out
    )
    assert figures.measured_by == "rusage"
    assert runs.read_text() == "x\n"  # the failed join ran nothing
    assert cg.removed == 1
    assert "joining it failed" in out.getvalue()
