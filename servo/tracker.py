"""Pure state of one watch scope: which job pods are pending and which were already reported.

The watch loop feeds it events; it answers with the measurement to send, at most once per pod
uid. It keeps a PodFacts record per unfinished job pod and only the uid of reported ones, never
the pod object. Reported uids are forgotten when the pod is deleted or missing from a relist.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from servo.models import Measurement, PodFacts
from servo.pods import (
    VANISHED_MESSAGE,
    failure,
    is_finished,
    measurement_from_facts,
    measurement_never_started,
    measurement_on_delete,
    never_started,
)


@dataclass(slots=True)
class Tracker:
    """What was seen and reported in one watch scope (a namespace, or all of them)."""

    pending: dict[str, PodFacts] = field(default_factory=dict)
    reported: set[str] = field(default_factory=set)

    def observe(self, event_type: str, facts: PodFacts) -> Measurement | None:
        """Take an ADDED/MODIFIED/DELETED job pod; return its measurement when it is due."""
        uid = facts.uid
        if uid in self.reported:
            if event_type == "DELETED":
                self.reported.discard(uid)
            return None
        if event_type == "DELETED":
            self.pending.pop(uid, None)
            return measurement_on_delete(facts)
        if is_finished(facts):
            return self._done(facts, measurement_from_facts(facts))
        if never_started(facts):
            return self._done(facts, measurement_never_started(facts))
        self.pending[uid] = facts
        return None

    def _done(self, facts: PodFacts, measurement: Measurement) -> Measurement:
        self.pending.pop(facts.uid, None)
        self.reported.add(facts.uid)
        return measurement

    def forget(self, uid: str) -> None:
        """Drop a pod that stopped being a job pod (its app id went away)."""
        self.pending.pop(uid, None)

    def relisted(self, listed_uids: Iterable[str]) -> list[Measurement]:
        """After a full list: pods we knew that are gone were deleted while nobody watched."""
        present = set(listed_uids)
        vanished = [f for uid, f in self.pending.items() if uid not in present]
        for facts in vanished:
            del self.pending[facts.uid]
        self.reported &= present
        return [failure(f, VANISHED_MESSAGE, reason="Deleted") for f in vanished]

    def __len__(self) -> int:
        return len(self.pending) + len(self.reported)
