"""Kubernetes credentials outside a pod: source order, token file, token command, clear errors."""

from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from servo.core.errors import ConfigError, KubeError
from servo.kube import credentials
from servo.kube.credentials import NoCredentialsError, load_credentials
from servo.kube.tokens import TokenCommand, TokenFile, jwt_times
from tests.support.kubectl import FakeKubectl, make_jwt

SERVER = "https://10.0.0.1:6443"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def kubectl(tmp_path: Path) -> FakeKubectl:
    return FakeKubectl(tmp_path)


# --- JWT ------------------------------------------------------------------------------------


def test_jwt_times_reads_exp_and_iat_without_checking_the_signature() -> None:
    assert jwt_times(make_jwt({"exp": 2000, "iat": 1000, "sub": "x"})) == (2000.0, 1000.0)
    assert jwt_times(make_jwt({"sub": "x"})) == (None, None)


@pytest.mark.parametrize("claim", ["NaN", "Infinity", "-Infinity", "1e400", "9" * 400, "-5"])
def test_jwt_times_out_of_range_are_none(claim: str) -> None:
    payload = base64.urlsafe_b64encode(f'{{"exp": {claim}, "iat": {claim}}}'.encode()).decode()
    assert jwt_times("e30." + payload.rstrip("=") + ".sig") == (None, None)


@pytest.mark.parametrize(
    "token", ["opaque", "a.b", "a.!!!.c", "a." + "W10" + ".c", "a.bm90IGpzb24.c"]
)
def test_jwt_times_of_anything_else_is_none(token: str) -> None:
    assert jwt_times(token) == (None, None)


# --- the token command ----------------------------------------------------------------------


def test_command_token_is_cached_and_run_again_when_a_tenth_of_its_life_is_left(
    kubectl: FakeKubectl,
) -> None:
    clock = Clock()
    first = kubectl.prints(exp=clock.now + 3600, iat=clock.now)
    runner = TokenCommand(kubectl.command, clock=clock)
    assert runner.token_now() == first and kubectl.runs == 1
    clock.now += 3000  # 600 s left: more than 10% (360 s) and 5 minutes
    assert runner.token_now() == first and kubectl.runs == 1
    second = kubectl.prints(exp=clock.now + 3600, iat=clock.now)
    clock.now += 250  # 350 s left: under 10% of the hour
    assert runner.token_now() == second and kubectl.runs == 2


def test_command_token_is_run_again_when_five_minutes_are_left(kubectl: FakeKubectl) -> None:
    clock = Clock()
    kubectl.prints(exp=clock.now + 1200, iat=clock.now)  # 10% is 2 minutes; 5 minutes wins
    runner = TokenCommand(kubectl.command, clock=clock)
    runner.token_now()
    clock.now += 890
    runner.token_now()
    assert kubectl.runs == 1
    clock.now += 20  # 290 s left
    runner.token_now()
    assert kubectl.runs == 2


def test_a_token_without_exp_is_fetched_again_after_five_minutes(kubectl: FakeKubectl) -> None:
    clock = Clock()
    kubectl.prints_raw("opaque-token")
    runner = TokenCommand(kubectl.command, clock=clock)
    assert runner.token_now() == "opaque-token"
    clock.now += 299
    runner.token_now()
    assert kubectl.runs == 1
    clock.now += 2
    runner.token_now()
    assert kubectl.runs == 2


def test_failing_command_names_the_command_and_its_stderr(kubectl: FakeKubectl) -> None:
    kubectl.fails('error: failed to create token: serviceaccounts "servo" not found')
    with pytest.raises(ConfigError) as info:
        TokenCommand(kubectl.command).token_now()
    [line] = info.value.problems
    assert "OPTUNE_KUBE_TOKEN_COMMAND" in line and "fake_kubectl.py" in line
    assert "exit 3" in line and 'serviceaccounts "servo" not found' in line


def test_missing_program_is_named() -> None:
    with pytest.raises(ConfigError, match="'no-such-kubectl-here' not found"):
        TokenCommand("no-such-kubectl-here create token servo").token_now()


