"""The webhook's metrics: every review counted by what its answer did, with its time; every
WHATS_NEXT exchange by outcome; and `servo webhook` serving them on the metrics port."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from servo.core.errors import ReportError
from servo.core.models import Event
from servo.system.config import load_config
from servo.webhook.admission import MonitorSpec
from servo.webhook.exchange import Exchange
from servo.webhook.metrics import EXCHANGE_OUTCOMES, REVIEW_RESULTS, WebhookMetrics
from servo.webhook.resources import Ranges
from servo.webhook.review import INTERNAL_ERROR_WARNING, Admitter
from tests.support.webhookkit import ADJUST, MEASURE, admission_pod, decode_patch, review


def samples(metrics: WebhookMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client import generate_latest

    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def count(metrics: WebhookMetrics, name: str, **labels: str) -> float:
    return samples(metrics)[(name, tuple(sorted(labels.items())))]


def admitter(metrics: WebhookMetrics, exchange: Exchange | None = None) -> Admitter:
    cfg = load_config({"POD_NAMESPACES": "default", "OPTUNE_ACCOUNT": "acme"})
    monitor = MonitorSpec("servo-monitor", "mon:test", "http://servo:8080/", native=True)
    return Admitter(cfg, monitor=monitor, exchange=exchange, metrics=metrics)


def test_every_label_is_there_from_the_start() -> None:
    metrics = WebhookMetrics()
    for result in REVIEW_RESULTS:
        assert count(metrics, "servo_webhook_reviews_total", result=result) == 0
    for outcome in EXCHANGE_OUTCOMES:
        assert count(metrics, "servo_webhook_exchanges_total", outcome=outcome) == 0


def test_reviews_are_counted_by_what_the_answer_did() -> None:
    metrics = WebhookMetrics()
    hook = admitter(metrics)
    windows = admission_pod()
    windows["spec"]["os"] = {"name": "windows"}
    already = admission_pod()
    already["spec"]["containers"].append({"name": "servo-monitor", "image": "m"})
    bodies: list[Any] = [
        review(admission_pod()),  # patched
        review(admission_pod()),  # patched
        review(admission_pod(jobid=None)),  # not-a-job
        review(admission_pod(), namespace="elsewhere"),  # not-watched
        review(admission_pod(), operation="UPDATE"),  # skipped
        review(windows),  # skipped
        review(already),  # unchanged: the monitor is there, no guard, no backend
    ]
    for body in bodies:
        hook.review(json.dumps(body).encode())
    assert hook.answer(b"not json")[0] == 400  # malformed
    got = {r: count(metrics, "servo_webhook_reviews_total", result=r) for r in REVIEW_RESULTS}
    assert got == {
        "patched": 2,
        "unchanged": 1,
        "not-a-job": 1,
        "not-watched": 1,
        "skipped": 2,
        "malformed": 1,
        "failed": 0,
    }
    assert count(metrics, "servo_webhook_review_seconds_count") == 8
    assert 0 < count(metrics, "servo_webhook_review_seconds_sum") < 8 * 0.5


def test_a_review_that_fails_inside_is_counted_and_the_pod_let_through() -> None:
    metrics = WebhookMetrics()
    cfg = load_config({"POD_NAMESPACES": "default", "OPTUNE_ACCOUNT": "acme"})
    monitor = MonitorSpec("servo-monitor", "mon:test", "http://servo:8080/", native=True)

    class Broken:
        def run(self, **_: Any) -> None:
            raise RuntimeError("backend client broke")

    hook = Admitter(cfg, monitor=monitor, exchange=Broken(), metrics=metrics)  # type: ignore[arg-type]
    body = review(admission_pod())
    answer = hook.review(json.dumps(body).encode())
    assert answer["response"]["allowed"] is True and "patch" not in answer["response"]
    assert answer["response"]["uid"] == body["request"]["uid"]
    assert answer["response"]["warnings"] == [INTERNAL_ERROR_WARNING]
    assert count(metrics, "servo_webhook_reviews_total", result="failed") == 1
    assert count(metrics, "servo_webhook_reviews_total", result="patched") == 0


def scripted(*answers: Any) -> Any:
    """A Sender answering WHATS_NEXT with `answers` in turn (an exception is raised)."""
    queue = list(answers)

    def send(event: Event, timeout_s: float) -> Any:
        if event.event != "WHATS_NEXT":
            return {"status": "ok"}
        answer = queue.pop(0) if queue else {"cmd": "DESCRIBE"}
        if isinstance(answer, Exception):
            raise answer
        return answer

    return send


@pytest.mark.parametrize(
    ("answers", "outcome"),
    [
        ([ADJUST], "adjusted"),
        ([MEASURE], "no-adjustment"),
        ([{"cmd": "FLY"}], "no-adjustment"),
        ([ReportError("HTTP 500", status=500)], "backend-error"),
        ([], "describe-loop"),  # DESCRIBE for ever
    ],
)
def test_exchanges_are_counted_by_outcome(answers: list[Any], outcome: str) -> None:
    metrics = WebhookMetrics()
    ex = Exchange(scripted(*answers), budget_s=2.0, ranges=Ranges(), metrics=metrics)
    log = logging.LoggerAdapter(logging.getLogger("test"), {})
    ex.run(review_uid="r", app_id="JOB-1", pod=admission_pod(), index=0, log=log)
    got = {o: count(metrics, "servo_webhook_exchanges_total", outcome=o) for o in EXCHANGE_OUTCOMES}
    assert got == {o: (1 if o == outcome else 0) for o in EXCHANGE_OUTCOMES}


def test_an_exchange_out_of_time_is_counted() -> None:
    metrics = WebhookMetrics()
    now = [0.0]

    def slow(event: Event, timeout_s: float) -> Any:
        now[0] += timeout_s  # the backend took all the time it was given
        return {"cmd": "DESCRIBE"}

    ex = Exchange(slow, budget_s=2.0, ranges=Ranges(), clock=lambda: now[0], metrics=metrics)
    log = logging.LoggerAdapter(logging.getLogger("test"), {})
    assert ex.run(review_uid="r", app_id="J", pod=admission_pod(), index=0, log=log) is None
    assert count(metrics, "servo_webhook_exchanges_total", outcome="out-of-time") == 1


class BrokenMetrics(WebhookMetrics):
    def reviewed(self, result: str, seconds: float) -> None:
        raise ValueError("metrics are down")


def test_a_review_is_answered_when_the_metrics_fail() -> None:
    cfg = load_config({"POD_NAMESPACES": "default", "OPTUNE_ACCOUNT": "acme"})
    monitor = MonitorSpec("servo-monitor", "mon:test", "http://servo:8080/", native=True)
    hook = Admitter(cfg, monitor=monitor, exchange=None, metrics=BrokenMetrics())
    body = review(admission_pod())
    answer = hook.review(json.dumps(body).encode())

    assert answer["response"]["uid"] == body["request"]["uid"] and decode_patch(answer)
