"""--kubeconfig, --context and --namespace as kubectl users expect them: one kubeconfig with two
contexts pointing at two API emulators on 127.0.0.1, read by the official client. `--context`
picks the right cluster (the other one never hears from us), `--namespace` wins over
POD_NAMESPACES and limits what is watched, for `servo run`, `servo check` and `servo webhook`."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s

from servo.check.checks import CheckOptions, Status, exit_code, run_checks
from servo.kube.credentials import load_credentials
from servo.webhook.cli import add_webhook_parser, run_webhook
from tests.support.fakes.backend import RecordingBackend
from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.helpers import job_pod, set_running, set_terminated
from tests.support.servoproc import SERVO, clean_env

TOKEN_A, TOKEN_B = "token-of-cluster-a", "token-of-cluster-b"


@pytest.fixture
def clusters() -> Iterator[tuple[KubeEmulator, KubeEmulator]]:
    with KubeEmulator(token=TOKEN_A) as a, KubeEmulator(token=TOKEN_B) as b:
        yield a, b


def two_context_kubeconfig(path: Path, a: KubeEmulator, b: KubeEmulator) -> Path:
    """One file, as `kubectl config` writes it: current-context is cluster a."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "cluster-a", "cluster": {"server": a.url}},
            {"name": "cluster-b", "cluster": {"server": b.url}},
        ],
        "users": [
            {"name": "user-a", "user": {"token": TOKEN_A}},
            {"name": "user-b", "user": {"token": TOKEN_B}},
        ],
        "contexts": [
            {"name": "a", "context": {"cluster": "cluster-a", "user": "user-a"}},
            {"name": "b", "context": {"cluster": "cluster-b", "user": "user-b"}},
        ],
        "current-context": "a",
    }
    path.write_text(json.dumps(doc))
    return path


def pod_names(api: k8s.ApiClient, namespace: str) -> list[str]:
    pods = k8s.CoreV1Api(api).list_namespaced_pod(namespace, _request_timeout=5)
    return [p.metadata.name for p in pods.items]


def test_context_picks_the_cluster_and_the_client_talks_to_it_alone(
    clusters: tuple[KubeEmulator, KubeEmulator], tmp_path: Path
) -> None:
    a, b = clusters
    a.create_pod(job_pod("only-in-a"))
    b.create_pod(job_pod("only-in-b"))
    kc = two_context_kubeconfig(tmp_path / "config", a, b)

    current = load_credentials(str(kc), {})
    assert current.server == a.url and pod_names(current.client, "default") == ["only-in-a"]
    before = len(a.requests)
    picked = load_credentials(None, {"KUBECONFIG": str(kc)}, context="b")
    assert picked.server == b.url and "context b" in picked.detail
    assert pod_names(picked.client, "default") == ["only-in-b"]
    assert len(a.requests) == before  # cluster a never heard of the second client


def test_servo_run_with_context_and_namespace_watches_only_that_namespace_there(
    clusters: tuple[KubeEmulator, KubeEmulator], backend: RecordingBackend, tmp_path: Path
) -> None:
    a, b = clusters
    kc = two_context_kubeconfig(tmp_path / "config", a, b)
    for emu, name, ns, jobid in (
        (a, "a-job", "team-a", "WRONG-CLUSTER"),
        (b, "b-job", "team-a", "RIGHT"),
        (b, "b-other", "team-b", "WRONG-NAMESPACE"),
    ):
        emu.create_pod(job_pod(name, namespace=ns, jobid=jobid))
        emu.update_pod(ns, name, set_running)
        emu.update_pod(ns, name, set_terminated)
    proc = subprocess.Popen(
        [*SERVO, "run", "--kubeconfig", str(kc), "--context", "b", "--namespace", "team-a"],
        stderr=subprocess.PIPE,
        text=True,
        # The flag wins over the variable: team-b is not watched.
        env=clean_env(
            OPTUNE_URL=backend.url_template(),
            OPTUNE_ACCOUNT="acme",
            POD_NAMESPACES="team-b,default",
            OPTUNE_STATS_PORT="0",
            OPTUNE_STATS_BIND="127.0.0.1",
        ),
    )
    try:
        assert backend.wait_for(lambda: bool(backend.events("MEASUREMENT")), 30)
        # A late pod in the watched namespace arrives through the watch, not only the list.
        b.create_pod(job_pod("b-late", namespace="team-a", jobid="RIGHT-LATE"))
        b.update_pod("team-a", "b-late", set_running)
        b.update_pod("team-a", "b-late", set_terminated)
        assert backend.wait_for(lambda: len(backend.events("MEASUREMENT")) >= 2, 15)
        time.sleep(0.5)  # room for a wrong measurement to arrive, were one coming
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    measured = sorted(m.path.rsplit("/", 2)[-2] for m in backend.events("MEASUREMENT"))
    assert measured == ["RIGHT", "RIGHT-LATE"]
    pod_calls = [r for r in b.requests if r.resource == "pods" and r.verb in ("list", "watch")]
    assert pod_calls and {r.namespace for r in pod_calls} == {"team-a"}
    assert [r for r in a.requests if r.resource == "pods"] == []
    started = next(json.loads(x) for x in stderr.splitlines() if "servo starting" in x)
    assert started["config"]["namespaces"] == ["team-a"]


