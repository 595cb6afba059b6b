"""Watch throughput: the servo's real watch path against a bare urllib3 + msgspec loop.

A tiny stdlib HTTP server sends a pre-built chunked watch body (one event per chunk, as the API
server writes them; `sendfile` from a temporary file, so the server costs next to nothing) of
realistic Job pod JSON with managedFields (~14.6 KB per event), name, uid and resourceVersion
varying per event. The same bytes are read twice per round:

- servo: the official client (`_preload_content=False`) -> `KubeClient.stream_watch` (its own
  chunked reader, servo/kube/chunked.py, reading the socket in blocks of up to 1 MiB; the typed
  decode of servo/core/podwire.py) -> `PodWatch.events()` -> `Servo.handle` with a real `Tracker`
  (job filter, PodFacts, tracker, measurement, the per-job log line and metrics, a real
  `Reporter` queue whose workers are not started, so no HTTP is timed); logging configured as
  in production (JSON at INFO) into /dev/null;
- bare (the issue's reference): urllib3 chunked read + line split + msgspec typed decode of the
  same fields into the bench's own minimal Struct;
- for comparison only, the bare loop with the servo's block reader instead of urllib3's: most
  of the servo's lead over its reference is that reader, and this line says so.

Two streams: `mixed` (90% pods without the JOBID env, 10% job pods going Pending -> Running ->
terminated) and `jobs` (all job pods, Pending -> Running -> terminated).

    python -m bench.bench_watch [--events 30000] [--rounds 3] [--smoke]

`--smoke` (CI): 600 events per stream, one round; the figures printed, no target checked.
"""

from __future__ import annotations

import argparse
import copy
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import urllib3
from kubernetes import client as k8s

from bench.verdict import verdict
from servo.kube.chunked import ChunkedLines
from servo.kube.watch_stream import READ_SIZE
from servo.system.config import DEFAULT_APP_ID, load_config
from servo.system.logs import configure_logging
from servo.watch.loop import PodWatch
from tests.support.jobfeed import JobFeed

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "support" / "data" / "job-pod.json"
SMOKE_EVENTS = 600
TARGET_RATIO = 0.7
NAME, UID, RV = b"@@NAME@@", b"@@UID@@", b"@@RV@@"


# --- the stream ---------------------------------------------------------------------------


def _templates() -> dict[str, bytes]:
    """Watch lines of the fixture in each state, with placeholders for name, uid and version."""
    base = json.loads(FIXTURE.read_text())
    meta = base["metadata"]
    meta["name"], meta["uid"], meta["resourceVersion"] = (p.decode() for p in (NAME, UID, RV))
    job_status = base["status"]["containerStatuses"][0]
    assert job_status["name"] == "job"

    def variant(kind: str, state: str, jobid: bool) -> bytes:
        pod = copy.deepcopy(base)
        env = pod["spec"]["containers"][0]["env"]
        if not jobid:
            env[:] = [e for e in env if e["name"] != "JOBID"]
        status = pod["status"]
        cs = status["containerStatuses"][0]
        if state == "pending":
            status["phase"] = "Pending"
            cs["state"] = {"waiting": {"reason": "ContainerCreating"}}
            cs["ready"] = False
        elif state == "running":
            status["phase"] = "Running"
            cs["state"] = {"running": {"startedAt": "2024-05-14T09:12:09Z"}}
            cs["ready"] = True
        return json.dumps({"type": kind, "object": pod}, separators=(",", ":")).encode() + b"\n"

    return {
        "job-pending": variant("ADDED", "pending", True),
        "job-running": variant("MODIFIED", "running", True),
        "job-terminated": variant("MODIFIED", "terminated", True),
        "other-running": variant("MODIFIED", "running", False),
    }


def _plan(kind: str, n: int) -> list[tuple[str, str]]:
    """(template, pod name) per event."""
    steps = ("job-pending", "job-running", "job-terminated")
    out: list[tuple[str, str]] = []
    job_events = 0
    for i in range(n):
        if kind == "mixed" and i % 10 != 0:
            out.append(("other-running", f"web-{i % 5000}"))
            continue
        out.append((steps[job_events % 3], f"job-{job_events // 3}"))
        job_events += 1
    return out


