"""The servo as a process: `servo --help`, exit 2 on bad config, a real run ended by SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.fakes.backend import RecordingBackend
from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.helpers import job_pod, set_running, set_terminated
from tests.support.servoproc import SERVO, clean_env


def test_help_lists_commands_and_environment() -> None:
    out = subprocess.run([*SERVO, "--help"], capture_output=True, text=True, check=True).stdout
    assert "OPTUNE_URL" in out and "POD_NAMESPACES" in out and "run" in out
    assert "OPTUNE_AUTH_TOKEN_FILE" in out
    run = subprocess.run([*SERVO, "run", "--help"], capture_output=True, text=True, check=True)
    for flag in ("--kubeconfig FILE", "--context NAME", "--namespace NS"):
        assert flag in run.stdout
    assert "wins over POD_NAMESPACES" in " ".join(run.stdout.split())


def test_bad_config_exits_2_naming_every_problem() -> None:
    proc = subprocess.run(
        [*SERVO],
        capture_output=True,
        text=True,
        env=clean_env(
            OPTUNE_URL="ftp://x/{nope}",
            POD_NAMESPACES=",",
            OPTUNE_DEBUG="x",
            OPTUNE_APP_ID="spec/[a,b]",
        ),
        timeout=60,
    )
    assert proc.returncode == 2
    for name in ("OPTUNE_URL", "POD_NAMESPACES", "OPTUNE_DEBUG", "OPTUNE_APP_ID"):
        assert name in proc.stderr
    assert "{nope}" in proc.stderr


def test_numbers_addresses_and_names_out_of_range_exit_2_together_without_traceback() -> None:
    bad = {
        "OPTUNE_STATS_WAIT": "nan",
        "OPTUNE_SEND_TIMEOUT": "nan",
        "OPTUNE_WATCH_IDLE_TIMEOUT": "nan",
        "OPTUNE_SEND_QUEUE": "99999999999999999999",
        "OPTUNE_LEADER_LEASE_SECONDS": "inf",
        "OPTUNE_SEND_WORKERS": "100000",
        "OPTUNE_METRICS_BIND": "abc",
        "OPTUNE_LEADER_NAMESPACE": "Bad_NS!",
    }
    proc = subprocess.run(
        [*SERVO, "run", "--kubeconfig", "/nonexistent"],
        capture_output=True,
        text=True,
        env=clean_env(**bad),
        timeout=60,
    )
    assert proc.returncode == 2
    assert f"({len(bad)} problem(s))" in proc.stderr, proc.stderr
    for name in bad:
        assert f"  - {name}=" in proc.stderr, name
    assert "Traceback" not in proc.stderr


def test_without_url_the_default_collector_is_used_and_shown() -> None:
    proc = subprocess.run(
        [*SERVO, "run", "--kubeconfig", "/nonexistent"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    assert proc.returncode == 2  # no cluster credentials here, but the config itself is fine
    assert "configuration error" not in proc.stderr and "OPTUNE_URL" not in proc.stderr
    assert (
        "servo: cannot use the Kubernetes credentials: --kubeconfig /nonexistent: no such file"
        in (proc.stderr)
    )
    assert "servo-collector.servo.svc:8090" in proc.stderr


def test_no_credentials_at_all_says_so_and_exits_2(tmp_path: Path) -> None:
    env = clean_env(OPTUNE_URL="http://127.0.0.1:9/{app_id}", HOME=str(tmp_path))
    env.pop("KUBECONFIG", None)
    proc = subprocess.run([*SERVO, "run"], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == (
        "servo: no Kubernetes credentials: not in a pod and no kubeconfig (--kubeconfig, "
        f"KUBECONFIG, {tmp_path}/.kube/config), nor OPTUNE_KUBE_TOKEN_FILE or "
        "OPTUNE_KUBE_TOKEN_COMMAND"
    )


def test_missing_kubeconfig_exits_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*SERVO, "--kubeconfig", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(OPTUNE_URL="http://127.0.0.1:9/{app_id}"),
    )
    assert proc.returncode == 2
    assert "Kubernetes credentials" in proc.stderr


def test_process_measures_a_job_and_says_goodbye_on_sigterm(tmp_path: Path) -> None:
    with KubeEmulator() as emu, RecordingBackend() as backend:
        kubeconfig = emu.write_kubeconfig(tmp_path / "kubeconfig")
        proc = subprocess.Popen(
            [*SERVO, "--kubeconfig", str(kubeconfig)],
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(
                OPTUNE_URL=backend.url_template(),
                OPTUNE_ACCOUNT="acme",
                OPTUNE_AUTH_TOKEN="s3cret-token",
                POD_NAMESPACES="default",
                OPTUNE_STATS_PORT="0",
                OPTUNE_STATS_BIND="127.0.0.1",
            ),
        )
        try:
            assert backend.wait_for(lambda: bool(backend.events("HELLO")), 30)
            emu.create_pod(job_pod("cli-job", jobid="CLI"))
            emu.update_pod("default", "cli-job", set_running)
            emu.update_pod("default", "cli-job", set_terminated)
            assert backend.wait_for(lambda: bool(backend.events("MEASUREMENT")), 15)
        finally:
            time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr
        [m] = backend.events("MEASUREMENT")
        assert m.param["annotations"]["pod"] == "cli-job"
        [bye] = backend.events("GOODBYE")
        assert bye.param == {"account": "acme", "reason": "SIGTERM"}
        lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
        msgs = [line["msg"] for line in lines]
        assert "servo starting" in msgs and "job measured" in msgs and "servo stopped" in msgs
        assert "s3cret-token" not in stderr


def test_readme_demo_runs_and_shows_every_event() -> None:
    """The README's first command ends in `python -m tests.demo`: it must work as written."""
    proc = subprocess.run(
        [sys.executable, "-m", "tests.demo"],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = [json.loads(line.strip()) for line in proc.stdout.splitlines() if line.startswith(" ")]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "HELLO" and kinds[-1] == "GOODBYE" and kinds.count("MEASUREMENT") == 3
    failed = [e["param"] for e in events if e["param"].get("status") == "failed"]
    assert [f["message"] for f in failed] == ["job deleted before it ran"]


def test_readme_first_command_measures_a_job_and_reports_it(tmp_path: Path) -> None:
    """The README's first command, as written, from `servo measure` on (the venv and the
    install before it are what CI itself just did)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    first = readme.split("```sh\n", 1)[1].split("\n```", 1)[0]
    steps = first.split(" && ")
    assert steps[0] == "python3 -m venv .venv" and steps[1].startswith(".venv/bin/pip install")
    bindir = Path(sys.executable).parent
    script = " && ".join(steps[2:]).replace(".venv/bin/", f"{bindir}/")
    env = clean_env(HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"))
    env.pop("SERVO_DB", None)
    proc = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "data" / "servo" / "servo.db").exists()
    [header, row] = proc.stdout.splitlines()
    assert header.startswith("APP ID") and row.split()[:3] == ["sample-job", "1", "0"]
    assert "MiB" in row  # the peak memory of the 100 MiB it touched
