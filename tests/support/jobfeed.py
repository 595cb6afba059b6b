"""The servo's handling of watch events without its threads: what the watch and memory benches
drive. One place builds the servo for them (as the leader, no receiver, the reporter's workers
not started), so the benches use what the product offers per event and nothing more.
"""

from __future__ import annotations

import threading

from kubernetes.client import ApiClient

from servo.core.tracker import Tracker
from servo.kube.client import KubeClient
from servo.report.reporter import Reporter
from servo.run.app import Servo
from servo.system.config import Config
from servo.watch.loop import WatchEvent


class JobFeed:
    """Watch events in, the tracker's due measurements queued on `reporter` (not sent)."""

    def __init__(self, cfg: Config, api: ApiClient) -> None:
        self._cfg = cfg
        self._servo = Servo(cfg, api, with_receiver=False)
        self._servo.leading.set()  # report, as the leader (or without leader election) does
        self._stop = threading.Event()

    @property
    def kube(self) -> KubeClient:
        """The API client the servo built (it decides whether pods are decoded whole)."""
        return self._servo.kube

    @property
    def reporter(self) -> Reporter:
        """The servo's reporter (its workers are not started: events wait in its queue)."""
        return self._servo.reporter

    def tracker(self) -> Tracker:
        """A new tracker as the servo makes one per watched scope."""
        return Tracker(stats_wait_s=self._cfg.stats.wait_s)

    def handle(self, tracker: Tracker, event: WatchEvent) -> None:
        """One watch event through the servo's handling, into `tracker`."""
        self._servo.handle(tracker, event, self._stop)
