"""Fault harness: the servo as a real process (`python -m servo`) against the API emulator and
the bundled collector, reached through a flaky proxy; a job driver; the exact check.

Shared by tests/faults/test_faults.py (CI-sized job counts) and bench/bench_faults.py (bigger
ones, a summary table). Every scenario is a function `(workdir, jobs=..., seed=...) -> Outcome`
that sets up its own rig, drives the jobs and the faults, waits until the servo has settled
(every expected measurement stored, its outbox empty, every surviving job pod annotated),
stops the servo with SIGTERM and counts what the collector stored per job pod uid.

The collector (servo/collector.py, an EventStore keyed by event id) stores each event id once,
so a repeated delivery of the same MEASUREMENT never shows up as a second row; a MEASUREMENT
under a different id for the same pod would. `deliveries` counts the MEASUREMENT requests that
reached the collector (repeats included), `attempts` every MEASUREMENT request at the proxy.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from servo.collector import Collector
from servo.outbox import OUTBOX_FILE
from servo.pods import GUARD_FINALIZER, REPORTED_ANNOTATION
from servo.store import EventStore
from tests.fakes.kubeapi import KubeEmulator
from tests.fakes.tcpserver import ConnectionTrackingServer
from tests.helpers import job_pod, set_running, set_terminated

REPO = Path(__file__).resolve().parents[2]
SERVO = [sys.executable, "-m", "servo"]
HOST = "127.0.0.1"
NAMESPACE = "default"
ACCOUNT = "acme"
TOKEN = "fault-t0ken"
JOB_TRACKING = "batch.kubernetes.io/job-tracking"
STARTED_AT = datetime(2024, 5, 14, 9, 12, 9, tzinfo=UTC)
# The servo's per-request timeout; the proxy's "timeout" faults sleep past it.
SEND_TIMEOUT_S = 1.0
FAULT_SLEEP_S = SEND_TIMEOUT_S + 0.5
# Small timeouts so retries, reconnects and relists happen within seconds.
FAST_ENV = {
    "OPTUNE_ACCOUNT": ACCOUNT,
    "OPTUNE_AUTH_TOKEN": TOKEN,
    "POD_NAMESPACES": NAMESPACE,
    "OPTUNE_STATS_PORT": "0",
    "OPTUNE_STATS_BIND": HOST,
    "OPTUNE_METRICS_PORT": "0",
    "OPTUNE_METRICS_BIND": HOST,
    "OPTUNE_WATCH_TIMEOUT": "2",
    "OPTUNE_WATCH_IDLE_TIMEOUT": "3",
    "OPTUNE_WATCH_MAX_BACKOFF": "0.2",
    "OPTUNE_SEND_MAX_BACKOFF": "0.2",
    "OPTUNE_SEND_TIMEOUT": f"{SEND_TIMEOUT_S:g}",
    "OPTUNE_SEND_DEADLINE": "2",
}
# Answer without forwarding / forward, then fail the answer (the collector stored it: the
# servo's retry is a duplicate delivery the stable id must absorb).
FAULTS_BEFORE = ("500", "503", "timeout", "reset")
FAULTS_AFTER = ("timeout-after", "reset-after", "503-after")
ALL_FAULTS = FAULTS_BEFORE + FAULTS_AFTER
# Kubernetes' default terminationGracePeriodSeconds (also example/deployment.yaml's).
POD_GRACE_S = 30.0
POSTPONED = "report postponed; it stays in the outbox"


def budget(jobs: int, per_job_s: float = 0.3) -> float:
    """A settle timeout that grows with the job count (the bench runs thousands)."""
    return 60 + jobs * per_job_s


def wait_until(
    predicate: Callable[[], Any],
    timeout_s: float,
    what: str,
    detail: Callable[[], str] | None = None,
) -> None:
    """Poll `predicate` every 20 ms; AssertionError naming `what` (and `detail()`) on timeout."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            more = f"; {detail()}" if detail is not None else ""
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}{more}")
        time.sleep(0.02)


# --- the flaky proxy in front of the collector ------------------------------------------------


@dataclass(frozen=True, slots=True)
class WireRecord:
    """One request as the proxy saw it."""

    event: str | None
    event_id: str | None
    uid: str | None  # the pod uid a MEASUREMENT names
    fault: str  # "" for a clean pass, "refused" in refuse mode, else one of ALL_FAULTS
    forwarded: int | None  # the collector's status when forwarded, else None
    answered: int | None  # the status the servo got; None after a reset or a timeout


