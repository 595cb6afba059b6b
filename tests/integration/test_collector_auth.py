"""Who may write to the collector, over real HTTP and as a process: tokens bound to an account
(or to any), the token file format, and the bind rule (without tokens: loopback only, unless it
is started declared open)."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from servo.collector.server import Collector
from servo.collector.settings import TokenGrant, parse_tokens
from servo.store.events import EventStore
from tests.support.collectorkit import SERVO, clean_env, measurement, post, run_servo

ACME_PATH = "/accounts/acme/applications/{app}/servo"
OTHER_PATH = "/accounts/other/applications/{app}/servo"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    with EventStore(tmp_path / "servo.db") as s:
        yield s


@pytest.fixture
def collector(store: EventStore) -> Iterator[Collector]:
    grants = [TokenGrant("acme-token", "acme"), TokenGrant("any-token")]
    with Collector(store, grants, port=0) as c:
        yield c


def test_a_token_bound_to_an_account_writes_there_only(
    collector: Collector, store: EventStore
) -> None:
    assert post(collector, measurement("u1"), token="acme-token", path=ACME_PATH).status_code == 200
    r = post(collector, measurement("u2"), token="acme-token", path=OTHER_PATH)
    assert r.status_code == 403 and "account" in r.json()["error"]
    assert post(collector, measurement("u3"), token="any-token", path=OTHER_PATH).status_code == 200
    assert post(collector, measurement("u4"), token="nope", path=ACME_PATH).status_code == 401
    assert sorted(e.account for e in store.events()) == ["acme", "other"]


def test_token_file_format() -> None:
    text = "# comment\n\nbare-token\nacme:acme-token\n*:to:ken\n bad token \n:x\n"
    grants, problems = parse_tokens(text, source="tokens")
    assert grants == [
        TokenGrant("bare-token"),
        TokenGrant("acme-token", "acme"),
        TokenGrant("to:ken"),
    ]
    assert problems == [
        "tokens entry 6: a token is printable ASCII without spaces",
        "tokens entry 7: empty account before ':'",
    ]


def test_an_account_token_from_a_file_is_enforced_by_the_process(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("acme:acme-token\n")
    with started(tmp_path, "--tokens-file", str(tokens)) as (url, _):
        body, auth = measurement("u1"), {"Authorization": "Bearer acme-token"}
        ok = requests.post(
            url + "/accounts/acme/applications/A/servo", json=body, headers=auth, timeout=10
        )
        other = requests.post(
            url + "/accounts/other/applications/A/servo", json=body, headers=auth, timeout=10
        )
        assert (ok.status_code, other.status_code) == (200, 403)


class started:  # noqa: N801 - used as a context manager, reads as a verb
    """`servo collector --port 0` as a process: (its URL, stderr so far) until SIGTERM."""

    def __init__(self, tmp_path: Path, *args: str, **env: str) -> None:
        cmd = [*SERVO, "collector", "--port", "0", "--db", str(tmp_path / "c.db"), *args]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=clean_env(**env))

    def __enter__(self) -> tuple[str, str]:
        assert self.proc.stderr is not None
        seen = []
        for line in self.proc.stderr:
            seen.append(line)
            if line.startswith("servo collector: http://"):
                return line.split()[2].rstrip("/"), "".join(seen)
        raise AssertionError("collector did not start: " + "".join(seen))

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=20) == 0
        assert self.proc.stderr is not None
        self.proc.stderr.close()


def test_without_tokens_it_listens_on_loopback_only(tmp_path: Path) -> None:
    with started(tmp_path) as (url, _):
        assert url.startswith("http://127.0.0.1:")


def test_with_tokens_or_declared_open_it_listens_everywhere(tmp_path: Path) -> None:
    with started(tmp_path, COLLECTOR_TOKENS="t1") as (url, log):
        assert url.startswith("http://0.0.0.0:") and "open" not in log
    with started(tmp_path, "--open") as (url, log):
        assert url.startswith("http://0.0.0.0:")
        assert "WARNING" in log and "collector is open" in log
    with started(tmp_path, COLLECTOR_OPEN="true") as (url, _):
        assert url.startswith("http://0.0.0.0:")


@pytest.mark.parametrize("bind", [["--bind", "0.0.0.0"], ["--bind", "::"], []])
def test_listening_beyond_loopback_without_tokens_exits_2(tmp_path: Path, bind: list[str]) -> None:
    env = clean_env(**({} if bind else {"COLLECTOR_BIND": "10.1.2.3"}))
    proc = run_servo("collector", "--port", "0", "--db", str(tmp_path / "c.db"), *bind, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "without tokens" in proc.stderr and "--open" in proc.stderr
    assert "Traceback" not in proc.stderr