def test_servo_check_follows_context_and_namespace_flags(
    clusters: tuple[KubeEmulator, KubeEmulator], backend: RecordingBackend, tmp_path: Path
) -> None:
    a, b = clusters
    kc = two_context_kubeconfig(tmp_path / "config", a, b)
    env = {
        "OPTUNE_URL": backend.url_template(),
        "OPTUNE_ACCOUNT": "acme",
        "POD_NAMESPACES": "default",
        "OPTUNE_OUTBOX_DIR": str(tmp_path / "outbox"),
        "OPTUNE_STATS_PORT": "0",
        "OPTUNE_METRICS_PORT": "0",
        "HOME": str(tmp_path),
    }
    opts = CheckOptions(
        kubeconfig=str(kc),
        context="b",
        namespaces=("team-a,team-b",),
        default_sys_root=Path("/nonexistent-rsys"),
    )
    results = {r.name: r for r in run_checks(env, opts)}
    assert exit_code(list(results.values())) == 0
    assert b.url in results["API server"].detail
    assert results["namespace team-a"].status is Status.OK
    assert results["namespace team-b"].status is Status.OK
    assert "namespace default" not in results
    assert a.requests == []


def test_servo_check_with_an_unknown_context_names_the_ones_there_are(
    clusters: tuple[KubeEmulator, KubeEmulator], backend: RecordingBackend, tmp_path: Path
) -> None:
    a, b = clusters
    kc = two_context_kubeconfig(tmp_path / "config", a, b)
    proc = subprocess.run(
        [*SERVO, "check", "--kubeconfig", str(kc), "--context", "prod"],
        capture_output=True,
        text=True,
        env=clean_env(OPTUNE_URL=backend.url_template(), OPTUNE_ACCOUNT="acme"),
        timeout=60,
    )
    assert proc.returncode == 3, proc.stdout
    assert f"--context prod: kubeconfig {kc} has no such context (it has: a, b)" in proc.stdout


def test_servo_run_namespace_flag_problems_name_the_flag(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*SERVO, "run", "-n", "ok-ns", "--namespace", "Bad_NS,*"],
        capture_output=True,
        text=True,
        env=clean_env(POD_NAMESPACES="Also Bad"),
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--namespace 'ok-ns,Bad_NS,*': '*' means all; list nothing beside it" in proc.stderr
    assert "POD_NAMESPACES" not in proc.stderr  # the flag replaced it, so it is not read


def test_webhook_asks_the_version_of_the_context_it_was_given(
    clusters: tuple[KubeEmulator, KubeEmulator],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    a, b = clusters
    kc = two_context_kubeconfig(tmp_path / "config", a, b)
    parser = argparse.ArgumentParser()
    add_webhook_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "webhook",
            "--kubeconfig",
            str(kc),
            "--context",
            "b",
            "-n",
            "team-a",
            "--bind",
            "127.0.0.1",
        ]
    )
    env = {
        "OPTUNE_WEBHOOK_TLS_DIR": str(tmp_path / "tls"),
        "OPTUNE_WEBHOOK_PATCH_CA": "false",
        "OPTUNE_WEBHOOK_PORT": "0",
        "OPTUNE_METRICS_PORT": "0",
        "OPTUNE_METRICS_BIND": "127.0.0.1",
        "HOME": str(tmp_path),
    }
    stop = threading.Event()
    stop.set()  # serve, then stop at once: what matters is whom it asked
    assert run_webhook(args, env, stop) == 0
    assert [r.path for r in b.requests] == ["/version/"]
    assert a.requests == []
    started = next(json.loads(x) for x in capsys.readouterr().err.splitlines() if "starting" in x)
    assert started["config"]["namespaces"] == ["team-a"]