def _describe(body: bytes) -> tuple[str | None, str | None, str | None]:
    try:
        doc = json.loads(body)
    except ValueError:
        return None, None, None
    if not isinstance(doc, dict):
        return None, None, None
    param = doc.get("param")
    ann = param.get("annotations") if isinstance(param, dict) else None
    uid = ann.get("uid") if isinstance(ann, dict) else None
    return doc.get("event"), doc.get("id"), uid if isinstance(uid, str) else None


class _ProxyServer(ConnectionTrackingServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a SIGKILLed servo resets its connections; that is the point here."""

    def __init__(self, address: tuple[str, int], proxy: FlakyProxy) -> None:
        self.proxy = proxy
        super().__init__(address, _ProxyHandler)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _ProxyServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet: the proxy's records are the log."""

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        proxy = self.server.proxy
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        event, event_id, uid = _describe(body)
        fault, latency_s = proxy._decide()
        forwarded: int | None = None
        answered: int | None = None
        try:
            if fault in ("refused", "500", "503"):
                answered = 503 if fault != "500" else 500
                self._answer(answered, b'{"error":"injected"}', retry_after="0.1")
            elif fault == "timeout":
                self._hang(proxy)
            elif fault == "reset":
                self._reset()
            else:
                forwarded, payload = proxy._forward(self.path, body, dict(self.headers.items()))
                if fault == "timeout-after":
                    self._hang(proxy)
                elif fault == "reset-after":
                    self._reset()
                elif fault == "503-after":
                    answered = 503
                    self._answer(503, b'{"error":"injected after storing"}')
                else:
                    if latency_s > 0:
                        proxy._stopping.wait(latency_s)
                    answered = forwarded
                    self._answer(forwarded, payload)
        finally:
            proxy._record(WireRecord(event, event_id, uid, fault, forwarded, answered))

    def _answer(self, status: int, payload: bytes, *, retry_after: str | None = None) -> None:
        self.send_response(status)
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _hang(self, proxy: FlakyProxy) -> None:
        """Answer nothing until the client's timeout has passed, then close."""
        proxy._stopping.wait(proxy.hang_s)
        self.close_connection = True

    def _reset(self) -> None:
        self.server.reset(self.connection)
        self.close_connection = True


class FlakyProxy:
    """An HTTP proxy on 127.0.0.1 in front of the collector that, with a seeded random.Random,
    fails a share of the requests (ALL_FAULTS), answers 503 to all of them (`refuse`), or stops
    listening altogether (`down()`, then `up()` on the same port)."""

    def __init__(
        self,
        target: str,
        *,
        seed: int = 0,
        fault_rate: float = 0.0,
        faults: Iterable[str] = ALL_FAULTS,
        latency_s: tuple[float, float] = (0.0, 0.0),
        hang_s: float = FAULT_SLEEP_S,
    ) -> None:
        parts = urlsplit(target)
        self._target = (parts.hostname or HOST, parts.port or 80)
        self._rng = random.Random(f"proxy-{seed}")
        self.fault_rate = fault_rate
        self.faults = tuple(faults)
        self.latency_s = latency_s
        self.hang_s = hang_s
        self.refuse = False
        self._lock = threading.Lock()
        self._records: list[WireRecord] = []
        self._stopping = threading.Event()
        self._server: _ProxyServer | None = None
        self._port = 0

    def up(self) -> FlakyProxy:
        """Listen (a free port the first time, the same port after `down()`)."""
        server = _ProxyServer((HOST, self._port), self)
        self._port = server.server_address[1]
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
            name=f"flaky-proxy-{self._port}",
        ).start()  # fmt: skip
        self._server = server
        return self

    start = up

    def down(self) -> None:
        """Stop listening (connection refused) and cut the open connections."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.cut_connections()
            server.server_close()

    def stop(self) -> None:
        self._stopping.set()
        self.down()

    @property
    def listening(self) -> bool:
        return self._server is not None

    def url_template(self) -> str:
        return f"http://{HOST}:{self._port}/accounts/{{acct}}/applications/{{app_id}}/servo"

    @property
    def records(self) -> list[WireRecord]:
        with self._lock:
            return list(self._records)

    def _record(self, rec: WireRecord) -> None:
        with self._lock:
            self._records.append(rec)

    def _decide(self) -> tuple[str, float]:
        with self._lock:
            if self.refuse:
                return "refused", 0.0
            fault = ""
            if self.fault_rate > 0 and self._rng.random() < self.fault_rate:
                fault = self._rng.choice(self.faults)
            low, high = self.latency_s
            return fault, (self._rng.uniform(low, high) if high > 0 else 0.0)

    def _forward(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(*self._target, timeout=10)
        try:
            given = {k.lower(): v for k, v in headers.items()}
            fwd = {"Content-Type": "application/json"}
            for name in ("Authorization", "Idempotency-Key", "User-Agent"):
                if given.get(name.lower()):
                    fwd[name] = given[name.lower()]
            conn.request("POST", path, body, fwd)
            resp = conn.getresponse()
            return resp.status, resp.read()
        except OSError as e:
            return 502, json.dumps({"error": f"collector unreachable: {e}"}).encode()
        finally:
            conn.close()


# --- the servo as a process --------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPTUNE_", "POD_NAMESP"))}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    env.update(extra)
    return env


class ServoProcess:
    """`python -m servo --kubeconfig ...`, started, SIGKILLed and restarted on one outbox;
    each run logs (JSON lines) to a file of its own."""

    def __init__(self, kubeconfig: Path, env: Mapping[str, str], log_dir: Path) -> None:
        self.kubeconfig = kubeconfig
        self.env = dict(env)
        self.log_dir = log_dir
        self.logs: list[Path] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.kills = 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, *, ready_timeout_s: float = 30) -> None:
        assert not self.alive, "servo already running"
        path = self.log_dir / f"servo-{len(self.logs)}.log"
        self.logs.append(path)
        self._log = open(path, "wb")  # noqa: SIM115 - closed when the process ends
        self.proc = subprocess.Popen(
            [*SERVO, "--kubeconfig", str(self.kubeconfig)],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            env=clean_env(**self.env), cwd=REPO,
        )  # fmt: skip
        wait_until(
            lambda: not self.alive or self.said("listed pods", run=-1),
            ready_timeout_s, "the servo's first list", lambda: self.tail(),
        )  # fmt: skip
        assert self.alive, f"servo exited with {self.proc.returncode}: {self.tail()}"

    def kill(self) -> None:
        """SIGKILL: no shutdown at all, as an OOM kill or a node loss."""
        assert self.proc is not None and self.alive
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.kills += 1
        self._closed()

    def terminate(self, timeout_s: float = 60) -> tuple[int, float]:
        """SIGTERM as the kubelet sends it; (exit code, seconds to exit)."""
        assert self.proc is not None and self.alive
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout_s)
        self._closed()
        return code, time.monotonic() - started

    def close(self) -> None:
        if self.alive:
            self.kill()
        self._closed()

    def _closed(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def lines(self, run: int | None = None) -> list[dict[str, Any]]:
        """Parsed log lines of one run (index into `logs`), or of every run."""
        paths = self.logs if run is None else self.logs[run : (run + 1) or None]
        out = []
        for path in paths:
            for raw in path.read_bytes().splitlines():
                if raw.startswith(b"{"):
                    try:
                        out.append(json.loads(raw))
                    except ValueError:
                        pass  # a line still being written
        return out

    def said(self, msg: str, *, run: int | None = None) -> int:
        return sum(1 for line in self.lines(run) if line.get("msg") == msg)

    def errors(self) -> list[str]:
        """ERROR (and worse) log lines and tracebacks of every run."""
        out = [f"{ln.get('msg')} {ln.get('error', '')}".strip() for ln in self.lines()
               if ln.get("level") in ("ERROR", "CRITICAL")]  # fmt: skip
        for path in self.logs:
            if b"Traceback" in path.read_bytes():
                out.append(f"traceback in {path.name}")
        return out

    def tail(self, n: int = 15) -> str:
        if not self.logs:
            return "(no log)"
        text = self.logs[-1].read_bytes().decode(errors="replace").splitlines()
        return "\n".join(text[-n:])


# --- jobs ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Job:
    index: int
    name: str
    uid: str
    app_id: str
    exit_code: int
    duration_s: int

    @property
    def event_id(self) -> str:
        return f"{self.uid}:MEASUREMENT"


def _stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class JobDriver:
    """Takes job pods through Pending -> Running -> terminated in the emulator, as the kubelet
    would, and deletes them as the Job controller would (also removing its job-tracking
    finalizer). Exit codes (1 in five fails) and durations (30 s + index) are known per job."""

    def __init__(
        self, emu: KubeEmulator, seed: int, *, guard: bool = False, prefix: str = "job"
    ) -> None:
        self.emu = emu
        self.guard = guard
        self.prefix = prefix
        self._rng = random.Random(f"jobs-{seed}")
        self.jobs: dict[str, Job] = {}
        self.done = 0  # jobs taken through their whole life so far
        self._lock = threading.Lock()

    def create(self) -> Job:
        with self._lock:
            i = len(self.jobs)
            job = Job(
                index=i, name=f"{self.prefix}-{i:04d}",
                uid=str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
                app_id=f"APP-{i % 7}", exit_code=1 if self._rng.random() < 0.2 else 0,
                duration_s=30 + i,
            )  # fmt: skip
            self.jobs[job.uid] = job
        pod = job_pod(job.name, namespace=NAMESPACE, jobid=job.app_id, uid=job.uid)
        finalizers = pod["metadata"].setdefault("finalizers", [])
        if self.guard:
            # As the webhook (or the job template) adds it at admission.
            finalizers.append(GUARD_FINALIZER)
        self.emu.create_pod(pod)
        return job

    def start(self, job: Job) -> None:
        self.emu.update_pod(NAMESPACE, job.name, set_running)

    def finish(self, job: Job) -> None:
        finished = _stamp(STARTED_AT + timedelta(seconds=job.duration_s))

        def terminate(pod: dict[str, Any]) -> None:
            set_terminated(
                pod, started=_stamp(STARTED_AT), finished=finished, exit_code=job.exit_code,
                reason="Completed" if job.exit_code == 0 else "Error",
            )  # fmt: skip

        self.emu.update_pod(NAMESPACE, job.name, terminate)

    def delete(self, job: Job) -> None:
        """Delete as a user or the TTL controller would; the Job controller then drops its
        job-tracking finalizer. Without the guard the pod is gone at once; with it, it waits
        (deletionTimestamp set) until the servo removes servo.optune.io/measure."""
        if not self.guard:
            self.emu.delete_pod(NAMESPACE, job.name, finalize=True)
            return
        self.emu.delete_pod(NAMESPACE, job.name)

        def drop_tracking(pod: dict[str, Any]) -> None:
            meta = pod["metadata"]
            meta["finalizers"] = [f for f in meta.get("finalizers") or [] if f != JOB_TRACKING]

        self.emu.update_pod(NAMESPACE, job.name, drop_tracking)

    def run(self, count: int, *, delete: bool = False, pace_s: float = 0.0) -> list[Job]:
        """`count` jobs, one after the other, each through its whole life (and deleted right
        after it finished when `delete`); `pace_s` between jobs spreads them out in time."""
        out = []
        for _ in range(count):
            job = self.create()
            self.start(job)
            self.finish(job)
            if delete:
                self.delete(job)
            out.append(job)
            with self._lock:
                self.done += 1
            if pace_s:
                time.sleep(pace_s)
        return out

    def pods(self) -> dict[str, dict[str, Any]]:
        """The driver's pods still in the emulator, by uid."""
        return {p["metadata"]["uid"]: p for p in self.emu.pods()
                if p["metadata"]["uid"] in self.jobs}  # fmt: skip


