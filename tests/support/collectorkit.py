"""Shared by the collector tests: POST as a servo posts, a MEASUREMENT body, strict JSON (a
NaN or an Infinity fails the test), rows written straight into the SQLite file, and the
collector run as a process."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from servo.collector.server import Collector

TOKEN = "collector-s3cret"
URL = "/accounts/acme/applications/{app}/servo"
SERVO = [sys.executable, "-m", "servo"]


def post(
    c: Collector,
    body: Any,
    *,
    app: str = "APP",
    token: str | None = TOKEN,
    path: str = URL,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    h = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    # Quoted as the servo quotes it (ReportConfig.url_for): a '/' in an app id stays one segment.
    return requests.post(
        c.url + path.format(app=quote(app, safe="")), data=data, headers=h, timeout=10
    )


def measurement(uid: str, duration: Any = 10, **annotations: Any) -> dict[str, Any]:
    notes = {"exitcode": "0", "uid": uid, "pod": f"pod-{uid}", **annotations}
    metrics = {"duration": {"value": duration, "unit": "s"}}
    param = {"metrics": metrics, "annotations": notes}
    return {"id": f"{uid}:MEASUREMENT", "event": "MEASUREMENT", "param": param}


HUGE = 10**4000 - 1  # 4,000 digits: float() of it overflows

# Rows for raw_insert that no check let through: impossible figures, bodies that are not JSON
# (or not objects), times and app ids of the wrong type.
GARBAGE: list[dict[str, Any]] = [
    {"body": json.dumps(measurement("g1", HUGE))},
    {"body": '{"event": "MEASUREMENT", "param": {"metrics": {"duration": {"value": NaN}}}}'},
    {"body": '{"event": "MEASUREMENT", "param": {"metrics": {"cpu_time": {"value": Infinity}}}}'},
    {"body": "not json at all"},
    {"body": "[" * 100_000},
    {"body": b"\xff\xfe binary"},
    {"body": '{"event": "MEASUREMENT", "param": [1, 2]}'},
    {"body": '{"event": "MEASUREMENT", "param": {"metrics": [], "annotations": "x"}}'},
    {"body": json.dumps(measurement("g2", -5))},
    {"body": json.dumps(measurement("g3")), "received_at": "yesterday"},
    {"body": json.dumps(measurement("g4")), "received_at": 1e300},
    {"body": json.dumps(measurement("g5")), "received_at": -1},
    {"body": json.dumps(measurement("g6")), "app_id": b"\xff\x00blob"},
    {"body": json.dumps(measurement("g7")), "app_id": 12345},
    {"body": json.dumps({**measurement("g8"), "param": {"status": "failed", "message": [1]}})},
    {"body": json.dumps(measurement("g9", exitcode=HUGE))},
]


def _no_constant(name: str) -> Any:
    raise AssertionError(f"{name} in JSON output")


def strict_loads(text: str | bytes) -> Any:
    """json.loads that fails on NaN, Infinity and -Infinity, which are not JSON."""
    return json.loads(text, parse_constant=_no_constant)


def get_json(c: Collector, path: str) -> Any:
    r = requests.get(c.url + path, timeout=10)
    assert r.status_code == 200, r.text
    return strict_loads(r.content)


def raw_insert(db: Path, rows: list[Mapping[str, Any]]) -> None:
    """Rows straight into the events table, bypassing every check (as another program, an
    older version or a hand edit could)."""
    with sqlite3.connect(db) as conn:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(events)")]
        for row in rows:
            full = {
                "received_at": 1_700_000_000.0,
                "account": "acme",
                "app_id": "APP",
                "event_id": os.urandom(8).hex(),
                "event": "MEASUREMENT",
                "pod_uid": None,
                "body": "{}",
                **row,
            }
            names = [n for n in full if n in cols]
            conn.execute(
                f"INSERT INTO events ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                [full[n] for n in names],
            )


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COLLECTOR_", "SERVO_DB"))}
    env.update(extra)
    return env


def run_servo(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    environ = dict(env if env is not None else clean_env())
    return subprocess.run(
        [*SERVO, *args], capture_output=True, text=True, timeout=timeout, env=environ, check=False
    )
