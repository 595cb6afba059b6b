"""A job container killed for memory, through the real servo: the MEASUREMENT says OOMKilled,
with the memory limit it had and its peak at death (what right-sizing needs)."""

from __future__ import annotations

import json
from typing import Any

from tests.support.fakes.backend import RecordingBackend
from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.harness import wait_measured
from tests.support.helpers import set_terminated
from tests.support.statskit import STATS, monitored_job, start_job

JOB_CID = "d" * 64


def test_an_oom_killed_job_is_reported_as_such(
    emu: KubeEmulator, backend: RecordingBackend, start_servo: Any
) -> None:
    start_servo(OPTUNE_STATS_WAIT="20")
    pod = monitored_job("hungry")
    pod["spec"]["containers"][0]["resources"] = {
        "requests": {"memory": "200Mi"},
        "limits": {"memory": "256Mi"},
    }
    start_job(emu, pod)
    peak = (256 << 20) - 4096
    job = {"cpu_time": 1.5, "max_memory": peak, "oom_kills": 1}
    stats = {**STATS, "max_memory": peak, "oom_kills": 1, "containers": {JOB_CID: job}}

    def killed(p: dict[str, Any]) -> None:
        set_terminated(p, exit_code=137, reason="OOMKilled", phase="Failed")
        statuses = p["status"]["containerStatuses"]
        next(s for s in statuses if s["name"] == "job")["containerID"] = f"containerd://{JOB_CID}"
        p["status"]["initContainerStatuses"] = [
            {
                "name": "servo-monitor",
                "state": {"terminated": {"exitCode": 0, "message": json.dumps(stats)}},
            }
        ]

    emu.update_pod("default", "hungry", killed)
    [m] = wait_measured(backend, 1)
    ann, metrics = m.param["annotations"], m.param["metrics"]
    assert ann["reason"] == "OOMKilled" and ann["oom_killed"] == "true"
    assert ann["exitcode"] == "137" and ann["oom_kills"] == "1"
    assert metrics["memory_limit"] == {"value": 256 << 20, "unit": "bytes"}
    assert metrics["max_memory"] == {"value": peak, "unit": "bytes"}
    assert json.loads(ann["containers"])["job"] == {"cpu_time": 1.5, "max_memory": peak}
