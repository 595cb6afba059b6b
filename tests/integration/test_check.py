"""servo check against the API emulator and a recording backend over real HTTP: the process,
its exit status, and the fix it names for each problem."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import servo.__main__ as servo_main
from servo.check.checks import CheckOptions, CheckResult, Status, exit_code, run_checks
from tests.support.fakes.backend import RecordingBackend
from tests.support.fakes.kubeapi import KubeEmulator

KUBE_TOKEN = "kube-t0ken-for-check"
BACKEND_TOKEN = "backend-t0ken-for-check"


def check_command() -> list[str]:
    """`python -m servo check` once the subcommand is wired into servo, else its own module."""
    wired = "add_check_parser" in Path(servo_main.__file__).read_text()
    return [sys.executable, "-m", "servo" if wired else "servo.check.cli"]


@pytest.fixture
def emu() -> Iterator[KubeEmulator]:
    with KubeEmulator(token=KUBE_TOKEN) as e:
        yield e


@pytest.fixture
def kubeconfig(emu: KubeEmulator, tmp_path: Path) -> Path:
    return emu.write_kubeconfig(tmp_path / "kubeconfig")


def servo_env(backend: RecordingBackend, tmp_path: Path, **extra: str) -> dict[str, str]:
    """What `servo run` would read: the backend, namespaces, a private outbox, free ports."""
    return {
        "OPTUNE_URL": backend.url_template(),
        "OPTUNE_ACCOUNT": "acme",
        "OPTUNE_AUTH_TOKEN": BACKEND_TOKEN,
        "POD_NAMESPACES": "default,batch",
        "OPTUNE_OUTBOX_DIR": str(tmp_path / "outbox"),
        "OPTUNE_STATS_PORT": "0",
        "OPTUNE_METRICS_PORT": "0",
        "HOME": str(tmp_path),
        **extra,
    }


def process_env(env: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPTUNE_", "POD_NAMESP"))}
    for name in ("KUBERNETES_SERVICE_HOST", "KUBECONFIG"):
        base.pop(name, None)
    return {**base, **env}


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*check_command(), *args],
        capture_output=True,
        text=True,
        env=process_env(env),
        timeout=60,
    )


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def checks(env: dict[str, str], kubeconfig: Path | None, **opts: object) -> list[CheckResult]:
    options = CheckOptions(
        kubeconfig=str(kubeconfig) if kubeconfig else None,
        default_sys_root=Path("/nonexistent-rsys"),
        **opts,  # type: ignore[arg-type]
    )
    return run_checks(env, options)


# --- the process ----------------------------------------------------------------------------


def test_everything_ok_exits_0_and_says_hello_with_an_id_of_its_own(
    emu: KubeEmulator, kubeconfig: Path, backend: RecordingBackend, tmp_path: Path
) -> None:
    started = time.monotonic()
    proc = run_cli(["--kubeconfig", str(kubeconfig), "check"], servo_env(backend, tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for name in (
        "configuration",
        "kube credentials",
        "API server",
        "namespace default",
        "RBAC default",
        "namespace batch",
        "RBAC batch",
        "backend",
        "outbox",
        "stats port",
        "metrics port",
        "tokenreviews",
    ):
        assert any(line.startswith("OK") and f" {name} " in line for line in lines), name
    assert any(line.startswith("SKIP") and "cgroup layout" in line for line in lines)
    assert "v1.30.0-emu" in proc.stdout
    assert lines[-1].startswith("servo check: everything the servo needs works")
    [hello] = backend.events("HELLO")
    assert hello.event_id is not None and hello.event_id.startswith("check-")
    assert hello.event_id.endswith(":HELLO")
    assert hello.param == {"account": "acme", "reason": "check"}
    assert hello.headers["Authorization"] == f"Bearer {BACKEND_TOKEN}"
    assert "/accounts/acme/applications/_global_/servo" in hello.path
    # RBAC was asked, not guessed: one review per verb and namespace, and tokenreviews.
    reviews = [r for r in emu.requests if r.resource == "selfsubjectaccessreviews"]
    assert len(reviews) == 9
    for token in (KUBE_TOKEN, BACKEND_TOKEN):
        assert token not in proc.stdout + proc.stderr
    assert time.monotonic() - started < 20


def test_json_format(kubeconfig: Path, backend: RecordingBackend, tmp_path: Path) -> None:
    proc = run_cli(
        ["--kubeconfig", str(kubeconfig), "check", "--format", "json"], servo_env(backend, tmp_path)
    )
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and doc["ok"] is True and doc["exit_code"] == 0
    assert {c["status"] for c in doc["checks"]} <= {"ok", "skip"}


def test_a_denied_verb_exits_1_naming_the_verb_and_namespace(
    emu: KubeEmulator, kubeconfig: Path, backend: RecordingBackend, tmp_path: Path
) -> None:
    emu.deny("watch", "default")
    proc = run_cli(["--kubeconfig", str(kubeconfig), "check"], servo_env(backend, tmp_path))
    assert proc.returncode == 1, proc.stdout
    [line] = [ln for ln in proc.stdout.splitlines() if ln.startswith("FAIL")]
    assert "RBAC default" in line and "watch" in line and "default" in line
    assert "get" not in line.split("not allowed:")[1]
    assert "example/svc-role.yaml" in proc.stdout
    assert "RBAC batch" in proc.stdout and "servo will not work" in proc.stdout


def test_bad_config_exits_2_naming_every_problem(backend: RecordingBackend, tmp_path: Path) -> None:
    env = servo_env(
        backend, tmp_path, OPTUNE_URL="ftp://x/{nope}", POD_NAMESPACES=",", OPTUNE_DEBUG="x"
    )
    proc = run_cli(["--kubeconfig", str(tmp_path / "none.yaml"), "check"], env)
    assert proc.returncode == 2, proc.stdout
    for name in ("OPTUNE_URL", "POD_NAMESPACES", "OPTUNE_DEBUG"):
        assert name in proc.stdout
    assert "configuration error" in proc.stdout
    assert backend.received == []


def test_a_kubeconfig_that_is_not_there_exits_3_naming_it(
    backend: RecordingBackend, tmp_path: Path
) -> None:
    nope = tmp_path / "nope.yaml"
    proc = run_cli(["--kubeconfig", str(nope), "check"], servo_env(backend, tmp_path))
    assert proc.returncode == 3, proc.stdout
    assert f"cannot use them: --kubeconfig {nope}: no such file" in proc.stdout
    assert "configuration error" not in proc.stdout
    assert proc.stdout.splitlines()[-1].startswith(
        "servo check: no usable Kubernetes credentials: fix it first"
    )


def test_no_credentials_at_all_exits_3_saying_what_is_missing_not_configuration_error(
    backend: RecordingBackend, tmp_path: Path
) -> None:
    proc = run_cli(["check"], servo_env(backend, tmp_path))
    assert proc.returncode == 3, proc.stdout
    lines = proc.stdout.splitlines()
    [creds] = [line for line in lines if " kube credentials " in line]
    assert (
        creds.startswith("FAIL")
        and (
            "no Kubernetes credentials: not in a pod and no kubeconfig "
            f"(--kubeconfig, KUBECONFIG, {tmp_path}/.kube/config)"
        )
        in creds
    )
    assert any(
        line.strip().startswith("fix: outside a cluster: pass --kubeconfig") for line in lines
    )
    assert [line for line in lines if line.startswith("OK") and " configuration " in line]
    assert "configuration error" not in proc.stdout
    assert lines[-1].startswith("servo check: no Kubernetes credentials: fix it first")
    # The checks that need no cluster still ran.
    assert backend.events("HELLO")


def test_cgroup_layout_on_a_fixture_node(
    kubeconfig: Path, backend: RecordingBackend, tmp_path: Path
) -> None:
    cg = tmp_path / "rsys" / "fs" / "cgroup"
    pod = "kubepods-besteffort-pod1111aaaa_2222_3333_4444_555566667777.slice"
    (cg / "kubepods.slice" / "kubepods-besteffort.slice" / pod).mkdir(parents=True)
    (cg / "cgroup.controllers").write_text("cpu memory\n")
    proc = run_cli(
        [
            "--kubeconfig",
            str(kubeconfig),
            "check",
            "--format",
            "json",
            "--sys-root",
            str(tmp_path / "rsys"),
            "--pod-uid",
            "1111aaaa-2222-3333-4444-555566667777",
        ],
        servo_env(backend, tmp_path),
    )
    assert proc.returncode == 0, proc.stdout
    [cgroup] = [c for c in json.loads(proc.stdout)["checks"] if c["name"] == "cgroup layout"]
    assert cgroup["status"] == "ok" and "cgroup v2, systemd driver" in cgroup["detail"]
    assert "1 pod cgroups" in cgroup["detail"]


# --- in process (same checks, real HTTP, faster) --------------------------------------------


def test_wrong_kube_token_exits_3_with_401_explained(
    emu: KubeEmulator, backend: RecordingBackend, tmp_path: Path
) -> None:
    kubeconfig = emu.write_kubeconfig(tmp_path / "kc", token="not-the-right-one")
    results = checks(servo_env(backend, tmp_path), kubeconfig)
    api = by_name(results)["API server"]
    assert api.status is Status.FAIL and "401 Unauthorized" in api.detail
    assert "kubeconfig" in api.fix
    assert by_name(results)["namespace default"].status is Status.SKIP
    assert exit_code(results) == 3  # refused credentials: a credentials problem


def test_backend_401_names_the_auth_token(
    kubeconfig: Path, backend: RecordingBackend, tmp_path: Path
) -> None:
    backend.fail_next(1, 401)
    results = checks(servo_env(backend, tmp_path), kubeconfig)
    result = by_name(results)["backend"]
    assert result.status is Status.FAIL and "401" in result.detail
    assert "OPTUNE_AUTH_TOKEN" in result.fix
    assert exit_code(results) == 1
    assert len(backend.received) == 1  # a 401 is not retried


def test_backend_down_names_the_url_and_is_quick(kubeconfig: Path, tmp_path: Path) -> None:
    dead = RecordingBackend().start()
    dead.stop()
    started = time.monotonic()
    results = checks(servo_env(dead, tmp_path), kubeconfig)
    result = by_name(results)["backend"]
    assert result.status is Status.FAIL
    assert f"{dead.url}/accounts/acme/applications/_global_/servo" in result.detail
    assert "OPTUNE_URL" in result.fix
    assert exit_code(results) == 1
    assert time.monotonic() - started < 10


def test_backend_5xx_is_a_failure_after_a_short_deadline(
    kubeconfig: Path, backend: RecordingBackend, tmp_path: Path
) -> None:
    backend.fail_next(50, 503)
    started = time.monotonic()
    result = by_name(checks(servo_env(backend, tmp_path), kubeconfig))["backend"]
    assert result.status is Status.FAIL and "503" in result.detail
    assert time.monotonic() - started < 10


def test_api_server_down_is_named_and_quick(backend: RecordingBackend, tmp_path: Path) -> None:
    with KubeEmulator() as gone:
        kubeconfig = gone.write_kubeconfig(tmp_path / "kc")
    started = time.monotonic()
    results = checks(servo_env(backend, tmp_path), kubeconfig)
    api = by_name(results)["API server"]
    assert api.status is Status.FAIL and "cannot reach the API server" in api.detail
    assert exit_code(results) == 4 and time.monotonic() - started < 10


def test_cluster_wide_lists_and_reviews_without_a_namespace(
    emu: KubeEmulator, kubeconfig: Path, backend: RecordingBackend, tmp_path: Path
) -> None:
    emu.deny("patch", None)
    results = checks(servo_env(backend, tmp_path, POD_NAMESPACES="*"), kubeconfig)
    named = by_name(results)
    assert named["namespace cluster-wide"].status is Status.OK
    rbac = named["RBAC cluster-wide"]
    assert rbac.status is Status.FAIL and "patch" in rbac.detail
    assert "example/svc-clusterrole.yaml" in rbac.fix


def test_list_forbidden_fails_the_namespace_with_the_role_fix(
    emu: KubeEmulator, kubeconfig: Path, backend: RecordingBackend, tmp_path: Path
) -> None:
    emu.deny("list", "batch")
    named = by_name(checks(servo_env(backend, tmp_path), kubeconfig))
    assert named["namespace batch"].status is Status.FAIL
    assert "403" in named["namespace batch"].detail
    assert "example/svc-role.yaml" in named["namespace batch"].fix
    assert "list" in named["RBAC batch"].detail


def test_leader_election_needs_lease_verbs(
    emu: KubeEmulator, kubeconfig: Path, backend: RecordingBackend, tmp_path: Path
) -> None:
    env = servo_env(backend, tmp_path, OPTUNE_LEADER_ELECTION="true", OPTUNE_LEADER_NAMESPACE="ops")
    assert by_name(checks(env, kubeconfig))["leases ops"].status is Status.OK
    emu.deny("update", "ops", resource="leases")
    leases = by_name(checks(env, kubeconfig))["leases ops"]
    assert leases.status is Status.FAIL and "update" in leases.detail
    assert "leases.coordination.k8s.io" in leases.fix and "ops" in leases.fix
    without = by_name(checks(servo_env(backend, tmp_path), kubeconfig))
    assert not any(name.startswith("leases") for name in without)


def test_token_reviews_denied_is_a_warning_naming_the_example(
    emu: KubeEmulator, kubeconfig: Path, backend: RecordingBackend, tmp_path: Path
) -> None:
    emu.deny("create", None, resource="tokenreviews")
    results = checks(servo_env(backend, tmp_path), kubeconfig)
    found = by_name(results)["tokenreviews"]
    assert found.status is Status.WARN and "503" in found.detail
    assert "example/svc-tokenreview.yaml" in found.fix
    assert exit_code(results) == 0


def test_review_forbidden_is_a_warning_only(
    emu: KubeEmulator, kubeconfig: Path, backend: RecordingBackend, tmp_path: Path
) -> None:
    emu.deny("create", None, resource="selfsubjectaccessreviews")
    results = checks(servo_env(backend, tmp_path), kubeconfig)
    assert by_name(results)["RBAC default"].status is Status.WARN
    assert exit_code(results) == 0


def test_token_file_credentials(
    emu: KubeEmulator, backend: RecordingBackend, tmp_path: Path
) -> None:
    (tmp_path / "token").write_text(KUBE_TOKEN)
    env = servo_env(
        backend,
        tmp_path,
        OPTUNE_KUBE_TOKEN_FILE=str(tmp_path / "token"),
        OPTUNE_KUBE_SERVER=emu.url,
    )
    results = checks(env, None)
    assert "token file" in by_name(results)["kube credentials"].detail
    assert exit_code(results) == 0, results
    (tmp_path / "token").write_text("expired-token")
    api = by_name(checks(env, None))["API server"]
    assert api.status is Status.FAIL and "OPTUNE_KUBE_TOKEN_FILE" in api.fix


def test_outbox_not_writable_fails(
    kubeconfig: Path, backend: RecordingBackend, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")
    env = servo_env(backend, tmp_path, OPTUNE_OUTBOX_DIR=str(tmp_path / "a-file" / "outbox"))
    results = checks(env, kubeconfig)
    assert by_name(results)["outbox"].status is Status.FAIL and exit_code(results) == 1


def test_backend_token_from_a_file_is_sent_and_named_when_refused(
    kubeconfig: Path, backend: RecordingBackend, tmp_path: Path
) -> None:
    token = tmp_path / "backend-token"
    token.write_text("from-the-secret-volume\n")
    env = servo_env(backend, tmp_path, OPTUNE_AUTH_TOKEN_FILE=str(token))
    del env["OPTUNE_AUTH_TOKEN"]
    assert by_name(checks(env, kubeconfig))["backend"].status is Status.OK
    assert backend.received[0].headers["Authorization"] == "Bearer from-the-secret-volume"
    backend.fail_next(1, 401)
    result = by_name(checks(env, kubeconfig))["backend"]
    assert result.status is Status.FAIL and "refused the token" in result.detail
    assert f"OPTUNE_AUTH_TOKEN_FILE ({token})" in result.fix


def test_an_empty_backend_token_file_is_a_configuration_error_naming_it(
    kubeconfig: Path, backend: RecordingBackend, tmp_path: Path
) -> None:
    token = tmp_path / "backend-token"
    token.write_text("\n")
    env = servo_env(backend, tmp_path, OPTUNE_AUTH_TOKEN_FILE=str(token))
    del env["OPTUNE_AUTH_TOKEN"]
    results = checks(env, kubeconfig)
    config = by_name(results)["configuration"]
    assert config.notes == (f"OPTUNE_AUTH_TOKEN_FILE={str(token)!r}: it is empty",)
    assert exit_code(results) == 2
