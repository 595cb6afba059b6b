"""Figures out of physical bounds, through the real servo: the bad figure is dropped and named,
the pod is still reported (never lost to an exception in metrics or logging)."""

from __future__ import annotations

import json
from typing import Any

from tests.support.fakes.backend import RecordingBackend
from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.harness import wait_measured
from tests.support.statskit import (
    STATS,
    end_monitor,
    ended_job,
    finish_job,
    monitored_job,
    post,
    start_job,
    token_for,
)

HUGE = 2**1030  # a JSON integer Python reads exactly, far above any float


def test_a_figure_above_2_1024_in_the_termination_message_still_reports_the_pod(
    emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    start_servo(OPTUNE_STATS_WAIT="20")
    start_job(emu, monitored_job("huge"))
    v1 = {**STATS, "v": 1, "max_memory": HUGE}
    finish_job(emu, "huge", monitor_message=json.dumps(v1))
    [m] = wait_measured(backend, 1)
    metrics = m.param["metrics"]
    # v1 stats are pod totals: the peak would be pod_max_memory; it is dropped, the CPU kept.
    assert "duration" in metrics and "pod_max_memory" not in metrics
    assert metrics["pod_cpu_time"]["value"] == STATS["cpu_time"]
    missing = json.loads(m.param["annotations"]["stats_missing"])
    assert missing["pod_max_memory"] == "dropped: not below 2^63"


def test_cpu_seconds_above_cores_times_wall_are_dropped_the_rest_kept(
    emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    start_servo(OPTUNE_STATS_WAIT="20")
    start_job(emu, monitored_job("busy"))
    # The job ran 5722 s (fixture timestamps); 4 cores cannot spend 10^9 CPU seconds in it.
    stats = {**STATS, "cpus": 4, "cpu_time": 1e9, "max_memory": 1 << 20}
    finish_job(emu, "busy", monitor_message=json.dumps(stats))
    [m] = wait_measured(backend, 1)
    metrics = m.param["metrics"]
    assert "cpu_time" not in metrics and metrics["max_memory"]["value"] == 1 << 20
    missing = json.loads(m.param["annotations"]["stats_missing"])
    assert missing["cpu_time"].startswith("dropped: above 4 cores x")


def test_deeply_nested_termination_message_is_ignored_with_a_reason(
    emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    start_servo(OPTUNE_STATS_WAIT="0.5")
    start_job(emu, monitored_job("deep"))
    finish_job(emu, "deep", monitor_message="[" * 100_000 + "]" * 100_000)
    [m] = wait_measured(backend, 1)
    assert "nested too deeply" in m.param["annotations"]["stats"]


def test_a_figure_above_2_1024_in_a_post_still_reports_the_pod(
    emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    servo = start_servo(OPTUNE_STATS_WAIT="20")
    pod = ended_job(emu, servo, "huge-post")
    r = post(
        servo,
        {"id": pod["metadata"]["uid"], "stats": {**STATS, "max_memory": HUGE}},
        token=token_for(emu, pod),
    )
    assert r.status_code == 202
    emu.update_pod("default", "huge-post", lambda p: end_monitor(p, ""))
    [m] = wait_measured(backend, 1)
    assert "max_memory" not in m.param["metrics"] and "cpu_time" in m.param["metrics"]
    assert "2^63" in json.loads(m.param["annotations"]["stats_missing"])["max_memory"]


def test_a_failure_in_metrics_never_loses_the_pods_report(
    emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    servo = start_servo(OPTUNE_STATS_WAIT="0.3")

    def broken(_: Any) -> None:
        raise OverflowError("metrics broke")

    servo.servo.metrics.observe = broken  # type: ignore[method-assign]
    start_job(emu, monitored_job("by-message"))
    finish_job(emu, "by-message", monitor_message=json.dumps(STATS))
    start_job(emu, monitored_job("by-timer"))
    finish_job(emu, "by-timer")  # no stats: the wait timer sends it
    got = {m.param["annotations"]["pod"] for m in wait_measured(backend, 2)}
    assert got == {"by-message", "by-timer"}
    assert servo.servo.scopes[0].thread.is_alive()
