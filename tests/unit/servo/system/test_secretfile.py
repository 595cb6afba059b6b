"""Secrets from files: OPTUNE_AUTH_TOKEN_FILE read at start, checked, and re-read when the Secret
volume is updated (the kubelet's atomic ..data swap), with the last good token kept on failure."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from servo.core.errors import ConfigError
from servo.system.config import load_config
from servo.system.secretfile import MAX_SECRET_BYTES, SecretFile
from tests.support.secretvolume import SecretVolume

GOOD = {"OPTUNE_URL": "http://127.0.0.1:9/{acct}/{app_id}", "OPTUNE_ACCOUNT": "acme"}
VAR = "OPTUNE_AUTH_TOKEN_FILE"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config({**GOOD, **env})
    return info.value.problems


@pytest.fixture
def volume(tmp_path: Path) -> SecretVolume:
    v = SecretVolume(tmp_path / "servo-auth")
    v.write("first-token\n")
    return v


def test_the_token_file_is_read_at_load_without_its_trailing_newline(
    volume: SecretVolume,
) -> None:
    cfg = load_config({**GOOD, VAR: str(volume.path)})
    assert cfg.report.auth_token is None and cfg.report.has_token
    assert cfg.report.bearer_token() == "first-token"
    masked = cfg.masked()
    assert masked["auth_token"] == "***" and masked["auth_token_file"] == str(volume.path)
    assert "first-token" not in repr(masked) + repr(cfg)


def test_token_and_token_file_together_are_one_problem_naming_both(volume: SecretVolume) -> None:
    found = problems({"OPTUNE_AUTH_TOKEN": "x", VAR: str(volume.path)})
    assert found == ["OPTUNE_AUTH_TOKEN and OPTUNE_AUTH_TOKEN_FILE are both set: use one"]


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "it is empty"),
        (b" \n\n", "it is empty"),
        (b"a\nb\n", "control or non-ASCII"),
        (b"tok\x00en", "control or non-ASCII"),
        (b"tok\ten", "control or non-ASCII"),
        ("t\u00f6ken".encode(), "non-ASCII bytes"),
        (b"x" * (MAX_SECRET_BYTES + 1), f"larger than {MAX_SECRET_BYTES} bytes"),
    ],
)
def test_a_bad_token_file_is_a_config_error_naming_it(
    tmp_path: Path, content: bytes, why: str
) -> None:
    path = tmp_path / "token"
    path.write_bytes(content)
    [problem] = problems({VAR: str(path)})
    assert problem.startswith(f"{VAR}={str(path)!r}: ") and why in problem


def test_a_missing_or_unreadable_token_file_is_a_config_error(tmp_path: Path) -> None:
    [missing] = problems({VAR: str(tmp_path / "nope")})
    assert missing == f"{VAR}={str(tmp_path / 'nope')!r}: No such file or directory"
    [directory] = problems({VAR: str(tmp_path)})
    assert (
        directory
        == f"{VAR}={str(tmp_path)!r}: it is a directory; expected a file holding one token"
    )
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    [pipe] = problems({VAR: str(fifo)})  # refused at once, not waited on
    assert pipe.endswith("it is not a regular file; expected a file holding one token")


def test_a_token_with_a_control_character_in_the_environment_is_refused_unshown() -> None:
    [problem] = problems({"OPTUNE_AUTH_TOKEN": "s3cret\r\nX-Evil: 1"})
    assert problem.startswith("OPTUNE_AUTH_TOKEN: ") and "s3cret" not in problem


def test_an_atomic_swap_is_seen_at_the_next_check_and_not_before(volume: SecretVolume) -> None:
    clock = Clock()
    secret = SecretFile(str(volume.path), variable=VAR, clock=clock, check_interval_s=1.0)
    volume.write("second-token\n")
    assert secret.current() == "first-token"  # within the check interval: no stat at all
    clock.now += 1.0
    assert secret.current() == "second-token"
    assert secret.reads == 2


def test_an_unchanged_file_is_not_read_again_until_the_reread_period(volume: SecretVolume) -> None:
    clock = Clock()
    secret = SecretFile(str(volume.path), variable=VAR, clock=clock, reread_s=60.0)
    for _ in range(30):
        clock.now += 1.5
        assert secret.current() == "first-token"
    assert secret.reads == 1
    clock.now += 30
    secret.current()
    assert secret.reads == 2


def test_a_rewrite_in_place_with_the_same_stat_is_caught_by_the_reread(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("aaaa")
    st = path.stat()
    clock = Clock()
    secret = SecretFile(str(path), variable=VAR, clock=clock, reread_s=60.0)
    path.write_text("bbbb")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same inode, size and mtime
    clock.now += 2
    assert secret.current() == "aaaa"
    clock.now += 60
    assert secret.current() == "bbbb"


def test_a_failed_reread_keeps_the_last_token_and_warns_once(
    volume: SecretVolume, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    secret = SecretFile(str(volume.path), variable=VAR, clock=clock)
    volume.remove_data()
    with caplog.at_level(logging.INFO, logger="servo.system.secretfile"):
        for _ in range(5):
            clock.now += 2
            assert secret.current() == "first-token"
        volume.write("")  # an empty file mid-rotation is no token either
        clock.now += 2
        assert secret.current() == "first-token"
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and warnings[0].getMessage().startswith("secret file unread")
        assert warnings[0].__dict__["variable"] == VAR
        volume.write("third-token")
        clock.now += 2
        assert secret.current() == "third-token"
        assert [r.getMessage() for r in caplog.records][-1] == "secret file read again"
        volume.remove_data()
        clock.now += 2
        assert secret.current() == "third-token"
    # Working again, then failing again: a new warning, since the state changed.
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2
    assert "first-token" not in caplog.text and "third-token" not in caplog.text
