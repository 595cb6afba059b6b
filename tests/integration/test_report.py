"""The reporter over real HTTP against the recording backend: retries, Retry-After, 4xx, auth."""

from __future__ import annotations

import logging
import time

import pytest
from tenacity import wait_none

from servo.core.errors import ReportError
from servo.core.models import Event
from servo.report.reporter import Reporter
from servo.system.config_sections import ReportConfig
from tests.support.fakes.backend import RecordingBackend

EVENT = Event(
    id="uid-1:MEASUREMENT",
    event="MEASUREMENT",
    app_id="JOB 1/a",
    param={"metrics": {"duration": {"value": 5, "unit": "s"}}, "annotations": {}},
)


def reporter(
    backend: RecordingBackend, *, token: str | None = "t0k3n", fast: bool = True, **kw: float
) -> Reporter:
    cfg = ReportConfig(
        url_template=backend.url_template(),
        account="acme",
        auth_token=token,
        timeout_s=kw.get("timeout_s", 2.0),
        deadline_s=kw.get("deadline_s", 10.0),
        max_backoff_s=kw.get("max_backoff_s", 5.0),
        workers=2,
    )
    return Reporter(cfg, wait=wait_none() if fast else None)


def test_post_carries_body_bearer_and_idempotency_key(backend: RecordingBackend) -> None:
    reply = reporter(backend).send(EVENT)
    [got] = backend.received
    assert got.path == "/accounts/acme/applications/JOB%201%2Fa/servo"
    assert got.json == {"id": "uid-1:MEASUREMENT", "event": "MEASUREMENT", "param": EVENT.param}
    assert got.headers["Authorization"] == "Bearer t0k3n"
    assert got.headers["Idempotency-Key"] == "uid-1:MEASUREMENT"
    assert got.headers["Content-Type"] == "application/json"
    assert reply == {"status": "ok"}


def test_no_token_means_no_authorization_header(backend: RecordingBackend) -> None:
    reporter(backend, token=None).send(EVENT)
    assert "Authorization" not in backend.received[0].headers


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
def test_retryable_statuses_are_retried_then_delivered(
    backend: RecordingBackend, status: int
) -> None:
    backend.fail_next(2, status)
    reporter(backend).send(EVENT)
    assert [r.event_id for r in backend.received] == [EVENT.id] * 3
    assert len(backend.accepted) == 1


def test_connection_reset_and_timeout_are_retried(backend: RecordingBackend) -> None:
    backend.reset_next(1)
    backend.delay_next(1, 1.0)
    reporter(backend, timeout_s=0.3).send(EVENT)
    assert len(backend.accepted) == 1
    assert len(backend.received) >= 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_other_4xx_is_not_retried(backend: RecordingBackend, status: int) -> None:
    backend.fail_next(1, status, body=b'{"error":"nope, bad data"}')
    with pytest.raises(ReportError) as info:
        reporter(backend).send(EVENT)
    assert info.value.status == status
    assert "bad data" in info.value.body_excerpt
    assert len(backend.received) == 1


def test_retry_after_is_honoured(backend: RecordingBackend) -> None:
    backend.fail_next(1, 429, retry_after_s=1)
    started = time.monotonic()
    # Real waits here: backoff alone would retry after ~0.5 s; Retry-After says 1 s.
    reporter(backend, fast=False).send(EVENT)
    assert time.monotonic() - started >= 0.95
    assert len(backend.accepted) == 1


def test_retry_after_is_capped(backend: RecordingBackend) -> None:
    backend.fail_next(1, 503, retry_after_s=3600)
    started = time.monotonic()
    reporter(backend, fast=False, max_backoff_s=0.2).send(EVENT)
    assert time.monotonic() - started < 5
    assert len(backend.accepted) == 1


def test_gives_up_at_the_deadline(backend: RecordingBackend) -> None:
    backend.fail_next(1000, 503)
    with pytest.raises(ReportError) as info:
        reporter(backend, fast=False, deadline_s=0.5, max_backoff_s=0.1).send(EVENT)
    assert info.value.status == 503
    assert 2 <= len(backend.received) < 100


def test_workers_deliver_queued_events_and_log_without_the_token(
    backend: RecordingBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    backend.fail_next(2, 503)
    r = reporter(backend)
    r.start()
    for i in range(20):
        r.submit(Event(id=f"u{i}:MEASUREMENT", event="MEASUREMENT", app_id="a", param={}))
    r.close(grace_s=10)
    assert sorted(x.event_id or "" for x in backend.accepted) == sorted(
        f"u{i}:MEASUREMENT" for i in range(20)
    )
    assert r.counts.sent == 20 and r.counts.failed == 0
    assert any(rec.message == "report failed, will retry" for rec in caplog.records)
    assert "t0k3n" not in caplog.text


def test_gave_up_is_logged_and_counted(
    backend: RecordingBackend, caplog: pytest.LogCaptureFixture
) -> None:
    backend.fail_next(1, 400, body=b"schema mismatch")
    r = reporter(backend)
    r.start()
    r.submit(EVENT)
    r.close(grace_s=10)
    assert r.counts.failed == 1
    [rec] = [x for x in caplog.records if x.message == "report gave up"]
    assert rec.levelno == logging.ERROR
    assert rec.__dict__["status"] == 400 and "schema mismatch" in rec.__dict__["body"]


def test_close_aborts_a_backend_outage_within_the_grace_period(backend: RecordingBackend) -> None:
    backend.fail_next(10_000, 503)
    r = reporter(backend, fast=False, deadline_s=600, max_backoff_s=0.2)
    r.start()
    r.submit(EVENT)
    started = time.monotonic()
    r.close(grace_s=0.5)
    assert time.monotonic() - started < 5
    assert r.counts.sent == 0 and r.counts.failed == 1
