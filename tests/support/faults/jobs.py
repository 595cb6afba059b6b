"""Job pods with known outcomes: JobDriver takes them through their life in the API emulator
as the kubelet and the Job controller would (exit code and duration known per job), and
Background runs a driver in a thread while a scenario injects faults.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from servo.core.pods import GUARD_FINALIZER
from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.faults.settings import NAMESPACE
from tests.support.helpers import job_pod, set_running, set_terminated

JOB_TRACKING = "batch.kubernetes.io/job-tracking"
STARTED_AT = datetime(2024, 5, 14, 9, 12, 9, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Job:
    index: int
    name: str
    uid: str
    app_id: str
    exit_code: int
    duration_s: int

    @property
    def event_id(self) -> str:
        return f"{self.uid}:MEASUREMENT"


def _stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class JobDriver:
    """Takes job pods through Pending -> Running -> terminated in the emulator, as the kubelet
    would, and deletes them as the Job controller would (also removing its job-tracking
    finalizer). Exit codes (1 in five fails) and durations (30 s + index) are known per job."""

    def __init__(
        self, emu: KubeEmulator, seed: int, *, guard: bool = False, prefix: str = "job"
    ) -> None:
        self.emu = emu
        self.guard = guard
        self.prefix = prefix
        self._rng = random.Random(f"jobs-{seed}")
        self.jobs: dict[str, Job] = {}
        self.done = 0  # jobs taken through their whole life so far
        self._lock = threading.Lock()

    def create(self) -> Job:
        with self._lock:
            i = len(self.jobs)
            job = Job(
                index=i,
                name=f"{self.prefix}-{i:04d}",
                uid=str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
                app_id=f"APP-{i % 7}",
                exit_code=1 if self._rng.random() < 0.2 else 0,
                duration_s=30 + i,
            )
            self.jobs[job.uid] = job
        pod = job_pod(job.name, namespace=NAMESPACE, jobid=job.app_id, uid=job.uid)
        finalizers = pod["metadata"].setdefault("finalizers", [])
        if self.guard:
            # As the webhook (or the job template) adds it at admission.
            finalizers.append(GUARD_FINALIZER)
        self.emu.create_pod(pod)
        return job

    def start(self, job: Job) -> None:
        self.emu.update_pod(NAMESPACE, job.name, set_running)

    def finish(self, job: Job) -> None:
        finished = _stamp(STARTED_AT + timedelta(seconds=job.duration_s))

        def terminate(pod: dict[str, Any]) -> None:
            set_terminated(
                pod,
                started=_stamp(STARTED_AT),
                finished=finished,
                exit_code=job.exit_code,
                reason="Completed" if job.exit_code == 0 else "Error",
            )

        self.emu.update_pod(NAMESPACE, job.name, terminate)

    def delete(self, job: Job) -> None:
        """Delete as a user or the TTL controller would; the Job controller then drops its
        job-tracking finalizer. Without the guard the pod is gone at once; with it, it waits
        (deletionTimestamp set) until the servo removes servo.optune.io/measure."""
        if not self.guard:
            self.emu.delete_pod(NAMESPACE, job.name, finalize=True)
            return
        self.emu.delete_pod(NAMESPACE, job.name)

        def drop_tracking(pod: dict[str, Any]) -> None:
            meta = pod["metadata"]
            meta["finalizers"] = [f for f in meta.get("finalizers") or [] if f != JOB_TRACKING]

        self.emu.update_pod(NAMESPACE, job.name, drop_tracking)

    def run(self, count: int, *, delete: bool = False, pace_s: float = 0.0) -> list[Job]:
        """`count` jobs, one after the other, each through its whole life (and deleted right
        after it finished when `delete`); `pace_s` between jobs spreads them out in time."""
        out = []
        for _ in range(count):
            job = self.create()
            self.start(job)
            self.finish(job)
            if delete:
                self.delete(job)
            out.append(job)
            with self._lock:
                self.done += 1
            if pace_s:
                time.sleep(pace_s)
        return out

    def pods(self) -> dict[str, dict[str, Any]]:
        """The driver's pods still in the emulator, by uid."""
        return {
            p["metadata"]["uid"]: p for p in self.emu.pods() if p["metadata"]["uid"] in self.jobs
        }


class Background:
    """Run a function in a thread; `join()` re-raises what it raised."""

    def __init__(self, fn: Callable[[], Any], name: str = "driver") -> None:
        self._error: BaseException | None = None

        def target() -> None:
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - handed to join()
                self._error = e

        self.thread = threading.Thread(target=target, name=name, daemon=True)
        self.thread.start()

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def join(self, timeout_s: float = 120) -> None:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "background work did not finish"
        if self._error is not None:
            raise self._error
