"""The servo's handling of watch events without its threads: what the watch and memory benches
drive. One place builds the servo for them (as the leader, no receiver, the reporter's workers
not started), so the benches use what the product offers per event and nothing more.
"""

from __future__ import annotations

import threading

from servo.core.podwire import typed_covers
from servo.core.tracker import Tracker
from servo.kube.client import KubeClient
from servo.report.reporter import Reporter
from servo.run.app import Servo
from servo.system.config import Config
from servo.watch.loop import WatchEvent


class JobFeed:
    """Watch events in, the tracker's due measurements queued on `reporter` (not sent)."""

    def __init__(self, cfg: Config, kube: KubeClient, reporter: Reporter) -> None:
        self._cfg = cfg
        self._servo = Servo(cfg, kube, reporter, with_receiver=False)
        self._servo.leading.set()  # report, as the leader (or without leader election) does
        self._stop = threading.Event()
        # Whether pods must be decoded whole for this app-id query (as the servo decides).
        self.whole_pods = not typed_covers(cfg.app_id)

    def tracker(self) -> Tracker:
        """A new tracker as the servo makes one per watched scope."""
        return Tracker(stats_wait_s=self._cfg.stats.wait_s)

    def handle(self, tracker: Tracker, event: WatchEvent) -> None:
        """One watch event through the servo's handling, into `tracker`."""
        self._servo.handle(tracker, event, self._stop)
