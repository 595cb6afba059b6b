"""PURE: right-size a job from its own recent runs (the interface every reader shares).

A run is one stored MEASUREMENT of an application id: the job-only peak memory and CPU time,
its duration, exit, whether it was OOM-killed, and the resources its job container was given
(the `resources` annotation, Kubernetes quantities). `recommend` turns the recent runs of one
application id into cpu (cores) and memory (bytes) for its next run, with the number of runs it
is based on and a one-line reason; `adjust_param` turns that into the protocol's ADJUST param.
No I/O, no clock: the caller hands in the runs and the policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MIB = 1024**2
GIB = 1024**3


@dataclass(frozen=True, slots=True)
class Given:
    """The resources a run's job container was given; None where it was not set."""

    cpu_request: float | None = None  # cores
    cpu_limit: float | None = None  # cores
    mem_request: int | None = None  # bytes
    mem_limit: int | None = None  # bytes


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What the recommender knows of one run."""

    at_s: float
    exitcode: str  # "" when unknown
    oom_killed: bool
    duration_s: float | None
    cpu_time_s: float | None  # the job's own, monitor excluded
    max_memory: int | None  # the job's own peak, bytes (at death when OOM-killed)
    given: Given = Given()
    # Time the CPU quota held the job back, when the run's cgroup said so.
    throttled_s: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.exitcode == "0" and not self.oom_killed


@dataclass(frozen=True, slots=True)
class Policy:
    """Settings of the recommender (the collector's and `servo measure`'s tables bound them)."""

    window: int = 20  # recent runs looked at
    mem_margin: float = 0.15  # above the largest recent successful peak
    cpu_margin: float = 0.15  # above the cores the job really used
    min_cpu: float = 0.125  # cores
    max_cpu: float = 16.0
    min_mem: int = 128 * MIB
    max_mem: int = 64 * GIB
    # The largest fall per run, as a fraction of what the last run was given.
    max_step_down: float = 0.5
    # After an OOM kill the need is unknown (the peak at death is the limit): step this far up.
    oom_factor: float = 2.0


@dataclass(frozen=True, slots=True)
class Recommendation:
    cpu: float  # cores
    mem: int  # bytes
    runs: int  # runs it is based on
    reason: str  # one line


def recommend(history: Sequence[RunFacts], policy: Policy = Policy()) -> Recommendation | None:
    """The next run's cpu and memory from `history` (oldest first); None with no usable run."""
    raise NotImplementedError("filled in by the recommender's owner")


def given_of(resources: Mapping[str, Any]) -> Given:
    """The `resources` annotation (a container's resources, as JSON) -> Given."""
    raise NotImplementedError("filled in by the recommender's owner")


def adjust_param(rec: Recommendation, component: str) -> dict[str, Any]:
    """The ADJUST param setting `component`'s cpu (cores) and mem (GiB), the Opsani units."""
    settings = {"cpu": {"value": rec.cpu}, "mem": {"value": rec.mem / GIB}}
    return {"state": {"application": {"components": {component: {"settings": settings}}}}}