def build_stream(kind: str, n: int, directory: Path) -> tuple[Path, int, int]:
    """Write the chunked body of `n` events; -> (file, bytes of JSON lines, job completions)."""
    templates = _templates()
    path = directory / f"{kind}.chunked"
    payload = completions = 0
    with path.open("wb") as f:
        for i, (tmpl, name) in enumerate(_plan(kind, n)):
            uid = f"uid-{name}".encode()
            line = (
                templates[tmpl]
                .replace(NAME, name.encode())
                .replace(UID, uid)
                .replace(RV, str(1000 + i).encode())
            )
            f.write(b"%x\r\n%s\r\n" % (len(line), line))
            payload += len(line)
            completions += tmpl == "job-terminated"
        f.write(b"0\r\n\r\n")
    return path, payload, completions


class _StreamServer(ThreadingHTTPServer):
    daemon_threads = True
    bodies: dict[str, Path]


class _Handler(BaseHTTPRequestHandler):
    """GET /api/v1/namespaces/<stream>/pods?watch=... -> the pre-built body of that stream."""

    protocol_version = "HTTP/1.1"
    server: _StreamServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        parts = self.path.split("?")[0].split("/")
        body = self.server.bodies.get(parts[4] if len(parts) > 4 else "")
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        try:
            with body.open("rb") as f:
                self.connection.sendfile(f)
        except OSError:
            pass  # the reader stopped early
        self.close_connection = True


# --- the two loops ------------------------------------------------------------------------


class _BareEnv(msgspec.Struct):
    name: str | None = None
    value: str | None = None


class _BareContainer(msgspec.Struct):
    name: str | None = None
    env: list[_BareEnv] | None = None
    resources: dict[str, Any] | None = None


class _BareSpec(msgspec.Struct, rename="camel"):
    containers: list[_BareContainer] | None = None
    node_name: str | None = None
    restart_policy: str | None = None


class _BareMeta(msgspec.Struct, rename="camel"):
    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    annotations: dict[str, str] | None = None
    finalizers: list[str] | None = None


class _BareCStatus(msgspec.Struct):
    name: str | None = None
    state: dict[str, Any] | None = None


class _BareStatus(msgspec.Struct, rename="camel"):
    phase: str | None = None
    reason: str | None = None
    pod_ip: str | None = msgspec.field(default=None, name="podIP")
    container_statuses: list[_BareCStatus] | None = None


class _BarePod(msgspec.Struct):
    metadata: _BareMeta | None = None
    spec: _BareSpec | None = None
    status: _BareStatus | None = None


class _BareEvent(msgspec.Struct):
    type: str = ""
    object: _BarePod | None = None


def bare_loop(url: str, n: int) -> float:
    """urllib3 chunked read + line split + msgspec typed decode; -> seconds for `n` events."""
    decoder = msgspec.json.Decoder(_BareEvent)
    http = urllib3.PoolManager()
    started = time.perf_counter()
    resp = http.request("GET", url, preload_content=False)
    seen = 0
    pending = b""
    for chunk in resp.stream(amt=None, decode_content=True):
        pending += chunk
        if b"\n" not in chunk:
            continue
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line:
                event = decoder.decode(line)
                seen += event.object is not None
        if seen >= n:
            break
    elapsed = time.perf_counter() - started
    resp.release_conn()
    assert seen == n, f"bare loop saw {seen} of {n} events"
    return elapsed


def bare_block_loop(url: str, n: int) -> float:
    """The bare loop with the servo's own chunked reader (servo/kube/chunked.py, 1 MiB reads)
    instead of urllib3's: how much of the servo's time is its own work, the reading aside."""
    decoder = msgspec.json.Decoder(_BareEvent)
    parts = urllib3.util.parse_url(url)
    conn = http.client.HTTPConnection(parts.host or "127.0.0.1", parts.port)
    started = time.perf_counter()
    conn.request("GET", parts.request_uri)
    resp = conn.getresponse()
    body = resp.fp  # the socket file under the response: the chunked body as sent
    parser = ChunkedLines()
    seen = 0
    while seen < n and not parser.done:
        for line in parser.feed(body.read1(READ_SIZE)):
            if line:
                event = decoder.decode(line)
                seen += event.object is not None
    elapsed = time.perf_counter() - started
    conn.close()
    assert seen >= n, f"bare block loop saw {seen} of {n} events"
    return elapsed


