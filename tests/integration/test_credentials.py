"""Credentials outside a pod against the API emulator: a rotating token file, a token command
run again before its token expires, and no token text in any log line."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from servo.core.errors import KubeError
from servo.kube.client import KubeClient
from servo.kube.credentials import api_client_for, load_credentials
from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.kubectl import FakeKubectl


@pytest.fixture
def emu() -> Iterator[KubeEmulator]:
    with KubeEmulator(token="first-token-0001") as e:
        yield e


def file_env(emu: KubeEmulator, path: Path) -> dict[str, str]:
    return {"OPTUNE_KUBE_TOKEN_FILE": str(path), "OPTUNE_KUBE_SERVER": emu.url}


def test_a_rotated_token_file_is_used_by_the_next_request(
    emu: KubeEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "token"
    path.write_text("first-token-0001\n")
    kube = KubeClient(api_client_for(None, file_env(emu, path)))
    with caplog.at_level(logging.DEBUG):
        assert kube.list_pods("default", limit=10).items == []
        # The kubelet rotates the projected token: the server takes only the new one now.
        emu.token = "second-token-0002"
        path.write_text("second-token-0002\n")
        assert kube.list_pods("default", limit=10).items == []
        emu.token = "third-token-3"  # rotated again, in place, a different length
        path.write_text("third-token-3")
        assert kube.list_pods("default", limit=10).items == []
    for token in ("first-token-0001", "second-token-0002", "third-token-3"):
        assert token not in caplog.text


def test_a_stale_token_file_gives_401(emu: KubeEmulator, tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first-token-0001")
    kube = KubeClient(api_client_for(None, file_env(emu, path)))
    emu.token = "rotated-but-file-not-yet"
    with pytest.raises(KubeError) as info:
        kube.list_pods("default", limit=1)
    assert info.value.status == 401


def test_token_command_is_run_again_before_its_token_expires(
    emu: KubeEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kubectl = FakeKubectl(tmp_path)
    now = int(time.time())
    # A token close to its end (less than 5 minutes left): every request fetches a fresh one.
    first = kubectl.prints(sub="system:serviceaccount:servo:servo", iat=now, exp=now + 120)
    emu.token = first
    env = {"OPTUNE_KUBE_TOKEN_COMMAND": kubectl.command, "OPTUNE_KUBE_SERVER": emu.url}
    with caplog.at_level(logging.DEBUG):
        kube = KubeClient(api_client_for(None, env))
        assert kube.list_pods("default", limit=1).items == []
        assert kubectl.runs >= 1
        runs = kubectl.runs
        # The next token the command prints is the only one the server takes from now on.
        emu.token = kubectl.prints(sub="second", iat=now, exp=now + 180)
        assert kube.list_pods("default", limit=1).items == []
        assert kubectl.runs > runs
    for token in (first, emu.token):
        assert token not in caplog.text and token.split(".")[1] not in caplog.text


def test_a_long_lived_command_token_is_cached(emu: KubeEmulator, tmp_path: Path) -> None:
    kubectl = FakeKubectl(tmp_path)
    now = int(time.time())
    emu.token = kubectl.prints(iat=now, exp=now + 3600)
    creds = load_credentials(
        None, {"OPTUNE_KUBE_TOKEN_COMMAND": kubectl.command, "OPTUNE_KUBE_SERVER": emu.url}
    )
    kube = KubeClient(creds.client)
    for _ in range(3):
        kube.list_pods("default", limit=1)
    assert kubectl.runs == 1


def test_a_token_command_failing_once_its_token_expired_is_a_clear_401(
    emu: KubeEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kubectl = FakeKubectl(tmp_path)
    now = int(time.time())
    emu.token = kubectl.prints(iat=now - 3600, exp=now - 1)  # already expired when printed
    env = {"OPTUNE_KUBE_TOKEN_COMMAND": kubectl.command, "OPTUNE_KUBE_SERVER": emu.url}
    kube = KubeClient(api_client_for(None, env))
    kubectl.fails("error: You must be logged in to the server (Unauthorized)")
    with caplog.at_level(logging.DEBUG), pytest.raises(KubeError) as info:
        kube.list_pods("default", limit=1)
    assert info.value.status == 401
    assert "OPTUNE_KUBE_TOKEN_COMMAND" in info.value.message
    assert "You must be logged in" in info.value.message
    assert emu.token not in caplog.text
