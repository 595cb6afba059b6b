"""/metrics, /healthz and /readyz of a running servo, over real HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.fakes.backend import RecordingBackend
from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.harness import RunningServo, run_job, wait_measured
from tests.support.helpers import job_pod


def base(servo: RunningServo) -> str:
    ops = servo.servo.ops
    assert ops is not None
    return f"http://127.0.0.1:{ops.port}"


def scrape(servo: RunningServo) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = requests.get(base(servo) + "/metrics", timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def test_metrics_count_jobs_reports_and_the_outbox(
    tmp_path: Path, emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    servo = start_servo(
        POD_NAMESPACES="default,batch",
        OPTUNE_METRICS_PER_APP="true",
        OPTUNE_OUTBOX_DIR=str(tmp_path / "outbox"),
    )
    run_job(emu, job_pod("ok-1", jobid="A"))
    run_job(emu, job_pod("ok-2", jobid="A"), exit_code=1)
    emu.create_pod(job_pod("never", namespace="batch", jobid="B"))
    emu.delete_pod("batch", "never", finalize=True)
    wait_measured(backend, 3)
    assert emu.wait_for(lambda: servo.servo.reporter.counts.sent >= 4)
    m = scrape(servo)
    ns = (("namespace", "default"),)
    assert m[("servo_jobs_measured_total", (*ns, ("outcome", "measured")))] == 2
    assert m[("servo_jobs_measured_total", (("namespace", "batch"), ("outcome", "failed")))] == 1
    assert m[("servo_jobs_seen_total", ns)] == 2
    assert m[("servo_job_duration_seconds_count", ns)] == 2
    assert m[("servo_job_duration_seconds_bucket", (("le", "7200.0"), *ns))] == 2  # 5722 s
    assert m[("servo_job_duration_seconds_bucket", (("le", "3600.0"), *ns))] == 0
    assert m[("servo_watch_lists_total", ns)] == 1
    assert m[("servo_reports_total", (("result", "sent"),))] >= 4
    assert m[("servo_outbox_depth", ())] == 0
    assert m[("servo_job_last_value", (("app_id", "A"), ("metric", "duration")))] == 5722


def test_probes(emu: KubeEmulator, start_servo: Any) -> None:
    servo = start_servo(OPTUNE_WATCH_IDLE_TIMEOUT="1")
    health = requests.get(base(servo) + "/healthz", timeout=5)
    assert health.status_code == 200 and all(health.json()["loops"].values())
    ready = requests.get(base(servo) + "/readyz", timeout=5)
    assert ready.status_code == 200, ready.json()
    assert ready.json()["scopes"] == {"default": "current", "batch": "current"}
    assert requests.get(base(servo) + "/nope", timeout=5).status_code == 404
    emu.stop()  # the API server goes away: no contact for longer than twice the idle timeout
    assert emu.wait_for(
        lambda: requests.get(base(servo) + "/readyz", timeout=5).status_code == 503, 15
    )
    body = requests.get(base(servo) + "/readyz", timeout=5).json()
    assert "no answer from the API server" in body["scopes"]["default"]
    assert requests.get(base(servo) + "/healthz", timeout=5).status_code == 200  # still alive
