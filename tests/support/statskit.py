"""A monitored job pod in the API emulator and the monitor's side of the stats channel: the
stats it sends, its projected token (minted by the emulator), its termination message and its
POST to the servo's receiver."""

from __future__ import annotations

import json
from typing import Any

import requests

from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.harness import RunningServo
from tests.support.helpers import job_pod, set_running, set_terminated

STATS: dict[str, Any] = {
    "v": 2,
    "cpus": 4,
    "cgroup": "v1",
    "cgroup_path": "/rsys/fs/cgroup/memory/kubepods/burstable/podx",
    "cpu_time": 3.25,
    "cpu_user": 3.0,
    "cpu_system": 0.25,
    "max_memory": 104_857_600,
    "max_memory_source": "pod-peak-minus-monitor",
    "pod_cpu_time": 3.4,
    "pod_max_memory": 120_000_000,
    "pod_max_memory_source": "memory.max_usage_in_bytes",
    "memory": {"anon": 100_000_000, "file": 4_000_000},
    "monitor_rss": 18_000_000,
    "monitor_max_rss": 19_000_000,
    "missing": {"memory.kernel_stack": "not in v1 memory.stat"},
    "cue": "SIGTERM",
}
AUDIENCE = "servo-stats"


def monitored_job(name: str, *, pod_ip: str = "10.9.9.9") -> Any:
    pod = job_pod(name, jobid=f"APP-{name}")
    pod["spec"]["initContainers"] = [
        {"name": "servo-monitor", "image": "mon:1", "restartPolicy": "Always"}
    ]
    pod["_pod_ip"] = pod_ip
    return pod


def start_job(emu: KubeEmulator, pod: dict[str, Any]) -> dict[str, Any]:
    pod_ip = pod.pop("_pod_ip")
    created = emu.create_pod(pod)
    name = created["metadata"]["name"]

    def running(p: dict[str, Any]) -> None:
        set_running(p)
        p["status"]["podIP"] = pod_ip

    emu.update_pod("default", name, running)
    return created


def token_for(emu: KubeEmulator, pod: dict[str, Any], audience: str = AUDIENCE) -> str:
    """The monitor's projected service-account token, as the kubelet would mount it."""
    return emu.tokens.mint(pod, audience=audience)


def finish_job(
    emu: KubeEmulator, name: str, *, monitor_message: str | None = None, finished: str = ""
) -> None:
    """The job container terminates; with `monitor_message`, the monitor too (\"\" = it left
    no message)."""

    def done(p: dict[str, Any]) -> None:
        pod_ip = p["status"].get("podIP")
        if finished:
            set_terminated(p, finished=finished)
        else:
            set_terminated(p)
        p["status"]["podIP"] = pod_ip
        if monitor_message is not None:
            end_monitor(p, monitor_message)

    emu.update_pod("default", name, done)


def end_monitor(p: dict[str, Any], message: str) -> None:
    p["status"]["initContainerStatuses"] = [
        {"name": "servo-monitor", "state": {"terminated": {"exitCode": 0, "message": message}}}
    ]


def post(servo: RunningServo, body: Any, *, token: str | None, **kw: Any) -> Any:
    receiver = servo.servo.receiver
    assert receiver is not None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers.setdefault("Content-Type", kw.pop("content_type", "application/json"))
    return requests.post(
        f"http://127.0.0.1:{receiver.port}/", data=data, headers=headers, timeout=5
    )


def awaiting(servo: RunningServo) -> bool:
    return bool(servo.servo.scopes[0].tracker.awaiting)


def ended_job(emu: KubeEmulator, servo: RunningServo, name: str, **kw: Any) -> dict[str, Any]:
    """A monitored job whose job container ended; the servo waits for its stats."""
    pod = start_job(emu, monitored_job(name, **kw))
    finish_job(emu, name)
    assert emu.wait_for(lambda: awaiting(servo), 5)
    return pod
