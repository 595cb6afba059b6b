"""The exact check: Outcome counts what the collector stored per job pod uid, and
check_measurement compares a stored MEASUREMENT with what its job did. The collector stores
each event id once, so a repeated delivery never shows as a second row; a MEASUREMENT under
another id for the same pod would. `deliveries` counts MEASUREMENT requests that reached the
collector (repeats included), `attempts` every MEASUREMENT request at the proxy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.support.faults.jobs import Job


@dataclass
class Outcome:
    """What one scenario's collector stored, per job pod uid."""

    scenario: str
    jobs: int
    stored: int  # job pods with at least one stored MEASUREMENT
    lost: int  # job pods with none
    duplicated: int  # stored MEASUREMENTs beyond the first per pod
    deliveries: int  # MEASUREMENT requests that reached the collector, repeats included
    attempts: int  # MEASUREMENT requests at the proxy, failed ones included
    seconds: float
    known_lost: int = 0  # losses the scenario expects (pods gone while nobody could see them)
    lost_uids: frozenset[str] = frozenset()
    wrong: list[str] = field(default_factory=list)  # stored, but not what the job did
    unexpected: int = 0  # MEASUREMENTs naming no job of this run
    unannotated: list[str] = field(default_factory=list)  # surviving pods without the mark
    errors: list[str] = field(default_factory=list)  # the servo's ERROR lines
    kills: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (
            self.lost == self.known_lost
            and self.duplicated == 0
            and not self.wrong
            and self.unexpected == 0
            and not self.unannotated
        )


def check_measurement(job: Job, body: Mapping[str, Any]) -> str | None:
    """None when a stored MEASUREMENT is exactly what the job did, else what differs."""
    param = body.get("param") or {}
    ann = param.get("annotations") or {}
    duration = ((param.get("metrics") or {}).get("duration") or {}).get("value")
    problems = []
    if body.get("id") != job.event_id:
        problems.append(f"id {body.get('id')!r}")
    if param.get("status") == "failed":
        problems.append(f"failed: {param.get('message')!r}")
    if ann.get("pod") != job.name:
        problems.append(f"pod {ann.get('pod')!r}")
    if ann.get("exitcode") != str(job.exit_code):
        problems.append(f"exitcode {ann.get('exitcode')!r} != {job.exit_code}")
    if duration != job.duration_s:
        problems.append(f"duration {duration!r} != {job.duration_s}")
    return f"{job.name}: {', '.join(problems)}" if problems else None
