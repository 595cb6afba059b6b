"""The rig: API emulator, collector, flaky proxy and servo process in one work directory.
It answers what is where (stored, in the outbox, unannotated, guarded), waits until the
servo has settled, stops it, and turns the run into an Outcome.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from servo.collector.server import Collector
from servo.core.pods import GUARD_FINALIZER, REPORTED_ANNOTATION
from servo.report.outbox import OUTBOX_FILE
from servo.store.events import EventStore
from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.faults.jobs import Job, JobDriver
from tests.support.faults.outcome import Outcome, check_measurement
from tests.support.faults.process import ServoProcess
from tests.support.faults.proxy import ALL_FAULTS, FlakyProxy
from tests.support.faults.settings import FAST_ENV, HOST, POD_GRACE_S, TOKEN, wait_until


class Rig:
    """Emulator + collector + flaky proxy + the servo process, in one work directory."""

    def __init__(
        self,
        workdir: Path,
        *,
        seed: int = 0,
        guard: bool = False,
        fault_rate: float = 0.0,
        faults: Iterable[str] = ALL_FAULTS,
        latency_s: tuple[float, float] = (0.0, 0.0),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.seed = seed
        self.emu = KubeEmulator(bookmark_interval_s=0.2).start()
        self.store = EventStore(workdir / "collector.db")
        self.collector = Collector(self.store, frozenset({TOKEN}), bind=HOST, port=0).start()
        self.proxy = FlakyProxy(
            self.collector.url,
            seed=seed,
            fault_rate=fault_rate,
            faults=faults,
            latency_s=latency_s,
        ).start()
        self.outbox_dir = workdir / "outbox"
        servo_env = {
            **FAST_ENV,
            "OPTUNE_URL": self.proxy.url_template(),
            "OPTUNE_OUTBOX_DIR": str(self.outbox_dir),
            **({"OPTUNE_FINALIZER_GUARD": "true"} if guard else {}),
            **(env or {}),
        }
        kubeconfig = self.emu.write_kubeconfig(workdir / "kubeconfig")
        self.servo = ServoProcess(kubeconfig, servo_env, workdir)
        self.driver = JobDriver(self.emu, seed, guard=guard)
        self.started = time.monotonic()

    def close(self) -> None:
        self.servo.close()
        self.proxy.stop()
        self.collector.stop()
        self.store.close()
        self.emu.stop()

    # --- what is where ---------------------------------------------------------------------

    def stored(self, event: str = "MEASUREMENT") -> list[Any]:
        return self.store.events(event=event)

    def stored_uids(self) -> Counter[str]:
        return Counter(e.pod_uid for e in self.stored() if e.pod_uid)

    def outbox_ids(self) -> set[str]:
        path = self.outbox_dir / OUTBOX_FILE
        if not path.exists():
            return set()
        db = sqlite3.connect(str(path), timeout=10.0)
        try:
            # Events still waiting; delivered ones stay as tombstones (delivered_at set).
            rows = db.execute("SELECT event_id FROM outbox WHERE delivered_at IS NULL")
            return {r[0] for r in rows}
        except sqlite3.OperationalError:  # the servo has not created the table yet
            return set()
        finally:
            db.close()

    def unannotated(self) -> list[str]:
        """Pods of the run still there without the reported mark."""
        pods = self.driver.pods().values()
        return sorted(
            p["metadata"]["name"]
            for p in pods
            if REPORTED_ANNOTATION not in (p["metadata"].get("annotations") or {})
        )

    def guarded(self) -> list[str]:
        """Pods of the run still carrying the guard finalizer."""
        return sorted(
            p["metadata"]["name"]
            for p in self.driver.pods().values()
            if GUARD_FINALIZER in (p["metadata"].get("finalizers") or [])
        )

    def state(self) -> str:
        stored = self.stored_uids()
        missing = [j.name for j in self.driver.jobs.values() if j.uid not in stored]
        return (
            f"stored {len(stored)}/{len(self.driver.jobs)} (missing e.g. {missing[:5]}), "
            f"outbox {len(self.outbox_ids())}, unannotated {len(self.unannotated())}, "
            f"guarded {len(self.guarded())}, servo alive {self.servo.alive}; "
            f"servo log tail:\n{self.servo.tail()}"
        )

    # --- waiting and counting --------------------------------------------------------------

    def settle(
        self,
        expect: Iterable[Job] | None = None,
        *,
        timeout_s: float = 60,
        annotated: bool = True,
    ) -> None:
        """Wait until every expected job's MEASUREMENT is stored, the outbox is empty, and
        (`annotated`) every surviving job pod carries the reported mark."""
        want = {j.uid for j in (self.driver.jobs.values() if expect is None else expect)}

        def settled() -> bool:
            if not want <= set(self.stored_uids()):
                return False
            if self.outbox_ids():
                return False
            return not (annotated and self.unannotated())

        wait_until(settled, timeout_s, "the servo to settle", self.state)

    def stop_servo(self) -> None:
        """SIGTERM with the backend up: exit 0, promptly."""
        code, seconds = self.servo.terminate()
        assert code == 0, f"servo exited {code}: {self.servo.tail()}"
        assert seconds < POD_GRACE_S, f"servo took {seconds:.1f} s to stop"

    def outcome(self, scenario: str, *, known_lost: Iterable[Job] = ()) -> Outcome:
        jobs = self.driver.jobs
        rows: dict[str, list[Any]] = {}
        unexpected = 0
        for e in self.stored():
            if e.pod_uid in jobs:
                rows.setdefault(e.pod_uid, []).append(e)
            else:
                unexpected += 1
        wrong = [
            w
            for uid, es in rows.items()
            for e in es
            if (w := check_measurement(jobs[uid], e.body)) is not None
        ]
        wire = [r for r in self.proxy.records if r.event == "MEASUREMENT"]
        return Outcome(
            scenario=scenario,
            jobs=len(jobs),
            stored=len(rows),
            lost=len(jobs) - len(rows),
            duplicated=sum(len(es) - 1 for es in rows.values()),
            deliveries=sum(1 for r in wire if r.forwarded is not None and 200 <= r.forwarded < 300),
            attempts=len(wire),
            seconds=round(time.monotonic() - self.started, 1),
            known_lost=len(list(known_lost)),
            lost_uids=frozenset(set(jobs) - set(rows)),
            wrong=wrong,
            unexpected=unexpected,
            unannotated=self.unannotated(),
            errors=self.servo.errors(),
            kills=self.servo.kills,
        )


@contextmanager
def rig(workdir: Path, **kwargs: Any) -> Iterator[Rig]:
    workdir.mkdir(parents=True, exist_ok=True)
    r = Rig(workdir, **kwargs)
    try:
        yield r
    finally:
        r.close()