def test_unsplittable_or_empty_command() -> None:
    with pytest.raises(ConfigError, match="cannot split"):
        TokenCommand("kubectl 'unclosed")
    with pytest.raises(ConfigError, match="empty"):
        TokenCommand("   ")


def test_refresh_failure_keeps_a_valid_token_then_fails_clearly_once_expired(
    kubectl: FakeKubectl, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    token = kubectl.prints(exp=clock.now + 600, iat=clock.now)
    runner = TokenCommand(kubectl.command, clock=clock)
    runner.token_now()
    kubectl.fails("Unable to connect to the server")
    clock.now += 400  # due (200 s left), the command fails, the token still works
    with caplog.at_level(logging.DEBUG):
        assert runner.token_now() == token
        assert runner.token_now() == token and kubectl.runs == 2  # not retried at once
        clock.now += 300  # expired
        config: dict[str, Any] = {}

        class Cfg:
            api_key = config

        with pytest.raises(KubeError) as info:
            runner.refresh_hook(Cfg())
    assert info.value.status == 401 and "Unable to connect" in info.value.message
    assert "token command failed" in caplog.text
    assert token not in caplog.text and token.split(".")[1] not in caplog.text


def test_printed_garbage_is_refused(kubectl: FakeKubectl) -> None:
    kubectl.prints_raw("two tokens")
    with pytest.raises(ConfigError, match="no single token"):
        TokenCommand(kubectl.command).token_now()


# --- the token file -------------------------------------------------------------------------


def test_token_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first\n")
    reader = TokenFile(str(path))
    assert reader.token_now() == "first"

    class Cfg:
        api_key: dict[str, str] = {}

    cfg = Cfg()
    reader.refresh_hook(cfg)
    assert cfg.api_key == {"authorization": "Bearer first"}
    path.write_text("second-longer\n")
    reader.refresh_hook(cfg)
    assert cfg.api_key == {"authorization": "Bearer second-longer"}


def test_token_file_is_read_again_every_minute_even_unchanged_looking(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "token"
    path.write_text("aaaa")
    reader = TokenFile(str(path), clock=clock)
    reader.token_now()
    stat = path.stat()
    path.write_text("bbbb")  # same size; force the same mtime as a coarse clock would
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    class Cfg:
        api_key: dict[str, str] = {}

    cfg = Cfg()
    reader.refresh_hook(cfg)
    assert cfg.api_key["authorization"] == "Bearer aaaa"
    clock.now += 61
    reader.refresh_hook(cfg)
    assert cfg.api_key["authorization"] == "Bearer bbbb"


def test_token_file_gone_mid_rotation_keeps_the_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "token"
    path.write_text("s3cret-file-token")
    reader = TokenFile(str(path))
    reader.token_now()
    path.unlink()

    class Cfg:
        api_key: dict[str, str] = {}

    cfg = Cfg()
    with caplog.at_level(logging.DEBUG):
        reader.refresh_hook(cfg)
    assert cfg.api_key["authorization"] == "Bearer s3cret-file-token"
    assert "token file unreadable" in caplog.text and "s3cret" not in caplog.text


# --- choosing the source, and errors --------------------------------------------------------


def env_file(tmp_path: Path, token: str = "tok", **extra: str) -> dict[str, str]:
    path = tmp_path / "token"
    path.write_text(token)
    return {"OPTUNE_KUBE_TOKEN_FILE": str(path), "OPTUNE_KUBE_SERVER": SERVER, **extra}


def test_token_file_source(tmp_path: Path) -> None:
    creds = load_credentials(None, env_file(tmp_path, OPTUNE_KUBE_INSECURE="true"))
    assert creds.source == "token-file" and creds.server == SERVER
    assert str(tmp_path / "token") in creds.detail and SERVER in creds.detail
    cfg = creds.client.configuration
    assert cfg.verify_ssl is False
    assert cfg.get_api_key_with_prefix("authorization") == "Bearer tok"


def test_token_file_with_a_ca_file(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    creds = load_credentials(None, env_file(tmp_path, OPTUNE_KUBE_CA_FILE=str(ca)))
    assert creds.client.configuration.ssl_ca_cert == str(ca)
    assert creds.client.configuration.verify_ssl is True


def test_token_command_source(kubectl: FakeKubectl) -> None:
    token = kubectl.prints(exp=2_000_000_000 * 2)
    env = {"OPTUNE_KUBE_TOKEN_COMMAND": kubectl.command, "OPTUNE_KUBE_SERVER": SERVER}
    creds = load_credentials(None, env)
    assert creds.source == "token-command" and "fake_kubectl.py" in creds.detail
    assert creds.client.configuration.get_api_key_with_prefix("authorization") == f"Bearer {token}"
    assert token not in creds.detail


def test_failing_token_command_at_start_is_a_config_error(kubectl: FakeKubectl) -> None:
    kubectl.fails("forbidden")
    env = {"OPTUNE_KUBE_TOKEN_COMMAND": kubectl.command, "OPTUNE_KUBE_SERVER": SERVER}
    with pytest.raises(ConfigError, match="forbidden"):
        load_credentials(None, env)


@pytest.mark.parametrize(
    ("extra", "drop", "expected"),
    [
        ({}, "OPTUNE_KUBE_SERVER", "needs OPTUNE_KUBE_SERVER"),
        ({"OPTUNE_KUBE_SERVER": "10.0.0.1:6443"}, None, "expected https://host"),
        ({"OPTUNE_KUBE_CA_FILE": "/nonexistent/ca"}, None, "no such file"),
        ({"OPTUNE_KUBE_INSECURE": "maybe"}, None, "expected true or false"),
        ({"OPTUNE_KUBE_TOKEN_COMMAND": "kubectl create token x"}, None, "both set"),
    ],
)
def test_token_settings_problems_are_one_clear_line(
    tmp_path: Path, extra: dict[str, str], drop: str | None, expected: str
) -> None:
    env = {**env_file(tmp_path), **extra}
    if drop:
        env.pop(drop)
    with pytest.raises(ConfigError) as info:
        load_credentials(None, env)
    [line] = info.value.problems
    assert expected in line


def test_ca_file_and_insecure_together_are_refused(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    env = env_file(tmp_path, OPTUNE_KUBE_CA_FILE=str(ca), OPTUNE_KUBE_INSECURE="true")
    with pytest.raises(ConfigError, match="use one"):
        load_credentials(None, env)


def test_empty_or_missing_token_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="empty"):
        load_credentials(None, env_file(tmp_path, token="\n"))
    env = {"OPTUNE_KUBE_TOKEN_FILE": str(tmp_path / "nope"), "OPTUNE_KUBE_SERVER": SERVER}
    with pytest.raises(ConfigError, match="OPTUNE_KUBE_TOKEN_FILE"):
        load_credentials(None, env)


def test_server_without_a_token_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neither OPTUNE_KUBE_TOKEN_FILE"):
        load_credentials(None, {"OPTUNE_KUBE_SERVER": SERVER})


def test_kubeconfig_flag_and_token_env_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--kubeconfig and OPTUNE_KUBE_TOKEN_FILE"):
        load_credentials(str(tmp_path / "kc"), env_file(tmp_path))


def test_a_named_kubeconfig_that_is_not_there_is_named(tmp_path: Path) -> None:
    nope = str(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError) as info:
        load_credentials(None, {"KUBECONFIG": nope})
    assert info.value.problems == [f"KUBECONFIG={nope!r}: no such file"]
    assert not isinstance(info.value, NoCredentialsError)
    with pytest.raises(ConfigError) as info:
        load_credentials(nope, {})
    assert info.value.problems == [f"--kubeconfig {nope}: no such file"]


def test_nothing_at_all_is_no_credentials_saying_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(NoCredentialsError) as info:
        load_credentials(None, {"HOME": str(tmp_path)})
    [line] = info.value.problems
    assert line.startswith("no Kubernetes credentials: not in a pod and no kubeconfig")
    assert f"KUBECONFIG, {tmp_path}/.kube/config" in line and "OPTUNE_KUBE_TOKEN_FILE" in line
    with pytest.raises(NoCredentialsError, match="--context b: no kubeconfig to take it from"):
        load_credentials(None, {"HOME": str(tmp_path)}, context="b")


def two_contexts(path: Path, current: str | None = "a") -> Path:
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": n, "cluster": {"server": f"http://127.0.0.1:{port}"}}
            for n, port in (("a", 1), ("b", 2))
        ],
        "users": [{"name": "u", "user": {"token": "kc-token"}}],
        "contexts": [{"name": n, "context": {"cluster": n, "user": "u"}} for n in ("a", "b")],
    }
    if current is not None:
        doc["current-context"] = current
    path.write_text(json.dumps(doc))
    return path


def test_context_picks_one_of_the_kubeconfig_and_says_so(tmp_path: Path) -> None:
    kc = two_contexts(tmp_path / "kc")
    assert load_credentials(str(kc), {}).server == "http://127.0.0.1:1"
    picked = load_credentials(str(kc), {}, context="b")
    assert picked.server == "http://127.0.0.1:2" and "context b" in picked.detail
    # --context alone takes KUBECONFIG's file, then ~/.kube/config, as kubectl does.
    assert load_credentials(None, {"KUBECONFIG": str(kc)}, context="b").server.endswith(":2")
    (tmp_path / ".kube").mkdir()
    two_contexts(tmp_path / ".kube" / "config")
    assert load_credentials(None, {"HOME": str(tmp_path)}, context="b").server.endswith(":2")


def test_an_unknown_context_is_named_with_the_ones_there_are(tmp_path: Path) -> None:
    kc = two_contexts(tmp_path / "kc")
    with pytest.raises(ConfigError) as info:
        load_credentials(str(kc), {}, context="prod")
    assert info.value.problems == [
        f"--context prod: kubeconfig {kc} has no such context (it has: a, b)"
    ]


def test_no_current_context_asks_for_one(tmp_path: Path) -> None:
    kc = two_contexts(tmp_path / "kc", current=None)
    with pytest.raises(ConfigError, match=r"no current-context: pass --context \(one of: a, b\)"):
        load_credentials(str(kc), {})


def test_a_kubeconfig_list_is_merged_as_kubectl_merges_it(tmp_path: Path) -> None:
    kc = two_contexts(tmp_path / "kc")
    listed = f"{tmp_path / 'missing'}:{kc}"
    assert load_credentials(None, {"KUBECONFIG": listed}, context="b").server.endswith(":2")


def test_context_and_token_env_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--context and OPTUNE_KUBE_TOKEN_FILE"):
        load_credentials(None, env_file(tmp_path), context="a")


def test_kubeconfig_source(tmp_path: Path) -> None:
    kc = tmp_path / "kc"
    kc.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "kc-token"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    creds = credentials.api_client_for(str(kc), {})
    assert creds.configuration.host == "http://127.0.0.1:1"
    loaded = load_credentials(None, {"KUBECONFIG": str(kc)})
    assert loaded.source == "kubeconfig" and str(kc) in loaded.detail


def test_in_cluster_service_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setattr(credentials, "SERVICE_ACCOUNT_DIR", tmp_path)
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    creds = load_credentials(None, env)
    assert creds.source == "in-cluster" and creds.server == "https://10.96.0.1:443"
    assert creds.client.configuration.get_api_key_with_prefix("BearerToken") == "bearer sa-token"
    # A token source wins over the service account.
    assert load_credentials(None, {**env, **env_file(tmp_path)}).source == "token-file"
    # ...and KUBECONFIG set in the pod, as kubectl and controller-runtime read it.
    kc = two_contexts(tmp_path / "kc")
    assert load_credentials(None, {**env, "KUBECONFIG": str(kc)}).source == "kubeconfig"
    # ~/.kube/config does not: in a pod the service account comes first.
    (tmp_path / ".kube").mkdir()
    two_contexts(tmp_path / ".kube" / "config")
    assert load_credentials(None, {**env, "HOME": str(tmp_path)}).source == "in-cluster"
