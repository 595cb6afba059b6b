"""Memory per tracked job pod: RSS growth with 20,000 running job pods in the real tracker.

In this fresh process: decode 20,000 distinct running Job pods (the realistic fixture with
managedFields, ~14 KB of JSON each) through the servo's typed decoder (`decode_event` with
`decoder_for(<default app id query>)`), hand each to the servo's per-event handling
(`Servo.handle`, through tests/support/jobfeed.py) with a real `Tracker`, and
drop the pod at once, so only the tracker's records stay. RSS (psutil) is read after a
`gc.collect()` before and after; tracemalloc, started after the warm-up, gives the bytes still
allocated by a second tracker of as many pods (its records plus what the servo keeps beside them).

    python -m bench.bench_memory [--pods 20000] [--smoke]

`--smoke` (CI): 500 pods; the figures printed, no target checked.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import sys
import tracemalloc
from pathlib import Path

import psutil
from kubernetes import client as k8s

from bench.verdict import verdict
from servo.core.podwire import decode_event
from servo.core.tracker import Tracker
from servo.system.config import load_config
from servo.watch.loop import WatchEvent
from tests.support.jobfeed import JobFeed

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "support" / "data" / "job-pod.json"
SMOKE_PODS = 500
TARGET_BYTES = 1024
NAME, UID, RV = "@@NAME@@", "@@UID@@", "@@RV@@"


def running_line() -> bytes:
    """A watch line of a running job pod with placeholders for name, uid and version."""
    pod = copy.deepcopy(json.loads(FIXTURE.read_text()))
    pod["metadata"].update(name=NAME, uid=UID, resourceVersion=RV)
    status = pod["status"]
    status["phase"] = "Running"
    job = status["containerStatuses"][0]
    assert job["name"] == "job"
    job["state"] = {"running": {"startedAt": "2024-05-14T09:12:09Z"}}
    job["ready"] = True
    return json.dumps({"type": "MODIFIED", "object": pod}, separators=(",", ":")).encode()


def rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def feed(jobs: JobFeed, tracker: Tracker, line: bytes, first: int, count: int) -> None:
    """Decode and handle `count` distinct pods; nothing of them is kept here."""
    whole = jobs.kube.whole_pods
    for i in range(first, first + count):
        raw = (
            line.replace(NAME.encode(), b"job-%d" % i)
            .replace(UID.encode(), b"%08d-1111-4222-8333-444444444444" % i)
            .replace(RV.encode(), b"%d" % (1000 + i))
        )
        line_ = decode_event(raw, whole=whole)
        assert line_.pod is not None
        jobs.handle(tracker, WatchEvent(line_.type, line_.pod, line_.doc))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=20_000)
    parser.add_argument("--smoke", action="store_true", help="CI: small, no target")
    args = parser.parse_args(argv)
    n = SMOKE_PODS if args.smoke else args.pods
    env = {
        "OPTUNE_URL": "http://127.0.0.1:9/accounts/{acct}/applications/{app_id}/servo",
        "OPTUNE_ACCOUNT": "bench",
        "OPTUNE_OUTBOX_DIR": "/tmp",  # unused: no outbox here
    }
    cfg = load_config(env)
    jobs = JobFeed(cfg, k8s.ApiClient(k8s.Configuration(host="http://127.0.0.1:9")))
    line = running_line()
    # Warm-up: imports, caches and interned strings the first pods create, in a throw-away
    # tracker, so the measured growth is the tracked pods only.
    feed(jobs, jobs.tracker(), line, 10**9, 500)
    tracker = jobs.tracker()
    before = rss()
    feed(jobs, tracker, line, 0, n)
    after = rss()
    # A second tracker of as many pods under tracemalloc (its own bookkeeping would inflate
    # the RSS figure, so it is not running during the first pass).
    second = jobs.tracker()
    gc.collect()
    tracemalloc.start()
    snap0 = tracemalloc.take_snapshot()
    feed(jobs, second, line, n, n)
    gc.collect()
    snap1 = tracemalloc.take_snapshot()
    traced = sum(s.size_diff for s in snap1.compare_to(snap0, "filename"))
    tracemalloc.stop()
    assert len(tracker.pending) == n, f"tracker holds {len(tracker.pending)} of {n} pods"
    per_pod_rss = (after - before) / n
    per_pod_traced = traced / n
    print(
        f"pods tracked: {len(tracker.pending):,} (running job pods, {len(line):,} B of JSON each)"
    )
    print(
        f"RSS before {before / 2**20:.1f} MiB, after {after / 2**20:.1f} MiB: "
        f"+{(after - before) / 2**20:.2f} MiB = {per_pod_rss:,.0f} B/pod"
    )
    print(
        f"tracemalloc, still allocated by the tracked pods: {traced / 2**20:.2f} MiB = "
        f"{per_pod_traced:,.0f} B/pod"
    )
    summary = verdict(per_pod_rss <= TARGET_BYTES, smoke=args.smoke)
    print(
        f"RSS growth per tracked pod ({n:,} pods) | <= 1 KiB | {per_pod_rss:,.0f} B "
        f"(tracemalloc {per_pod_traced:,.0f} B) | {summary}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