class Background:
    """Run a function in a thread; `join()` re-raises what it raised."""

    def __init__(self, fn: Callable[[], Any], name: str = "driver") -> None:
        self._error: BaseException | None = None

        def target() -> None:
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - handed to join()
                self._error = e

        self.thread = threading.Thread(target=target, name=name, daemon=True)
        self.thread.start()

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def join(self, timeout_s: float = 120) -> None:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "background work did not finish"
        if self._error is not None:
            raise self._error


# --- the check ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one scenario's collector stored, per job pod uid."""

    scenario: str
    jobs: int
    stored: int  # job pods with at least one stored MEASUREMENT
    lost: int  # job pods with none
    duplicated: int  # stored MEASUREMENTs beyond the first per pod
    deliveries: int  # MEASUREMENT requests that reached the collector, repeats included
    attempts: int  # MEASUREMENT requests at the proxy, failed ones included
    seconds: float
    known_lost: int = 0  # losses the scenario expects (pods gone while nobody could see them)
    lost_uids: frozenset[str] = frozenset()
    wrong: list[str] = field(default_factory=list)  # stored, but not what the job did
    unexpected: int = 0  # MEASUREMENTs naming no job of this run
    unannotated: list[str] = field(default_factory=list)  # surviving pods without the mark
    errors: list[str] = field(default_factory=list)  # the servo's ERROR lines
    kills: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (
            self.lost == self.known_lost
            and self.duplicated == 0
            and not self.wrong
            and self.unexpected == 0
            and not self.unannotated
        )


