"""The WHATS_NEXT exchange the webhook holds with the backend while it admits a job pod: ADJUST
applied to the pod (against the bundled collector), DESCRIBE answered, other commands passed
over, and a backend that is down, slow or failing costing at most the budget and leaving only
the monitor injected."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonpatch
import pytest

from servo.collector.server import Collector
from servo.store.events import EventStore
from servo.webhook.exchange import Exchange
from servo.webhook.resources import Ranges
from tests.support.fakes.backend import RecordingBackend
from tests.support.webhookkit import (
    ADJUST,
    NEW,
    Hook,
    admission_pod,
    containers_by_name,
    validate,
)

# -- the WHATS_NEXT exchange --------------------------------------------------------------


def test_adjust_round_trip_against_the_bundled_collector(
    start_hook: Callable[..., Hook], tmp_path: Path
) -> None:
    with (
        EventStore(tmp_path / "c.db") as store,
        Collector(store, responses={"JOB-1": ADJUST}, port=0) as collector,
    ):
        hook = start_hook(url=collector.url_template())
        pod = admission_pod()
        _, ops = hook.admit(pod)
        out = jsonpatch.apply_patch(copy.deepcopy(pod), ops)
        [adjustment] = store.events(event="ADJUSTMENT")
        asked = store.events(event="WHATS_NEXT")

    validate(out, NEW)
    res = out["spec"]["containers"][0]["resources"]
    assert res["limits"] == {"cpu": "1500m", "memory": "4Gi", "nvidia.com/gpu": "1"}
    assert res["requests"] == {"cpu": "1500m", "memory": "4Gi", "nvidia.com/gpu": "1"}
    assert adjustment.app_id == "JOB-1" and adjustment.account == "acme"
    assert adjustment.body["param"]["status"] == "ok"
    assert adjustment.body["param"]["state"]["application"]["components"]["job"]["settings"] == {
        "cpu": {"value": 1.5},
        "mem": {"value": 4.0},
    }
    assert len(asked) == 1


def test_adjust_of_an_unknown_component_replies_failed_and_changes_nothing(
    start_hook: Callable[..., Hook],
) -> None:
    bad = copy.deepcopy(ADJUST)
    comps = bad["param"]["state"]["application"]["components"]  # type: ignore[index]
    comps["sidecar"] = comps.pop("job")
    with RecordingBackend(whats_next_reply=bad) as backend:
        hook = start_hook(url=backend.url_template())
        pod = admission_pod()
        _, ops = hook.admit(pod)
        out = jsonpatch.apply_patch(copy.deepcopy(pod), ops)
        [adjustment] = backend.events("ADJUSTMENT")

    assert out["spec"]["containers"] == pod["spec"]["containers"]
    assert "servo-monitor" in containers_by_name(out, "initContainers")
    assert adjustment.param["status"] == "failed"
    assert adjustment.param["reason"] == "unknown-component"


def test_describe_then_adjust_sends_the_description_and_asks_again() -> None:
    answers = [{"cmd": "DESCRIBE", "param": {}}, ADJUST]
    sent: list[Any] = []

    def send(event: Any, timeout_s: float) -> Any:
        sent.append((event.event, event.param, event.id))
        assert 0 < timeout_s <= 2.0
        return answers.pop(0) if event.event == "WHATS_NEXT" else {"status": "ok"}

    ex = Exchange(send, budget_s=2.0, ranges=Ranges())
    log = logging.LoggerAdapter(logging.getLogger("test"), {})
    adj = ex.run(review_uid="r1", app_id="JOB-1", pod=admission_pod(), index=0, log=log)

    assert adj is not None and adj.ok
    assert [s[0] for s in sent] == ["WHATS_NEXT", "DESCRIPTION", "WHATS_NEXT", "ADJUSTMENT"]
    description = sent[1][1]
    assert description["application"]["components"]["job"]["settings"]["cpu"]["value"] == 4.0
    assert "max_memory" in description["measurement"]["metrics"]
    assert len({s[2] for s in sent}) == 4  # every event has its own id


@pytest.mark.parametrize("cmd", ["SLEEP", "MEASURE", "FLY"])
def test_sleep_measure_or_unknown_proceed_after_one_question(
    start_hook: Callable[..., Hook], cmd: str
) -> None:
    with RecordingBackend(whats_next_reply={"cmd": cmd, "param": {"duration": 60}}) as backend:
        hook = start_hook(url=backend.url_template())
        pod = admission_pod()
        _, ops = hook.admit(pod)

    assert [r.event for r in backend.received] == ["WHATS_NEXT"]
    assert (
        jsonpatch.apply_patch(pod, ops)["spec"]["containers"]
        == admission_pod()["spec"]["containers"]
    )


def _only_monitor(pod: dict[str, Any], ops: list[Any]) -> None:
    out = jsonpatch.apply_patch(copy.deepcopy(pod), ops)
    assert out["spec"]["containers"] == pod["spec"]["containers"]
    assert list(containers_by_name(out, "initContainers")) == ["servo-monitor"]


def test_backend_down_means_only_the_monitor_within_the_budget(
    start_hook: Callable[..., Hook], backend: RecordingBackend
) -> None:
    url = backend.url_template()
    backend.stop()  # connection refused from now on
    hook = start_hook(url=url)
    pod = admission_pod()
    started = time.monotonic()
    _, ops = hook.admit(pod)

    assert time.monotonic() - started < 2.5
    _only_monitor(pod, ops)


def test_slow_backend_costs_at_most_the_budget(
    start_hook: Callable[..., Hook], backend: RecordingBackend
) -> None:
    backend.delay_next(1, 4.0)
    hook = start_hook(url=backend.url_template(), budget_s=1.0)
    pod = admission_pod()
    started = time.monotonic()
    _, ops = hook.admit(pod)
    elapsed = time.monotonic() - started

    assert elapsed < 1.8, elapsed
    _only_monitor(pod, ops)


@pytest.mark.parametrize("status", [500, 404, 429])
def test_backend_errors_mean_only_the_monitor(
    start_hook: Callable[..., Hook], backend: RecordingBackend, status: int
) -> None:
    backend.fail_next(5, status)
    hook = start_hook(url=backend.url_template())
    pod = admission_pod()
    _, ops = hook.admit(pod)

    _only_monitor(pod, ops)
