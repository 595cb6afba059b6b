"""One watched scope (a namespace, or the whole cluster): its watch, the tracker it feeds and
the thread that runs it. The run loop owns the scopes; the probes read them."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from servo.core.tracker import Tracker
from servo.watch.loop import PodWatch


@dataclass(slots=True)
class Scope:
    watch: PodWatch
    tracker: Tracker
    thread: threading.Thread | None = None
