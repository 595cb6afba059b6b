"""The backend token from a Secret volume over real HTTP: each POST carries the file's current
token, a rotation reaches the next POST after the check interval, and a broken file keeps the
last good one (the webhook's one-try sender shares the same file through the config)."""

from __future__ import annotations

from pathlib import Path

from tenacity import wait_none

from servo.core.models import Event
from servo.report.reporter import Reporter
from servo.system.config import load_config
from servo.system.config_sections import ReportConfig
from servo.system.secretfile import SecretFile
from tests.support.fakes.backend import RecordingBackend
from tests.support.secretvolume import SecretVolume


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def event(n: int) -> Event:
    return Event(id=f"uid-{n}:HELLO", event="HELLO", app_id="_global_", param={"account": "a"})


def test_each_post_carries_the_current_token_of_the_file(
    backend: RecordingBackend, tmp_path: Path
) -> None:
    volume = SecretVolume(tmp_path / "auth")
    volume.write("token-one\n")
    clock = Clock()
    secret = SecretFile(str(volume.path), variable="OPTUNE_AUTH_TOKEN_FILE", clock=clock)
    cfg = ReportConfig(
        url_template=backend.url_template(),
        account="acme",
        auth_token=None,
        auth_token_file=secret,
        timeout_s=2.0,
        deadline_s=5.0,
    )
    reporter = Reporter(cfg, wait=wait_none())
    reporter.send(event(1))
    reporter.send(event(2))  # the prepared request of this URL is reused: the header is not
    volume.write("token-two\n")
    clock.now += 1.0
    reporter.send(event(3))
    volume.remove_data()
    clock.now += 1.0
    reporter.send(event(4))
    got = [r.headers["Authorization"] for r in backend.received]
    assert got == ["Bearer token-one", "Bearer token-one", "Bearer token-two", "Bearer token-two"]


def test_the_loaded_config_sends_the_token_from_the_file(
    backend: RecordingBackend, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("from-a-file\n")
    cfg = load_config(
        {
            "OPTUNE_URL": backend.url_template(),
            "OPTUNE_ACCOUNT": "acme",
            "OPTUNE_AUTH_TOKEN_FILE": str(token),
        }
    )
    Reporter(cfg.report, wait=wait_none()).send(event(1))
    assert backend.received[0].headers["Authorization"] == "Bearer from-a-file"
