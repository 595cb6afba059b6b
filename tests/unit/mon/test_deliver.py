"""Delivery over real HTTP on 127.0.0.1:0, and the termination message file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mon.deliver import is_retryable, post_stats, write_termination_message
from mon.errors import DeliveryError
from mon.wire import Stats, StatsPost
from tests.support.cgtree import POD_UID
from tests.support.monreceiver import closed_port_url, stats_receiver
from tests.support.monstats import make_stats


def _stats() -> Stats:
    return make_stats()


def wait_none(attempt: int) -> float:
    return 0.0


def _body() -> StatsPost:
    return {"id": POD_UID, "stats": _stats()}


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (DeliveryError("conn"), True),
        (DeliveryError("x", status=500), True),
        (DeliveryError("x", status=503), True),
        (DeliveryError("x", status=599), True),
        (DeliveryError("x", status=429), True),
        (DeliveryError("x", status=408), True),
        (DeliveryError("x", status=400), False),
        (DeliveryError("x", status=401), False),
        (DeliveryError("x", status=404), False),
        (ValueError("x"), False),
    ],
)
def test_is_retryable(exc: BaseException, expected: bool) -> None:
    assert is_retryable(exc) is expected


def test_post_sends_id_stats_and_the_token_file_as_bearer(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("tok-1\n")
    with stats_receiver() as rec:
        ok = post_stats(url=rec.url, body=_body(), token_file=token_file, timeout_s=2.0)
    assert ok
    assert rec.bodies == [json.loads(json.dumps(_body()))]
    assert rec.headers[0]["Authorization"] == "Bearer tok-1"
    assert rec.headers[0]["Content-Type"] == "application/json"


def test_the_token_file_is_read_again_before_each_try(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("old")
    waits: list[int] = []

    def rotate(attempt: int) -> float:
        waits.append(attempt)
        token_file.write_text("rotated")  # the kubelet replaced the projected token
        return 0.0

    with stats_receiver(script=[503]) as rec:
        assert post_stats(
            url=rec.url, body=_body(), token_file=token_file, timeout_s=2.0, wait=rotate
        )
    assert [h["Authorization"] for h in rec.headers] == ["Bearer old", "Bearer rotated"]


@pytest.mark.parametrize("content", [None, b"", b"  \n", b"a b", b"x\x00y", b"t" * 20_000])
def test_no_usable_token_file_posts_without_authorization(
    tmp_path: Path, content: bytes | None
) -> None:
    token_file = tmp_path / "token"
    if content is not None:
        token_file.write_bytes(content)
    with stats_receiver() as rec:
        assert post_stats(url=rec.url, body=_body(), token_file=token_file, timeout_s=2.0)
    assert "Authorization" not in rec.headers[0]


def test_post_retries_5xx_then_succeeds() -> None:
    with stats_receiver(script=[503, 500]) as rec:
        ok = post_stats(url=rec.url, body=_body(), token_file=None, timeout_s=2.0, wait=wait_none)
    assert ok
    assert len(rec.bodies) == 3


def test_post_gives_up_after_the_attempts() -> None:
    with stats_receiver(script=[500] * 5) as rec:
        ok = post_stats(
            url=rec.url, body=_body(), token_file=None, timeout_s=2.0, attempts=3, wait=wait_none
        )
    assert not ok
    assert len(rec.bodies) == 3


def test_post_does_not_retry_a_4xx() -> None:
    with stats_receiver(script=[403]) as rec:
        ok = post_stats(url=rec.url, body=_body(), token_file=None, timeout_s=2.0, wait=wait_none)
    assert not ok
    assert len(rec.bodies) == 1


def test_post_to_a_dead_target_returns_false_not_raises() -> None:
    assert not post_stats(
        url=closed_port_url(), body=_body(), token_file=None, timeout_s=0.5, wait=wait_none
    )


def test_termination_message_written(tmp_path: Path) -> None:
    path = tmp_path / "termination-log"
    assert write_termination_message(path, _stats())
    assert json.loads(path.read_bytes()) == _stats()


def test_termination_message_unwritable_returns_false(tmp_path: Path) -> None:
    assert not write_termination_message(tmp_path / "no" / "such" / "dir", _stats())