def check_measurement(job: Job, body: Mapping[str, Any]) -> str | None:
    """None when a stored MEASUREMENT is exactly what the job did, else what differs."""
    param = body.get("param") or {}
    ann = param.get("annotations") or {}
    duration = ((param.get("metrics") or {}).get("duration") or {}).get("value")
    problems = []
    if body.get("id") != job.event_id:
        problems.append(f"id {body.get('id')!r}")
    if param.get("status") == "failed":
        problems.append(f"failed: {param.get('message')!r}")
    if ann.get("pod") != job.name:
        problems.append(f"pod {ann.get('pod')!r}")
    if ann.get("exitcode") != str(job.exit_code):
        problems.append(f"exitcode {ann.get('exitcode')!r} != {job.exit_code}")
    if duration != job.duration_s:
        problems.append(f"duration {duration!r} != {job.duration_s}")
    return f"{job.name}: {', '.join(problems)}" if problems else None


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
            self.collector.url, seed=seed, fault_rate=fault_rate, faults=faults,
            latency_s=latency_s,
        ).start()  # fmt: skip
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
        return sorted(p["metadata"]["name"] for p in self.driver.pods().values()
                      if GUARD_FINALIZER in (p["metadata"].get("finalizers") or []))  # fmt: skip

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
        self, expect: Iterable[Job] | None = None, *, timeout_s: float = 60,
        annotated: bool = True,
    ) -> None:  # fmt: skip
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
        wrong = [w for uid, es in rows.items() for e in es
                 if (w := check_measurement(jobs[uid], e.body)) is not None]  # fmt: skip
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


