"""Report latency at 200 job completions per second, outbox on.

From the commit, in the API emulator, of the update that shows a job container terminated (a
job pod without a monitor) to the backend receiving that pod's MEASUREMENT.

- The API emulator (tests/support/fakes/kubeapi.KubeEmulator, bookmarks every 0.2 s) runs in a child
  process with the driver: it creates the job pods and sets them Running beforehand, then
  applies the terminating updates at the paced rate and stamps each commit (time.monotonic,
  which every process on the machine shares).
- The backend (tests/support/fakes/backend.RecordingBackend) runs in another child process and
  stamps each request as it is read.
- The servo runs in this process, in a thread, as tests/support/harness.run_in_thread starts
  it: load_config from env (OPTUNE_OUTBOX_DIR a temporary directory, receiver and metrics on
  127.0.0.1 port 0), the servo as `servo run` assembles it, its reporter with an outbox;
  logging as in production (JSON at INFO) into /dev/null. After each 2xx it annotates the pod
  as reported (a PATCH to the emulator), as in production. The latency is split at the servo's
  one INFO line per job ("job measured"), stamped by a logging handler.

The emulator is a Python stand-in for the API server: its full garbage collections over its
growing pod history pause it for 200-400 ms (which stalls the servo's watch stream and the
workers' "reported" PATCHes), so by default its collector is frozen and off while driving
(`--emulator-gc` leaves it on; its pauses are printed either way).

Pods are the test fixture without managedFields (tests/support/helpers.job_pod); `--managed-fields`
uses the full ~14 KB fixture (the emulator, in Python, then costs more per update).

    python -m bench.bench_latency [--rate 200] [--seconds 10] [--smoke]

`--smoke` (CI): 200/s for 1 s; the figures printed, no target checked.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil
from kubernetes import client as k8s

from bench.verdict import verdict
from servo.report.outbox import Outbox
from servo.system.config import load_config
from servo.system.logs import configure_logging
from tests.support.fakes.backend import RecordingBackend
from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.harness import run_in_thread
from tests.support.helpers import job_pod, set_running, set_terminated

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "support" / "data" / "job-pod.json"
SMOKE_SECONDS = 1.0
TARGET_P50_MS = 20.0
TARGET_P99_MS = 100.0
NAMESPACE = "default"


# --- child: the API emulator and the driver ---------------------------------------------------


def _gc_pauses(*, freeze: bool) -> list[float]:
    """Record this process's full (generation 2) collections, in ms; `freeze` first moves
    every object alive now out of the collector's reach (gc.freeze) and turns the collector off
    (the emulator's history only grows while driving: nothing for it to free)."""
    import gc

    if freeze:
        gc.collect()
        gc.freeze()
        gc.disable()
    pauses: list[float] = []
    started = [0.0]

    def callback(phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append((time.perf_counter() - started[0]) * 1000)

    gc.callbacks.append(callback)
    return pauses


def _emulator_child(
    conn: Connection, count: int, rate: float, managed_fields: bool, freeze_gc: bool
) -> None:
    import copy
    import json

    stamps: dict[str, float] = {}

    def make_pod(i: int) -> dict[str, Any]:
        pod = job_pod(f"job-{i}", namespace=NAMESPACE, jobid=f"JOB-{i % 50}")
        if managed_fields:
            full = json.loads(FIXTURE.read_text())
            pod["metadata"]["managedFields"] = copy.deepcopy(full["metadata"]["managedFields"])
        return pod

    with KubeEmulator(bookmark_interval_s=0.2) as emu:
        for i in range(count):
            emu.create_pod(make_pod(i))
            emu.update_pod(NAMESPACE, f"job-{i}", set_running)
        conn.send(emu.url)
        assert conn.recv() == "go"
        pauses = _gc_pauses(freeze=freeze_gc)
        started = time.monotonic()
        late = 0
        for i in range(count):
            due = started + i / rate
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            elif wait < -0.01:
                late += 1
            # Stamped as the update returns: committed, and the watch streams woken.
            done = emu.update_pod(NAMESPACE, f"job-{i}", set_terminated)
            stamps[done["metadata"]["uid"]] = time.monotonic()
        elapsed = time.monotonic() - started
        conn.send({"elapsed_s": elapsed, "late": late, "gc_pauses_ms": list(pauses)})
        assert conn.recv() == "stamps?"
        conn.send(dict(stamps))
        conn.recv()  # "stop"


# --- child: the backend -------------------------------------------------------------------


def _backend_child(conn: Connection) -> None:
    with RecordingBackend() as backend:
        conn.send(backend.url_template())
        pauses = _gc_pauses(freeze=False)
        while (msg := conn.recv()) != "stop":
            if msg == "gc?":
                conn.send(list(pauses))
            elif msg == "count":
                conn.send(len(_first_measurements(backend)))
            elif msg == "stamps?":
                conn.send(_first_measurements(backend))


def _first_measurements(backend: RecordingBackend) -> dict[str, float]:
    """When each MEASUREMENT (by event id) was first read by the backend."""
    out: dict[str, float] = {}
    for req in backend.received:
        if req.event == "MEASUREMENT" and req.event_id is not None:
            out.setdefault(req.event_id, req.read_at)
    return out


def _start(target: Any, *args: Any) -> tuple[Any, Connection]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(child, *args), daemon=True)
    proc.start()
    return proc, parent


class _MeasuredStamps(logging.Handler):
    """When the servo logs its one INFO line per measured job ("job measured"), by pod uid:
    the point that splits the latency in two (the watch's part, the report's part)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.at: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        uid = getattr(record, "uid", None)
        if record.msg == "job measured" and isinstance(uid, str):
            self.at.setdefault(uid, time.monotonic())


def _stamp_measured() -> dict[str, float]:
    stamps = _MeasuredStamps()
    servo_log = logging.getLogger("servo")
    servo_log.addHandler(stamps)
    if not servo_log.isEnabledFor(logging.INFO):  # --no-logging: INFO records still made
        servo_log.setLevel(logging.INFO)
    return stamps.at


def _cpu_s(proc: Any) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="completions per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--managed-fields", action="store_true")
    parser.add_argument(
        "--emulator-gc",
        action="store_true",
        help="leave the emulator's garbage collector on (its full collections of the pod history"
        " stall it, and with it the servo's watch and its reported-PATCHes, for 200-400 ms)",
    )
    parser.add_argument("--trace", help="write a CSV: commit s, watch ms, send ms per pod")
    parser.add_argument(
        "--no-logging", action="store_true", help="leave logging unconfigured (WARNING)"
    )
    parser.add_argument("--smoke", action="store_true", help="CI: one second, no target")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds = SMOKE_SECONDS
    count = int(args.rate * args.seconds)

    if not args.no_logging:
        configure_logging(debug=0, fmt="json", stream=open(os.devnull, "w"))  # noqa: SIM115
    emu_proc, emu = _start(
        _emulator_child, count, args.rate, args.managed_fields, not args.emulator_gc
    )
    be_proc, backend = _start(_backend_child)
    emu_url: str = emu.recv()
    url_template: str = backend.recv()
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        env = {
            "OPTUNE_URL": url_template,
            "OPTUNE_ACCOUNT": "bench",
            "POD_NAMESPACES": NAMESPACE,
            "OPTUNE_OUTBOX_DIR": tmp,
            "OPTUNE_STATS_PORT": "0",
            "OPTUNE_STATS_BIND": "127.0.0.1",
            "OPTUNE_METRICS_PORT": "0",
            "OPTUNE_METRICS_BIND": "127.0.0.1",
        }
        cfg = load_config(env)
        # What KubeEmulator.api_client gives (no token); the emulator runs in the child.
        api = k8s.ApiClient(k8s.Configuration(host=emu_url))
        seen_at = _stamp_measured()
        servo_gc = _gc_pauses(freeze=False)
        running = run_in_thread(cfg, api, outbox=Outbox(tmp))
        assert running.synced(60), "servo never listed pods"
        time.sleep(0.5)  # the watch is open after the list
        print(
            f"{count} job pods listed Running; terminating them at {args.rate:g}/s for "
            f"{args.seconds:g} s (outbox on, {cfg.report.workers} report workers)"
        )
        procs = {
            "servo": psutil.Process(),
            "emulator": psutil.Process(emu_proc.pid),
            "backend": psutil.Process(be_proc.pid),
        }
        cpu0 = {k: _cpu_s(p) for k, p in procs.items()}
        emu.send("go")
        driven = emu.recv()
        cpu = {k: (_cpu_s(p) - cpu0[k]) / driven["elapsed_s"] * 100 for k, p in procs.items()}
        deadline = time.monotonic() + 60
        backend.send("count")
        while (got := backend.recv()) < count and time.monotonic() < deadline:
            time.sleep(0.1)
            backend.send("count")
        emu.send("stamps?")
        committed: dict[str, float] = emu.recv()
        backend.send("stamps?")
        received: dict[str, float] = backend.recv()
        backend.send("gc?")
        backend_gc_ms: list[float] = backend.recv()
        servo_gc_ms = list(servo_gc)
        running.stop()
        emu.send("stop")
        backend.send("stop")
    for proc in (emu_proc, be_proc):
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
    latencies = [
        (received[f"{uid}:MEASUREMENT"] - t) * 1000
        for uid, t in committed.items()
        if f"{uid}:MEASUREMENT" in received
    ]
    watch_ms = [(seen_at[uid] - t) * 1000 for uid, t in committed.items() if uid in seen_at]
    send_ms = [
        (received[f"{uid}:MEASUREMENT"] - seen_at[uid]) * 1000
        for uid in seen_at
        if f"{uid}:MEASUREMENT" in received
    ]
    if args.trace and committed:
        t0 = min(committed.values())
        with open(args.trace, "w") as f:
            f.write("commit_s,watch_ms,send_ms\n")
            for uid, t in sorted(committed.items(), key=lambda kv: kv[1]):
                seen, got_at = seen_at.get(uid), received.get(f"{uid}:MEASUREMENT")
                w = "" if seen is None else f"{(seen - t) * 1000:.2f}"
                r = "" if seen is None or got_at is None else f"{(got_at - seen) * 1000:.2f}"
                f.write(f"{t - t0:.4f},{w},{r}\n")
    achieved = count / driven["elapsed_s"]
    print(
        f"driver: {count} terminating updates in {driven['elapsed_s']:.2f} s = {achieved:.0f}/s"
        f" ({driven['late']} more than 10 ms behind schedule)"
    )
    print("CPU while driving, % of one core: " + ", ".join(f"{k} {v:.0f}%" for k, v in cpu.items()))
    for who, gc_ms in (
        ("emulator", driven["gc_pauses_ms"]),
        ("servo", servo_gc_ms),
        ("backend", backend_gc_ms),
    ):
        print(
            f"{who} full GC pauses: {len(gc_ms)}, {', '.join(f'{x:.0f}' for x in gc_ms) or '-'} ms"
        )
    if achieved < 0.95 * args.rate:
        print(f"note: the emulator sustained only {achieved:.0f} updates/s, not {args.rate:g}")
    print(f"measurements received: {len(latencies)} of {count} (backend saw {got})")
    if not latencies:
        print(f"report latency at {args.rate:g}/s | p50 <= 20 ms, p99 <= 100 ms | none | MISS")
        return 1
    p50, p90, p99 = (percentile(latencies, q) for q in (50, 90, 99))
    print(
        f"latency ms: p50 {p50:.1f}, p90 {p90:.1f}, p99 {p99:.1f}, max {max(latencies):.1f}, "
        f"mean {statistics.fmean(latencies):.1f}"
    )
    for label, part in (
        ("commit -> servo measures it (its log line)", watch_ms),
        ("servo measures it -> backend receives", send_ms),
    ):
        if part:
            print(
                f"  {label}: p50 {percentile(part, 50):.1f}, p99 {percentile(part, 99):.1f}, "
                f"max {max(part):.1f} ms"
            )
    ok = p50 <= TARGET_P50_MS and p99 <= TARGET_P99_MS and len(latencies) == count
    summary = verdict(ok, smoke=args.smoke)
    print(
        f"report latency at {achieved:.0f} completions/s, outbox on | p50 <= 20 ms, "
        f"p99 <= 100 ms | p50 {p50:.1f} ms, p99 {p99:.1f} ms | {summary}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
