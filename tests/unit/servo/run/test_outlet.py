"""Where a due measurement goes: held while standing by, submitted once this replica leads."""

from __future__ import annotations

import threading

from kubernetes import client as k8s
from msgspec.structs import replace

from servo.core.models import ContainerState, PodFacts, PodRef
from servo.core.pod_measurement import failure
from servo.kube.client import KubeClient
from servo.report.reporter import Reporter
from servo.run.app import StopRequest
from servo.run.metrics import ServoMetrics
from servo.run.outlet import Outlet, measurement_event
from servo.run.pod_marks import Marks, PodMarks
from servo.system.config import load_config

FACTS = PodFacts(
    uid="u1",
    namespace="ns",
    name="p1",
    app_id="A",
    monitor="servo-monitor",
    restart_policy="Never",
    state=ContainerState.TERMINATED,
    started_s=1.0,
)


def outlet() -> tuple[Outlet, Reporter]:
    cfg = load_config(
        {"OPTUNE_URL": "http://127.0.0.1:9/{acct}/{app_id}", "OPTUNE_ACCOUNT": "acme"}
    )
    # Workers never started: what is submitted stays queued, to be counted.
    reporter = Reporter(cfg.report)
    # Never called here: no pod is guarded.
    kube = KubeClient(k8s.ApiClient(k8s.Configuration(host="http://127.0.0.1:9")))
    out = Outlet(
        reporter,
        ServoMetrics(),
        Marks(PodMarks(kube)),
        leading=threading.Event(),
        account="acme",
        guarded=False,
    )
    return out, reporter


def test_standing_by_holds_until_leading_then_hello_and_the_held_go_out() -> None:
    out, reporter = outlet()
    out.report(failure(FACTS, "gone", reason="Deleted"))
    out.report(failure(replace(FACTS, uid="u2"), "gone", reason="Deleted"))
    out.seen_reported("u2")  # the leader reported that one
    assert reporter.depth == 0
    out.lead()
    assert reporter.depth == 2  # HELLO and u1
    out.report(failure(replace(FACTS, uid="u3"), "gone", reason="Deleted"))
    assert reporter.depth == 3
    out.follow()
    out.lead()  # leading again: no second HELLO
    assert reporter.depth == 3


def test_the_event_carries_its_pod() -> None:
    event = measurement_event(failure(FACTS, "gone", reason="Deleted"))
    assert event.pod == PodRef("ns", "p1", "u1")
    assert "pod" not in event.body()


def test_a_stop_request_says_why() -> None:
    stop = StopRequest()
    assert stop.reason == "exit" and not stop.is_set()
    stop.request("SIGTERM")
    assert stop.is_set() and stop.reason == "SIGTERM"