# --- the scenarios -----------------------------------------------------------------------------


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


def graceful_shutdown(workdir: Path, *, jobs: int = 10, seed: int = 0) -> Outcome:
    """SIGTERM while the backend answers 503 to everything: GOODBYE tried, exit 0 within the
    pod's grace period, the measurements left in the outbox; a restart with the backend back
    delivers them, once each."""
    with rig(workdir, seed=seed) as r:
        r.servo.start()
        wait_until(lambda: r.stored("HELLO"), 15, "HELLO", r.state)
        r.proxy.refuse = True
        ran = r.driver.run(jobs)
        ids = {j.event_id for j in ran}
        wait_until(lambda: ids <= r.outbox_ids(), budget(jobs), "every job in the outbox", r.state)
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
            exit_code=code, exit_seconds=round(seconds, 1), goodbye_attempts=goodbyes,
            left_in_outbox=left, expected_in_outbox=ids, stored_before_restart=stored_before,
            goodbye_stored=len(r.stored("GOODBYE")),
        )  # fmt: skip
        return out


def backlog_restart(workdir: Path, *, jobs: int = 30, seed: int = 0) -> Outcome:
    """The backend refuses everything while the jobs finish; the servo is SIGKILLed with its
    measurements in the outbox and restarted with the backend back. Each should go over the
    wire once: none was ever delivered before, so there is nothing a repeat could recover."""
    with rig(workdir, seed=seed) as r:
        r.servo.start()
        wait_until(lambda: r.stored("HELLO"), 15, "HELLO", r.state)
        r.proxy.refuse = True
        ran = r.driver.run(jobs)
        ids = {j.event_id for j in ran}
        wait_until(lambda: ids <= r.outbox_ids(), budget(jobs), "every job in the outbox", r.state)
        r.servo.kill()
        r.proxy.refuse = False
        r.servo.start()
        r.settle(timeout_s=budget(jobs))
        r.stop_servo()
        out = r.outcome("backlog-restart")
        sent = Counter(rec.uid for rec in r.proxy.records
                       if rec.event == "MEASUREMENT" and rec.forwarded == 200)  # fmt: skip
        out.notes["sent_twice"] = sorted(r.driver.jobs[uid].name for uid, n in sent.items()
                                         if n > 1 and uid in r.driver.jobs)  # fmt: skip
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
                wait_until(lambda: not r.driver.pods(), 10, "every guarded pod released",
                           r.state)  # fmt: skip
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
