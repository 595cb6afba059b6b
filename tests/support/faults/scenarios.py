"""The fault scenarios, shared by tests/faults/test_faults.py (CI-sized job counts) and
bench/bench_faults.py (bigger ones, a summary table). Each is a function
`(workdir, jobs=..., seed=...) -> Outcome` that sets up its own rig, drives the jobs and the
faults, waits until the servo has settled (every expected measurement stored, its outbox
empty, every surviving job pod annotated), stops it with SIGTERM and counts what was stored.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.faults.jobs import Background
from tests.support.faults.outcome import Outcome
from tests.support.faults.proxy import FAULTS_AFTER
from tests.support.faults.rig import Rig, rig
from tests.support.faults.settings import NAMESPACE, POD_GRACE_S, budget, wait_until

POSTPONED = "report postponed; it stays in the outbox"


def backend_down(workdir: Path, *, jobs: int = 200, seed: int = 0) -> Outcome:
    """The backend is not listening while every job finishes; then it comes back."""
    with rig(workdir, seed=seed) as r:
        r.servo.start()
        wait_until(lambda: r.stored("HELLO"), 15, "HELLO", r.state)
        r.proxy.down()
        ran = r.driver.run(jobs)
        ids = {j.event_id for j in ran}
        wait_until(lambda: ids <= r.outbox_ids(), budget(jobs), "every job in the outbox", r.state)
        # The outage outlasts a retry series (OPTUNE_SEND_DEADLINE): sends are postponed.
        wait_until(lambda: r.servo.said(POSTPONED), 30, "a postponed send", r.state)
        stored_while_down = len(r.stored())
        r.proxy.up()
        r.settle(timeout_s=budget(jobs))
        r.stop_servo()
        out = r.outcome("backend-down")
        out.notes["stored_while_down"] = stored_while_down
        out.notes["postponed"] = r.servo.said(POSTPONED)
        return out


def flaky_backend(workdir: Path, *, jobs: int = 100, seed: int = 0, rate: float = 0.3) -> Outcome:
    """The backend answers 500/503, times out or resets (before or after storing) at random."""
    with rig(workdir, seed=seed, fault_rate=rate) as r:
        r.servo.start()
        r.driver.run(jobs)
        r.settle(timeout_s=budget(jobs, 0.6))
        r.proxy.fault_rate = 0.0  # a clean GOODBYE, so the exit is prompt
        r.stop_servo()
        out = r.outcome("flaky-backend")
        faults = Counter(rec.fault for rec in r.proxy.records if rec.fault)
        out.notes["faults"] = dict(sorted(faults.items()))
        # Each of these reached the collector, but the servo never saw its 2xx: it must send
        # that MEASUREMENT again (a repeat the collector stores once).
        out.notes["after_faults_on_measurements"] = sum(
            1 for rec in r.proxy.records if rec.event == "MEASUREMENT" and rec.fault in FAULTS_AFTER
        )
        return out


def servo_killed(workdir: Path, *, jobs: int = 100, seed: int = 0, kills: int = 4) -> Outcome:
    """SIGKILL at random points (seeded: after a random job, plus a random delay) while the
    jobs run; each time the servo is down a random while, then restarted on the same outbox.
    The backend answers after 0-100 ms, so kills also land between storing and the 2xx."""
    rng = random.Random(f"kills-{seed}")
    with rig(workdir, seed=seed, latency_s=(0.0, 0.1)) as r:
        r.servo.start()
        points = sorted(rng.sample(range(jobs // 10, jobs * 9 // 10), kills))
        pace_s = 0.08
        driver = Background(lambda: r.driver.run(jobs, pace_s=pace_s))
        for point in points:
            wait_until(lambda p=point: r.driver.done >= p, 120, f"job {point}")  # type: ignore[misc]
            time.sleep(rng.uniform(0.0, 0.3))  # a random moment, not a synchronisation
            r.servo.kill()
            time.sleep(rng.uniform(0.0, 0.5))  # jobs go on finishing while it is down
            r.servo.start()
        driver.join()
        r.settle(timeout_s=budget(jobs))
        r.stop_servo()
        out = r.outcome("servo-killed")
        out.notes["kill_points"] = points
        return out


def api_chaos(workdir: Path, *, jobs: int = 100, seed: int = 0) -> Outcome:
    """Watch streams dropped, 410s (compaction, expired watches), 5xx bursts on list and watch,
    at random moments while the jobs run."""
    rng = random.Random(f"chaos-{seed}")
    with rig(workdir, seed=seed) as r:
        r.servo.start()
        driver = Background(lambda: r.driver.run(jobs, pace_s=0.03))
        done: Counter[str] = Counter()
        while driver.alive:
            time.sleep(rng.uniform(0.05, 0.3))  # a random moment
            what = rng.choice(("drop", "compact", "expire", "burst", "drop-after"))
            done[what] += 1
            if what == "drop":
                r.emu.drop_watches()
            elif what == "compact":
                r.emu.compact()
                r.emu.drop_watches()  # the reconnect from the old version gets 410
            elif what == "expire":
                r.emu.expire_next_watch(as_http=rng.random() < 0.5)
                r.emu.drop_watches()
            elif what == "burst":
                verb = rng.choice(("list", "watch"))
                r.emu.fail_next(rng.randint(2, 6), rng.choice((500, 503)), verb=verb)
                r.emu.drop_watches()
            else:
                r.emu.drop_watch_after(rng.randint(1, 5))
        driver.join()
        r.settle(timeout_s=budget(jobs))
        r.stop_servo()
        out = r.outcome("api-chaos")
        out.notes["chaos"] = dict(sorted(done.items()))
        out.notes["relists"] = r.servo.said("listed pods")
        out.notes["expired"] = r.servo.said("watch expired (410 Gone), listing again")
        return out


def deleted_after_finish(workdir: Path, *, jobs: int = 100, seed: int = 0) -> Outcome:
    """No guard, servo up: every pod is deleted right after its job container terminated."""
    with rig(workdir, seed=seed) as r:
        r.servo.start()
        r.driver.run(jobs, delete=True)
        r.settle(timeout_s=budget(jobs))
        r.stop_servo()
        out = r.outcome("deleted-after-finish")
        out.notes["left_in_emulator"] = len(r.driver.pods())
        return out


def deleted_while_down(
    workdir: Path, *, jobs: int = 90, seed: int = 0, guard: bool = False
) -> Outcome:
    """A third of the jobs run and are deleted right after finishing with the servo up, a
    third while it is SIGKILLed, the rest after its restart. Without the guard the middle
    third cannot be measured: the known loss. With it they wait for the servo, are measured
    after the restart and then released: nothing lost, no pod left with the finalizer."""
    third = jobs // 3
    with rig(workdir, seed=seed, guard=guard) as r:
        r.servo.start()
        before = r.driver.run(third, delete=True)
        r.settle(before, timeout_s=budget(jobs, 0.5))
        # Measured, and (guard) released: gone before the kill.
        wait_until(lambda: not r.driver.pods(), budget(jobs), "the first third gone", r.state)
        r.servo.kill()
        while_down = r.driver.run(third, delete=True)
        waiting = len(r.guarded())
        r.servo.start()
        after = r.driver.run(jobs - 2 * third, delete=True)
        expect = before + after + (while_down if guard else [])
        r.settle(expect, timeout_s=budget(jobs, 0.5))
        if guard:
            wait_until(lambda: not r.driver.pods(), budget(jobs), "every guarded pod gone", r.state)
        r.stop_servo()
        name = "guard-deleted-while-down" if guard else "deleted-while-down (no guard)"
        out = r.outcome(name, known_lost=() if guard else while_down)
        out.notes["deleted_while_down"] = [j.uid for j in while_down]
        out.notes["waiting_while_down"] = waiting
        out.notes["left_in_emulator"] = len(r.driver.pods())
        return out


def backlog_refused(r: Rig, jobs: int) -> set[str]:
    """Start the servo, refuse every send once HELLO is stored, and run `jobs` jobs; returns
    their event ids once all of them wait in the outbox."""
    r.servo.start()
    wait_until(lambda: r.stored("HELLO"), 15, "HELLO", r.state)
    r.proxy.refuse = True
    ran = r.driver.run(jobs)
    ids = {j.event_id for j in ran}
    wait_until(lambda: ids <= r.outbox_ids(), budget(jobs), "every job in the outbox", r.state)
    return ids


def graceful_shutdown(workdir: Path, *, jobs: int = 10, seed: int = 0) -> Outcome:
    """SIGTERM while the backend answers 503 to everything: GOODBYE tried, exit 0 within the
    pod's grace period, the measurements left in the outbox; a restart with the backend back
    delivers them, once each."""
    with rig(workdir, seed=seed) as r:
        ids = backlog_refused(r, jobs)
        code, seconds = r.servo.terminate(timeout_s=POD_GRACE_S + 30)
        left = r.outbox_ids()
        goodbyes = sum(1 for rec in r.proxy.records if rec.event == "GOODBYE")
        stored_before = len(r.stored())
        r.proxy.refuse = False
        r.servo.start()
        r.settle(timeout_s=budget(jobs))
        r.stop_servo()
        out = r.outcome("graceful-shutdown")
        out.notes.update(
            exit_code=code,
            exit_seconds=round(seconds, 1),
            goodbye_attempts=goodbyes,
            left_in_outbox=left,
            expected_in_outbox=ids,
            stored_before_restart=stored_before,
            goodbye_stored=len(r.stored("GOODBYE")),
        )
        return out


def backlog_restart(workdir: Path, *, jobs: int = 30, seed: int = 0) -> Outcome:
    """The backend refuses everything while the jobs finish; the servo is SIGKILLed with its
    measurements in the outbox and restarted with the backend back. Each should go over the
    wire once: none was ever delivered before, so there is nothing a repeat could recover."""
    with rig(workdir, seed=seed) as r:
        backlog_refused(r, jobs)
        r.servo.kill()
        r.proxy.refuse = False
        r.servo.start()
        r.settle(timeout_s=budget(jobs))
        r.stop_servo()
        out = r.outcome("backlog-restart")
        sent = Counter(
            rec.uid
            for rec in r.proxy.records
            if rec.event == "MEASUREMENT" and rec.forwarded == 200
        )
        out.notes["sent_twice"] = sorted(
            r.driver.jobs[uid].name for uid, n in sent.items() if n > 1 and uid in r.driver.jobs
        )
        return out


def patch_outage(workdir: Path, *, jobs: int = 20, seed: int = 0, guard: bool = False) -> Outcome:
    """The API server answers every pod patch with 503 (an apiserver or etcd hiccup) while the
    jobs finish (with the guard: and are deleted right after), then answers again. The marks
    must still land: every pod annotated (no guard), or released and gone (guard)."""
    with rig(workdir, seed=seed, guard=guard) as r:
        r.servo.start()
        r.emu.deny("patch", NAMESPACE, status=503)
        r.driver.run(jobs, delete=guard)
        r.settle(timeout_s=budget(jobs), annotated=False)  # measured and delivered
        r.emu.allow("patch", NAMESPACE)
        marks: dict[str, Any] = {}
        try:
            if guard:
                wait_until(lambda: not r.driver.pods(), 10, "every guarded pod released", r.state)
            else:
                wait_until(lambda: not r.unannotated(), 10, "every pod annotated", r.state)
        except AssertionError as e:
            marks["timeout"] = str(e).split(";")[0]
        marks["guarded"] = r.guarded()
        marks["unannotated"] = r.unannotated()
        r.stop_servo()
        out = r.outcome("patch-503-outage (guard)" if guard else "patch-503-outage")
        out.notes.update(marks)
        return out


SCENARIOS: dict[str, Callable[..., Outcome]] = {
    "backend-down": backend_down,
    "flaky-backend": flaky_backend,
    "servo-killed": servo_killed,
    "api-chaos": api_chaos,
    "deleted-after-finish": deleted_after_finish,
    "deleted-while-down": deleted_while_down,
    "guard-deleted-while-down": lambda workdir, **kw: deleted_while_down(workdir, guard=True, **kw),
    "graceful-shutdown": graceful_shutdown,
    "backlog-restart": backlog_restart,
    "patch-503-outage": patch_outage,
    "patch-503-outage-guard": lambda workdir, **kw: patch_outage(workdir, guard=True, **kw),
}
