"""Tests of the RecordingBackend fake over real HTTP with requests.

The servo's integration tests trust this fake to record exactly what arrived and to misbehave
exactly as told; these tests hold it to that.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import requests

from tests.support.fakes.backend import RecordingBackend

pytestmark = pytest.mark.timeout(3)


@pytest.fixture
def backend() -> Iterator[RecordingBackend]:
    with RecordingBackend() as b:
        yield b


def _url(backend: RecordingBackend, app_id: str = "job-1") -> str:
    return backend.url_template().format(acct="acme", app_id=app_id)


def _measurement(event_id: str = "uid-1:measurement") -> dict[str, object]:
    return {
        "id": event_id,
        "event": "MEASUREMENT",
        "param": {"metrics": {"duration": {"value": 5, "unit": "s"}}, "annotations": {}},
    }


def test_url_template_fills_to_the_servo_path(backend: RecordingBackend) -> None:
    assert backend.url.startswith("http://127.0.0.1:")
    assert int(backend.url.rsplit(":", 1)[1]) > 0
    assert _url(backend) == f"{backend.url}/accounts/acme/applications/job-1/servo"


def test_records_body_headers_and_json(backend: RecordingBackend) -> None:
    resp = requests.post(
        _url(backend),
        json=_measurement(),
        headers={"Authorization": "Bearer s3cret"},
        timeout=2,
    )

    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}
    assert resp.headers["Content-Type"] == "application/json"
    [got] = backend.received
    assert got.method == "POST"
    assert got.path == "/accounts/acme/applications/job-1/servo"
    assert got.headers["Authorization"] == "Bearer s3cret"
    assert got.headers["authorization"] == "Bearer s3cret"  # look-ups ignore case
    assert got.json == _measurement()
    assert got.body == resp.request.body
    assert got.event == "MEASUREMENT"
    assert got.param == {"metrics": {"duration": {"value": 5, "unit": "s"}}, "annotations": {}}
    assert got.event_id == "uid-1:measurement"
    assert backend.accepted == [got]
    assert backend.events("MEASUREMENT") == [got]
    assert backend.events("HELLO") == []


def test_no_authorization_header_is_recorded_as_absent(backend: RecordingBackend) -> None:
    requests.post(_url(backend), json=_measurement(), timeout=2)

    [got] = backend.received
    assert "Authorization" not in got.headers
    assert got.headers.get("Authorization") is None


def test_whats_next_is_answered_with_measure(backend: RecordingBackend) -> None:
    resp = requests.post(_url(backend), json={"event": "WHATS_NEXT", "param": None}, timeout=2)

    assert resp.json() == {"cmd": "MEASURE", "param": {}}
    [got] = backend.events("WHATS_NEXT")
    assert got.param is None
    assert got.event_id is None


def test_custom_reply_is_used_for_other_events() -> None:
    with RecordingBackend(reply={"status": "stored", "n": 1}) as b:
        resp = requests.post(_url(b), json=_measurement(), timeout=2)
        nxt = requests.post(_url(b), json={"event": "WHATS_NEXT"}, timeout=2)

    assert resp.json() == {"status": "stored", "n": 1}
    assert nxt.json() == {"cmd": "MEASURE", "param": {}}


def test_event_id_falls_back_to_idempotency_key(backend: RecordingBackend) -> None:
    requests.post(
        _url(backend),
        json={"event": "HELLO", "param": {"account": "acme"}},
        headers={"Idempotency-Key": "hello-42"},
        timeout=2,
    )

    [got] = backend.events("HELLO")
    assert got.event_id == "hello-42"


def test_invalid_json_is_recorded_raw(backend: RecordingBackend) -> None:
    resp = requests.post(_url(backend), data=b"not json{", timeout=2)

    assert resp.status_code == 200
    [got] = backend.received
    assert got.body == b"not json{"
    assert got.json is None
    assert got.event is None and got.param is None and got.event_id is None


def test_chunked_body_is_read_and_connection_stays_usable(backend: RecordingBackend) -> None:
    parts = [b'{"event": "MEASUREMENT", ', b'"param": {"metrics": {}}, ', b'"id": "c-1"}']
    with requests.Session() as session:
        first = session.post(_url(backend), data=iter(parts), timeout=2)
        second = session.post(_url(backend), json=_measurement("c-2"), timeout=2)

    assert first.request.headers["Transfer-Encoding"] == "chunked"
    assert (first.status_code, second.status_code) == (200, 200)
    got = backend.received
    assert [r.headers.get("Transfer-Encoding") for r in got] == ["chunked", None]
    assert got[0].body == b"".join(parts)
    assert [r.event_id for r in got] == ["c-1", "c-2"]


def test_fail_next_fails_that_many_then_answers_normally(backend: RecordingBackend) -> None:
    backend.fail_next(2)

    statuses = [requests.post(_url(backend), json=_measurement(), timeout=2) for _ in range(3)]

    assert [r.status_code for r in statuses] == [503, 503, 200]
    assert statuses[0].content == b'{"error":"injected"}'
    assert "Retry-After" not in statuses[0].headers
    assert len(backend.received) == 3
    assert len(backend.accepted) == 1
    assert backend.accepted[0] is backend.received[2]


def test_fail_next_custom_status_body_and_retry_after(backend: RecordingBackend) -> None:
    backend.fail_next(1, 429, retry_after_s=2, body=b'{"error":"slow down"}')
    backend.fail_next(1, 503, retry_after_s=0.25)

    first = requests.post(_url(backend), json=_measurement(), timeout=2)
    second = requests.post(_url(backend), json=_measurement(), timeout=2)

    assert first.status_code == 429
    assert first.headers["Retry-After"] == "2"
    assert first.json() == {"error": "slow down"}
    assert second.status_code == 503
    assert second.headers["Retry-After"] == "0.25"
    assert backend.accepted == []


def test_script_answers_statuses_in_turn(backend: RecordingBackend) -> None:
    backend.script([500, 429, 201, 404, 204])

    with requests.Session() as session:
        got = [session.post(_url(backend), json=_measurement(), timeout=2) for _ in range(6)]

    assert [r.status_code for r in got] == [500, 429, 201, 404, 204, 200]
    assert got[0].json() == {"error": "scripted"}
    assert got[2].json() == {"status": "ok"}
    assert got[4].content == b""
    assert "Content-Length" not in got[4].headers
    assert len(backend.received) == 6
    assert len(backend.accepted) == 3  # 201, 204, 200


def test_reset_closes_connection_without_a_response(backend: RecordingBackend) -> None:
    backend.reset_next(1)

    with pytest.raises(requests.ConnectionError):
        requests.post(_url(backend), json=_measurement(), timeout=2)
    after = requests.post(_url(backend), json=_measurement("after"), timeout=2)

    assert after.status_code == 200
    assert [r.event_id for r in backend.received] == ["uid-1:measurement", "after"]
    assert [r.event_id for r in backend.accepted] == ["after"]


def test_reset_breaks_a_kept_alive_session_too(backend: RecordingBackend) -> None:
    with requests.Session() as session:
        assert session.post(_url(backend), json=_measurement("a"), timeout=2).ok
        backend.reset_next(1)
        with pytest.raises(requests.ConnectionError):
            session.post(_url(backend), json=_measurement("b"), timeout=2)
        assert session.post(_url(backend), json=_measurement("c"), timeout=2).ok

    assert [r.event_id for r in backend.received] == ["a", "b", "c"]
    assert [r.event_id for r in backend.accepted] == ["a", "c"]


def test_delay_makes_the_client_time_out(backend: RecordingBackend) -> None:
    backend.delay_next(1, 0.6)

    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(_url(backend), json=_measurement("late"), timeout=0.2)
    assert time.monotonic() - started < 0.5

    # The request did arrive; the backend answers it late, like a slow real backend.
    assert [r.event_id for r in backend.received] == ["late"]
    assert backend.wait_for(lambda: len(backend.accepted) == 1, timeout_s=2)
    resp = requests.post(_url(backend), json=_measurement("prompt"), timeout=0.5)
    assert resp.status_code == 200


def test_delayed_answer_arrives_for_a_patient_client(backend: RecordingBackend) -> None:
    backend.delay_next(1, 0.3)

    started = time.monotonic()
    resp = requests.post(_url(backend), json=_measurement(), timeout=2)

    assert resp.status_code == 200
    assert time.monotonic() - started >= 0.3


def test_injections_queue_in_the_order_asked(backend: RecordingBackend) -> None:
    backend.fail_next(1, 502)
    backend.reset_next(1)
    backend.script([408])

    outcomes: list[int | str] = []
    for _ in range(4):
        try:
            outcomes.append(
                requests.post(_url(backend), json=_measurement(), timeout=2).status_code
            )
        except requests.ConnectionError:
            outcomes.append("reset")

    assert outcomes == [502, "reset", 408, 200]


def test_concurrent_posts_are_all_recorded(backend: RecordingBackend) -> None:
    def send(i: int) -> None:
        requests.post(_url(backend, f"job-{i}"), json=_measurement(f"id-{i}"), timeout=2)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(r.event_id or "" for r in backend.accepted) == sorted(
        f"id-{i}" for i in range(20)
    )
    assert len(backend.received) == 20


def test_wait_for_sees_a_request_from_another_thread(backend: RecordingBackend) -> None:
    timer = threading.Timer(
        0.1, lambda: requests.post(_url(backend), json=_measurement(), timeout=2)
    )
    timer.start()
    try:
        assert backend.wait_for(lambda: bool(backend.events("MEASUREMENT")), timeout_s=2)
    finally:
        timer.join()


def test_wait_for_gives_up_after_its_timeout(backend: RecordingBackend) -> None:
    started = time.monotonic()

    assert backend.wait_for(lambda: bool(backend.received), timeout_s=0.2) is False
    assert 0.2 <= time.monotonic() - started < 1.0


def test_stop_refuses_requests_and_restart_keeps_the_url(backend: RecordingBackend) -> None:
    url = _url(backend)
    with requests.Session() as session:
        assert session.post(url, json=_measurement("before"), timeout=2).ok
        backend.stop()
        # Neither a new connection nor the session's kept-alive one gets an answer.
        with pytest.raises(requests.ConnectionError):
            requests.post(url, json=_measurement(), timeout=1)
        with pytest.raises(requests.ConnectionError):
            session.post(url, json=_measurement(), timeout=1)

    backend.start()
    assert _url(backend) == url
    assert requests.post(url, json=_measurement("after"), timeout=2).ok
    assert [r.event_id for r in backend.accepted] == ["before", "after"]


def test_url_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="start"):
        _ = RecordingBackend().url