def servo_loop(url: str, stream: str, n: int, completions: int) -> float:
    """The servo's watch path; -> seconds for `n` events."""
    env = {
        "OPTUNE_URL": "http://127.0.0.1:9/accounts/{acct}/applications/{app_id}/servo",
        "OPTUNE_ACCOUNT": "bench",
        "POD_NAMESPACES": stream,
        "OPTUNE_SEND_QUEUE": str(n + 10),  # never full: the workers are not started
        "OPTUNE_OUTBOX_DIR": tempfile.gettempdir(),  # unused: no outbox here
    }
    cfg = load_config(env)
    api = k8s.ApiClient(k8s.Configuration(host=url))
    feed = JobFeed(cfg, api)
    kube, reporter = feed.kube, feed.reporter
    tracker = feed.tracker()
    stop = threading.Event()
    watch = PodWatch(kube, stream, cfg.watch, stop)
    watch.resource_version = "1"  # watch at once, as after the initial list
    seen = 0
    started = time.perf_counter()
    for event in watch.events():
        feed.handle(tracker, event)
        seen += 1
        if seen >= n:
            stop.set()
            break
    elapsed = time.perf_counter() - started
    kube.close_streams()
    assert reporter.depth == completions, (reporter.depth, completions)
    return elapsed


def _rounds(fn: Callable[[], float], rounds: int) -> list[float]:
    return [fn() for _ in range(rounds)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000, help="events per stream")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each loop")
    parser.add_argument(
        "--no-logging", action="store_true", help="leave logging unconfigured (WARNING)"
    )
    parser.add_argument("--smoke", action="store_true", help="CI: small, one round, no target")
    args = parser.parse_args(argv)
    if args.smoke:
        args.events, args.rounds = SMOKE_EVENTS, 1
    if not args.no_logging:
        configure_logging(debug=0, fmt="json", stream=open(os.devnull, "w"))  # noqa: SIM115
    n = args.events
    assert load_config({"OPTUNE_ACCOUNT": "x"}).app_id.text == DEFAULT_APP_ID
    results: list[tuple[str, float, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp:
        bodies = {}
        for stream in ("mixed", "jobs"):
            path, payload, completions = build_stream(stream, n, Path(tmp))
            bodies[stream] = (path, payload, completions)
        server = _StreamServer(("127.0.0.1", 0), _Handler)
        server.bodies = {k: v[0] for k, v in bodies.items()}
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        print(
            f"{n} events per stream, {args.rounds} rounds per loop, best round reported; "
            f"cores: {os.cpu_count()}"
        )
        for stream, (_, payload, completions) in bodies.items():
            url = f"{base}/api/v1/namespaces/{stream}/pods?watch=true&resourceVersion=1"
            bare_s: list[float] = []
            block_s: list[float] = []
            servo_s: list[float] = []
            for _ in range(args.rounds):
                bare_s.append(bare_loop(url, n))
                block_s.append(bare_block_loop(url, n))
                servo_s.append(servo_loop(base, stream, n, completions))
            bare_rate, servo_rate = n / min(bare_s), n / min(servo_s)
            block_rate = n / min(block_s)
            ratio = servo_rate / bare_rate
            results.append((stream, bare_rate, servo_rate, ratio))
            print(
                f"stream {stream:<5} ({payload / n / 1024:.1f} KiB/event, {completions} "
                f"completions): bare {bare_rate:,.0f} ev/s (median "
                f"{n / statistics.median(bare_s):,.0f}), servo {servo_rate:,.0f} ev/s "
                f"(median {n / statistics.median(servo_s):,.0f}), ratio {ratio:.2f} "
                f"(target >= {TARGET_RATIO}) {verdict(ratio >= TARGET_RATIO, smoke=args.smoke)}"
            )
            print(
                f"  for comparison, the bare loop with the servo's block reader: "
                f"{block_rate:,.0f} ev/s; servo / that = {servo_rate / block_rate:.2f}"
            )
        server.shutdown()
        server.server_close()
    worst = min(r[3] for r in results)
    figures = ", ".join(f"{s} {sv:,.0f}/{b:,.0f} ev/s = {r:.2f}" for s, b, sv, r in results)
    summary = verdict(worst >= TARGET_RATIO, smoke=args.smoke)
    print(f"watch throughput, servo/bare ratio | >= {TARGET_RATIO} | {figures} | {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
