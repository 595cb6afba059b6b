"""The bundled collector over real HTTP: auth, duplicates, malformed bodies, answers, concurrent
writers, and end to end with the servo (emulator -> servo -> collector -> report)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from servo.collector.server import MAX_BODY_BYTES, Collector
from servo.collector.text_report import report_text
from servo.store.events import EventStore
from tests.support.collectorkit import TOKEN, URL, measurement, post
from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.harness import run_job
from tests.support.helpers import job_pod


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    with EventStore(tmp_path / "servo.db") as s:
        yield s


@pytest.fixture
def collector(store: EventStore) -> Iterator[Collector]:
    responses = {
        "ADJ": {
            "cmd": "ADJUST",
            "param": {
                "state": {
                    "application": {"components": {"job": {"settings": {"cpu": {"value": 2}}}}}
                }
            },
        }
    }
    with Collector(store, frozenset({TOKEN, "other-token"}), responses, port=0) as c:
        yield c


@pytest.mark.parametrize("token", [None, "wrong", "", f"{TOKEN}x"])
def test_wrong_or_missing_token_is_401(
    collector: Collector, store: EventStore, token: str | None
) -> None:
    r = post(collector, measurement("u1"), token=token)
    assert r.status_code == 401 and "token" in r.json()["error"]
    assert store.count() == 0


def test_every_configured_token_is_accepted(collector: Collector, store: EventStore) -> None:
    assert post(collector, measurement("u1"), token="other-token").status_code == 200
    assert post(collector, measurement("u2")).status_code == 200
    assert store.count() == 2


def test_event_is_stored_with_its_fields(collector: Collector, store: EventStore) -> None:
    r = post(collector, measurement("u1"), app="JOB 7/a")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    [e] = store.events()
    assert (e.account, e.app_id, e.event, e.event_id, e.pod_uid) == (
        "acme",
        "JOB 7/a",
        "MEASUREMENT",
        "u1:MEASUREMENT",
        "u1",
    )
    assert e.body["param"]["metrics"]["duration"]["value"] == 10


def test_original_url_shape_works(collector: Collector, store: EventStore) -> None:
    r = post(collector, measurement("u1"), path="/metrics/acme/{app}/servo")
    assert r.status_code == 200 and store.events()[0].app_id == "APP"


def test_duplicates_are_stored_once(collector: Collector, store: EventStore) -> None:
    for _ in range(3):
        assert post(collector, measurement("u1")).status_code == 200
    body = {"event": "HELLO", "param": {"account": "acme"}}
    for _ in range(2):  # no id in the body: the Idempotency-Key header is the id
        post(collector, body, app="_global_", headers={"Idempotency-Key": "k1"})
    post(collector, body, app="_global_")  # no id at all: stored as a new event
    assert [e.event_id for e in store.events()][:2] == ["u1:MEASUREMENT", "k1"]
    assert store.count() == 3


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"event": "NOPE", "param": null}', "event"),
        (b'{"param": {}}', "event"),
        (b'{"id": 5, "event": "HELLO", "param": null}', "id"),
    ],
)
def test_malformed_bodies_are_400(
    collector: Collector, store: EventStore, body: bytes, why: str
) -> None:
    r = post(collector, body)
    assert r.status_code == 400 and why in r.json()["error"]
    assert store.count() == 0


def test_oversized_body_and_unknown_paths(collector: Collector, store: EventStore) -> None:
    assert post(collector, b"x" * (MAX_BODY_BYTES + 1)).status_code == 413
    assert post(collector, measurement("u1"), path="/elsewhere/{app}").status_code == 404
    assert requests.get(collector.url + "/nope", timeout=5).status_code == 404
    assert requests.get(collector.url + "/healthz", timeout=5).json() == {"status": "ok"}
    assert store.count() == 0


def test_whats_next_answers_measure_or_the_configured_adjust(collector: Collector) -> None:
    ask = {"event": "WHATS_NEXT", "param": None}
    assert post(collector, ask, app="ANY").json() == {"cmd": "MEASURE", "param": {}}
    adjust = post(collector, ask, app="ADJ").json()
    assert adjust["cmd"] == "ADJUST"
    assert adjust["param"]["state"]["application"]["components"]["job"]["settings"] == {
        "cpu": {"value": 2}
    }


def test_concurrent_writers_all_stored_none_twice(collector: Collector, store: EventStore) -> None:
    threads, per_thread = 8, 500
    failures: list[int] = []

    def writer(t: int) -> None:
        with requests.Session() as s:
            for i in range(per_thread):
                body = measurement(f"t{t}-{i}")
                r = s.post(
                    collector.url + URL.format(app=f"APP{t}"),
                    json=body,
                    headers={"Authorization": f"Bearer {TOKEN}"},
                    timeout=30,
                )
                if r.status_code != 200:
                    failures.append(r.status_code)
                if i % 50 == 0:  # some duplicates on top, as retries would send
                    s.post(
                        collector.url + URL.format(app=f"APP{t}"),
                        json=body,
                        headers={"Authorization": f"Bearer {TOKEN}"},
                        timeout=30,
                    )

    workers = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
    assert failures == []
    ids = [e.event_id for e in store.events()]
    assert len(ids) == threads * per_thread == len(set(ids))


def test_api_summarises_jobs(collector: Collector) -> None:
    for i, d in enumerate([10, 20, 30]):
        post(collector, measurement(f"u{i}", d), app="J")
    [job] = requests.get(collector.url + "/api/jobs", timeout=5).json()
    assert job["app_id"] == "J" and job["runs"] == 3 and job["duration"]["max"] == 30
    history = requests.get(collector.url + "/api/jobs/J", timeout=5).json()
    assert [h["duration"] for h in history] == [10, 20, 30]


def test_servo_to_collector_to_report(
    store: EventStore, collector: Collector, start_servo: Any, emu: KubeEmulator
) -> None:
    servo = start_servo(
        OPTUNE_URL=collector.url_template(), OPTUNE_AUTH_TOKEN=TOKEN, POD_NAMESPACES="default"
    )
    run_job(emu, job_pod("train-a", jobid="TRAIN"))
    run_job(emu, job_pod("train-b", jobid="TRAIN"), exit_code=2)
    assert emu.wait_for(lambda: len(store.events(event="MEASUREMENT")) == 2, 15)
    servo.stop()
    assert {e.event for e in store.events()} == {"HELLO", "MEASUREMENT", "GOODBYE"}
    text = report_text(store)
    [header, row] = text.splitlines()
    assert header.startswith("APP ID") and row.split()[:3] == ["TRAIN", "2", "1"]
    assert "1h35m" in row  # 5722 s, the helpers' start and finish times
