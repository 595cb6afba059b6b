"""The reporter with its outbox over real HTTP: durable on submit, each event sent once, the
group-committed acks on disk once the workers are idle, one prepared request per URL reused."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import requests
from tenacity import wait_none

from servo.core.models import Event
from servo.report.outbox import Outbox
from servo.report.reporter import Reporter
from servo.system.config_sections import ReportConfig
from tests.support.fakes.backend import RecordingBackend
from tests.support.helpers import pending_ids


def ev(i: int, app_id: str = "A") -> Event:
    return Event(id=f"u{i}:MEASUREMENT", event="MEASUREMENT", app_id=app_id, param={"n": i})


def reporter(
    backend: RecordingBackend, box: Outbox | None, session: requests.Session | None = None
) -> Reporter:
    cfg = ReportConfig(
        url_template=backend.url_template(),
        account="acme",
        auth_token="t0k3n",
        timeout_s=2.0,
        deadline_s=10.0,
        max_backoff_s=5.0,
        workers=4,
    )
    return Reporter(cfg, outbox=box, session=session, wait=wait_none())


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait for an outcome (not a timing assertion: the bound only stops a hung test)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_each_event_is_sent_once_and_a_restart_sends_none_again(
    backend: RecordingBackend, tmp_path: Path
) -> None:
    box = Outbox(tmp_path)
    r = reporter(backend, box)
    r.start()
    assert all(r.submit(ev(i)) for i in range(300))
    r.close(grace_s=20)
    box.close()
    assert sorted(x.event_id or "" for x in backend.accepted) == sorted(
        f"u{i}:MEASUREMENT" for i in range(300)
    )
    again = Outbox(tmp_path)  # the next start
    assert again.depth() == 0
    r2 = reporter(backend, again)
    marked: list[str] = []
    r2.on_delivered = lambda e: marked.append(e.id)
    r2.start()
    assert r2.submit(ev(7))  # measured again after the restart: a tombstone, not sent again
    r2.close(grace_s=2)
    assert len(backend.received) == 300
    # ...but its after-delivery step (the pod's reported annotation) is done: the run that sent
    # it may have stopped before doing it.
    assert marked == ["u7:MEASUREMENT"]


def test_an_event_still_waiting_is_not_marked_when_submitted_again(
    backend: RecordingBackend, tmp_path: Path
) -> None:
    backend.stop()  # nothing is delivered
    box = Outbox(tmp_path)
    r = reporter(backend, box)
    marked: list[str] = []
    r.on_delivered = lambda e: marked.append(e.id)
    assert r.submit(ev(1)) and r.submit(ev(1))
    assert box.depth() == 1 and marked == []
    box.close()


def test_submit_returns_once_the_event_is_on_disk(
    backend: RecordingBackend, tmp_path: Path
) -> None:
    box = Outbox(tmp_path)
    r = reporter(backend, box)  # not started: nothing sends
    assert r.submit(ev(1))
    assert pending_ids(Outbox(tmp_path)) == {"u1:MEASUREMENT"}  # as the next start would read it


def test_idle_workers_commit_their_acks_without_a_close(
    backend: RecordingBackend, tmp_path: Path
) -> None:
    box = Outbox(tmp_path)
    other = Outbox(tmp_path)  # reads only what is committed, like the next start
    r = reporter(backend, box)
    r.start()
    for i in range(5):
        r.submit(ev(i))
    wait_for(lambda: len(backend.accepted) == 5)
    wait_for(lambda: other.depth() == 0)
    r.close(grace_s=2)


def test_posts_to_one_url_each_carry_their_own_body_and_key(backend: RecordingBackend) -> None:
    r = reporter(backend, None)
    for i in range(3):
        r.send(ev(i))
    r.send(ev(3, app_id="B"))
    got = backend.received
    assert [x.json for x in got] == [ev(i).body() for i in range(3)] + [ev(3).body()]
    assert [x.headers["Idempotency-Key"] for x in got] == [f"u{i}:MEASUREMENT" for i in range(4)]
    assert [x.path.split("/")[-2] for x in got] == ["A", "A", "A", "B"]
    assert {x.headers["Authorization"] for x in got} == {"Bearer t0k3n"}
    assert {x.headers["Content-Length"] for x in got[:3]} == {str(len(got[0].body))}


def test_session_cookies_go_with_every_post(backend: RecordingBackend) -> None:
    session = requests.Session()
    r = reporter(backend, None, session)
    r.send(ev(1))
    session.cookies.set("affinity", "node-2")  # as a load balancer's Set-Cookie would
    r.send(ev(2))
    first, second = backend.received
    assert "Cookie" not in first.headers
    assert second.headers["Cookie"] == "affinity=node-2"
    assert second.json == ev(2).body() and second.headers["Idempotency-Key"] == "u2:MEASUREMENT"
