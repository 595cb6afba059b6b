"""Two servo processes with leader election against the API emulator's leases: one reports,
the other stands by; when the leader is SIGKILLed mid-stream the standby takes over within
15 s, and the collector stores every job exactly once."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from servo.collector.server import Collector
from servo.store.events import EventStore
from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.helpers import job_pod, set_running, set_terminated
from tests.support.servoproc import clean_env

LEASE = ("servo", "servo-leader")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[KubeEmulator, Collector, Path]]:
    with KubeEmulator(bookmark_interval_s=0.5) as emu, EventStore(tmp_path / "c.db") as store:
        with Collector(store, port=0) as collector:
            yield emu, collector, emu.write_kubeconfig(tmp_path / "kubeconfig")


def start(
    name: str, emu: KubeEmulator, collector: Collector, kubeconfig: Path, tmp_path: Path
) -> subprocess.Popen[str]:
    env = clean_env(
        OPTUNE_URL=collector.url_template(),
        OPTUNE_ACCOUNT="acme",
        POD_NAMESPACES="default",
        OPTUNE_LEADER_ELECTION="true",
        OPTUNE_LEADER_LEASE_SECONDS="3",
        OPTUNE_LEADER_RETRY_SECONDS="0.5",
        POD_NAME=name,
        OPTUNE_OUTBOX_DIR=str(tmp_path / f"outbox-{name}"),
        OPTUNE_STATS_PORT="0",
        OPTUNE_STATS_BIND="127.0.0.1",
        OPTUNE_WATCH_TIMEOUT="5",
        OPTUNE_SEND_MAX_BACKOFF="0.2",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "servo", "--kubeconfig", str(kubeconfig)],
        env=env,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def holder(emu: KubeEmulator) -> str:
    lease = emu.get_lease(*LEASE)
    return str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")


def run_jobs(emu: KubeEmulator, names: list[str], pause_s: float = 0.0) -> None:
    for name in names:
        emu.create_pod(job_pod(name, jobid="TRAIN"))
        emu.update_pod("default", name, set_running)
        emu.update_pod("default", name, set_terminated)
        time.sleep(pause_s)


def stored_per_pod(store: EventStore) -> Counter[str]:
    return Counter(str(e.pod_uid) for e in store.events(event="MEASUREMENT"))


def test_standby_takes_over_when_the_leader_is_killed_and_nothing_is_lost_or_doubled(
    cluster: tuple[KubeEmulator, Collector, Path], tmp_path: Path
) -> None:
    emu, collector, kubeconfig = cluster
    procs = {n: start(n, emu, collector, kubeconfig, tmp_path) for n in ("servo-a", "servo-b")}
    try:
        assert emu.wait_for(lambda: holder(emu) in procs, 30), "nobody took the lease"
        leader = holder(emu)
        standby = next(n for n in procs if n != leader)
        # Both replicas watch (the standby keeps its cache warm) ...
        assert emu.wait_for(
            lambda: (
                sum(1 for r in emu.requests if r.query.get("watch") and r.resource == "pods") >= 2
            ),
            15,
        )
        first = [f"before-{i}" for i in range(8)]
        run_jobs(emu, first)
        assert emu.wait_for(lambda: len(stored_per_pod(collector.store)) == 8, 20)
        # ... but only the leader reports.
        hellos = collector.store.events(event="HELLO")
        assert len(hellos) == 1
        # Kill the leader in the middle of a stream of finishing jobs.
        second = [f"after-{i}" for i in range(12)]
        runner = threading.Thread(target=run_jobs, args=(emu, second, 0.1))
        runner.start()
        time.sleep(0.35)
        killed_at = time.monotonic()
        procs[leader].send_signal(signal.SIGKILL)
        procs[leader].wait(timeout=10)
        runner.join(timeout=30)
        assert emu.wait_for(lambda: holder(emu) == standby, 20)
        took_over_s = time.monotonic() - killed_at
        assert took_over_s <= 15, took_over_s
        assert emu.wait_for(lambda: len(stored_per_pod(collector.store)) == 20, 30), sorted(
            stored_per_pod(collector.store)
        )
        per_pod = stored_per_pod(collector.store)
        uids = {p["metadata"]["uid"] for p in emu.pods()}
        assert set(per_pod) == uids and set(per_pod.values()) == {1}  # 0 lost, 0 doubled
        assert len(collector.store.events(event="HELLO")) == 2  # the new leader said HELLO
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def test_clean_stop_hands_the_lease_over_at_once(
    cluster: tuple[KubeEmulator, Collector, Path], tmp_path: Path
) -> None:
    emu, collector, kubeconfig = cluster
    procs = {n: start(n, emu, collector, kubeconfig, tmp_path) for n in ("servo-a", "servo-b")}
    try:
        assert emu.wait_for(lambda: holder(emu) in procs, 30)
        leader = holder(emu)
        procs[leader].send_signal(signal.SIGTERM)
        assert procs[leader].wait(timeout=30) == 0
        stopped = time.monotonic()
        other = next(n for n in procs if n != leader)
        assert emu.wait_for(lambda: holder(emu) == other, 10)
        # Released, not expired: well under the 3 s lease.
        assert time.monotonic() - stopped < 3
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=30)
