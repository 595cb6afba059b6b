"""Outbox throughput: events written durably per second, and a 10,000-event backlog drained.

(a) MEASUREMENT events (built from the realistic fixture pod, as the servo builds them) written
    with `Outbox.put` (SQLite WAL, synchronous=NORMAL, one commit per put) in one thread; then
    through `Reporter.submit` with the outbox while the reporter's workers deliver them to a
    fast backend at the same time (the servo's real path: each submit one commit, the workers'
    acks group-committed). Logging as in production (JSON lines
    at INFO) into /dev/null.
(b) An outbox filled with 10,000 MEASUREMENT events while the backend is down; then a
    `Reporter(cfg.report, outbox=...)` with the default workers starts against the backend, and
    the time until `outbox.depth() == 0` is measured.

The backend is tests/support/fakes/backend.RecordingBackend on 127.0.0.1, in a child process (it is
another machine in production; in this process it would compete for the GIL).

    python -m bench.bench_outbox [--put-events 5000] [--backlog 10000] [--smoke]

`--smoke` (CI): 200 events written, a backlog of 300; the figures printed, no target checked.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgspec

from bench.verdict import verdict
from servo.core.appid import parse_app_id_query
from servo.core.models import Event
from servo.core.pod_measurement import measurement_from_facts
from servo.core.pods import facts_from_pod
from servo.report.outbox import Outbox
from servo.report.reporter import Reporter
from servo.run.outlet import measurement_event
from servo.system.config import DEFAULT_APP_ID, load_config
from servo.system.logs import configure_logging
from tests.support.fakes.backend import RecordingBackend

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "support" / "data" / "job-pod.json"
SMOKE_PUT_EVENTS, SMOKE_BACKLOG = 200, 300
TARGET_PUT_RATE = 2000.0
TARGET_DRAIN_S = 30.0


def _backend_child(conn: Connection) -> None:
    """Run a RecordingBackend until told to stop; report how many events it accepted."""
    with RecordingBackend() as backend:
        conn.send(backend.url_template())
        conn.recv()  # "count?" or "stop"
        conn.send(len(backend.accepted))
        conn.recv()


class BackendProcess:
    def __enter__(self) -> BackendProcess:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_backend_child, args=(child,), daemon=True)
        self._proc.start()
        self.url_template: str = self._conn.recv()
        return self

    def accepted(self) -> int:
        self._conn.send("count")
        return int(self._conn.recv())

    def __exit__(self, *exc: object) -> None:
        try:
            self._conn.send("stop")
        except OSError:
            pass
        self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.kill()


def measurement_events(n: int, tag: str) -> list[Event]:
    """`n` distinct MEASUREMENT events as the servo builds them from a finished job pod."""
    import json

    pod = json.loads(FIXTURE.read_text())
    facts = facts_from_pod(pod, parse_app_id_query(DEFAULT_APP_ID)).facts
    assert facts is not None
    out = []
    for i in range(n):
        job = msgspec.structs.replace(facts, uid=f"{tag}-{i:08d}", name=f"job-{tag}-{i}")
        out.append(measurement_event(measurement_from_facts(job)))
    return out


def config(url_template: str, outbox_dir: str) -> Any:
    return load_config(
        {
            "OPTUNE_URL": url_template,
            "OPTUNE_ACCOUNT": "bench",
            "OPTUNE_OUTBOX_DIR": outbox_dir,
            "OPTUNE_SEND_MAX_BACKOFF": "1",
        }
    )


def put_rate(directory: str, events: list[Event]) -> float:
    box = Outbox(directory)
    started = time.perf_counter()
    for event in events:
        box.put(event, time.time())
    elapsed = time.perf_counter() - started
    assert box.depth() == len(events)
    box.close()
    return len(events) / elapsed


def submit_rate(url_template: str, directory: str, events: list[Event]) -> tuple[float, float]:
    """Reporter.submit with the outbox while workers deliver; -> (submits/s, delivered/s)."""
    cfg = config(url_template, directory)
    box = Outbox(directory)
    reporter = Reporter(cfg.report, outbox=box)
    reporter.start()
    stop = threading.Event()
    started = time.perf_counter()
    for event in events:
        reporter.submit(event, stop=stop)
    submitted = time.perf_counter() - started
    while box.depth():
        time.sleep(0.01)
    delivered = time.perf_counter() - started
    reporter.close(grace_s=5)
    assert reporter.counts.sent == len(events), reporter.counts
    box.close()
    return len(events) / submitted, len(events) / delivered


def drain(url_template: str, directory: str, events: list[Event]) -> tuple[float, int]:
    """Fill the outbox (backend down), start a Reporter: -> (seconds to empty, sent)."""
    box = Outbox(directory)
    now = time.time()
    for event in events:
        box.put(event, now)
    assert box.depth() == len(events)
    cfg = config(url_template, directory)
    reporter = Reporter(cfg.report, outbox=box)
    started = time.perf_counter()
    reporter.start()
    while box.depth():
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    reporter.close(grace_s=5)
    box.close()
    return elapsed, reporter.counts.sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--put-events", type=int, default=5000)
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument(
        "--no-logging", action="store_true", help="leave logging unconfigured (WARNING)"
    )
    parser.add_argument("--smoke", action="store_true", help="CI: small, no target")
    args = parser.parse_args(argv)
    if args.smoke:
        args.put_events, args.backlog = SMOKE_PUT_EVENTS, SMOKE_BACKLOG
    if not args.no_logging:
        # As in production: JSON lines at INFO (a "report sent" line per event), to /dev/null.
        configure_logging(debug=0, fmt="json", stream=open(os.devnull, "w"))  # noqa: SIM115
    workers = load_config({"OPTUNE_ACCOUNT": "x"}).report.workers
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as tmp, BackendProcess() as backend:
        rate = put_rate(f"{tmp}/put", measurement_events(args.put_events, "put"))
        print(
            f"(a) Outbox.put, one thread, {args.put_events} events: {rate:,.0f} events/s "
            f"durably (one commit each; target >= {TARGET_PUT_RATE:,.0f})"
        )
        sub, delivered = submit_rate(
            backend.url_template, f"{tmp}/submit", measurement_events(args.put_events, "sub")
        )
        print(
            f"(a) Reporter.submit with outbox, {workers} workers delivering meanwhile: "
            f"{sub:,.0f} events/s submitted, {delivered:,.0f} events/s end to end "
            f"(submitted and delivered)"
        )
        seconds, sent = drain(
            backend.url_template, f"{tmp}/drain", measurement_events(args.backlog, "drain")
        )
        print(
            f"(b) backlog of {args.backlog:,} drained in {seconds:.1f} s "
            f"({sent / seconds:,.0f} events/s, {workers} workers; target < "
            f"{TARGET_DRAIN_S:.0f} s); backend got {backend.accepted():,} in all"
        )
    put_ok = min(rate, sub) >= TARGET_PUT_RATE
    drain_ok = seconds < TARGET_DRAIN_S
    print(
        f"outbox durable writes | >= {TARGET_PUT_RATE:,.0f}/s | put {rate:,.0f}/s, submit "
        f"{sub:,.0f}/s | {verdict(put_ok, smoke=args.smoke)}"
    )
    print(
        f"outbox backlog of {args.backlog:,} drained | < {TARGET_DRAIN_S:.0f} s | "
        f"{seconds:.1f} s ({sent / seconds:,.0f}/s) | {verdict(drain_ok, smoke=args.smoke)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
