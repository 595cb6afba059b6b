"""The guard finalizer's safety valve: a guarded job pod that waited too long for its
measurement is let go, whether its event (`PodEvents`) or the timer (`WaitTimer`) sees it first.
"""

from __future__ import annotations

import logging
import time

from servo.core.models import PodFacts
from servo.core.patches import valve_due
from servo.run.pod_marks import Marks
from servo.system.logs import pod_logger

logger = logging.getLogger(__name__)


class Valve:
    def __init__(self, marks: Marks, *, max_age_s: float) -> None:
        self._marks = marks
        self.max_age_s = max_age_s

    def due(self, facts: PodFacts, now_s: float | None = None) -> bool:
        return valve_due(facts, time.time() if now_s is None else now_s, self.max_age_s)

    def open(self, facts: PodFacts) -> None:
        pod_logger(logger, facts).warning(
            "releasing a job pod that waited too long for its measurement",
            extra={"max_age_s": self.max_age_s},
        )
        self._marks.release(facts, "safety valve")
