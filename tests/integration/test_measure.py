"""`servo measure` as a process: real commands, SQLite and a backend; without cgroups (the
runs on real cgroups are tests/cgroup/test_measure_cgroup.py).

Workload: a Python child that touches 100 MiB page by page, burns ~1 s of its own CPU and prints
its own getrusage (whole life, start-up included) at exit; that is the truth figures are held to.
Fallback (rusage + psutil): cpu within 10%, memory at least the 100 MiB touched.
"""

from __future__ import annotations

import errno
import io
import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import servo.local.runner
from servo.local.cgroup import CgroupUnavailableError, LocalCgroup
from tests.support.fakes.backend import RecordingBackend
from tests.support.measurekit import (
    CGROUP_REASON,
    MEASURE,
    REPO,
    TOUCHED_BYTES,
    WORKLOAD_CMD,
    clean_env,
    leftover_cgroups,
    measure,
    only_param,
    stored,
    value,
)


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


def test_no_cgroup_possible_falls_back_saying_why(monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable() -> LocalCgroup:
        raise CgroupUnavailableError("cannot create /x: Permission denied")

    monkeypatch.setattr(servo.local.runner, "create_local_cgroup", unavailable)
    out = io.StringIO()
    figures = servo.local.runner.measure_command(["sh", "-c", "exit 4"], use_cgroup=True, out=out)
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
    monkeypatch.setattr(servo.local.runner, "create_local_cgroup", lambda: cg)
    out = io.StringIO()
    runs = tmp_path / "runs"
    figures = servo.local.runner.measure_command(
        ["sh", "-c", f"echo x >> {runs}"], use_cgroup=True, out=out
    )
    assert figures.measured_by == "rusage"
    assert runs.read_text() == "x\n"  # the failed join ran nothing
    assert cg.removed == 1
    assert "joining it failed" in out.getvalue()
