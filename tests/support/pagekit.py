"""Shared by the collector page tests: a real collector on a loopback port, filled with a few
jobs (one with a slash and markup in its app id, one with a failure that never ran, one with a
trend), and the page URL that opens one job. The fixture reaches the test modules through
conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from servo.collector.server import Collector
from servo.store.events import EventStore, StoredEvent

MIB = 1024 * 1024

SPECIAL = "a/b <x>"  # a slash for the URL, markup for the escaping
ETL = "nightly-etl"
HOURLY = "hourly-report"
T0 = 1_700_000_000.0


# -- the data ------------------------------------------------------------------------------------


def measurement(
    app_id: str, n: int, *, duration: float, exitcode: str = "0", mem: float = 0
) -> dict[str, Any]:
    """A MEASUREMENT body as a servo sends it."""
    return {
        "id": f"{app_id}#{n}",
        "event": "MEASUREMENT",
        "param": {
            "metrics": {
                "duration": {"value": duration, "unit": "s"},
                "cpu_time": {"value": duration * 0.75, "unit": "s"},
                "max_memory": {"value": mem or (200 + 10 * n) * MIB, "unit": "B"},
            },
            "annotations": {"exitcode": exitcode, "pod": f"{app_id}-{n}"},
        },
    }


def never_ran(app_id: str, n: int) -> dict[str, Any]:
    return {
        "id": f"{app_id}#{n}",
        "event": "MEASUREMENT",
        "param": {
            "status": "failed",
            "message": "job deleted before it ran",
            "annotations": {"exitcode": "", "pod": f"{app_id}-{n}"},
        },
    }


def jobs_data() -> dict[str, list[dict[str, Any]]]:
    """app id -> its MEASUREMENT bodies, oldest first."""
    return {
        # five runs with every figure, the fourth failed (exit 1)
        ETL: [
            measurement(ETL, n, duration=d, exitcode="1" if n == 3 else "0")
            for n, d in enumerate([12, 14, 13, 30, 15])
        ],
        # two runs, then one deleted before it ran (a failure without figures)
        SPECIAL: [
            measurement(SPECIAL, 0, duration=5),
            measurement(SPECIAL, 1, duration=6),
            never_ran(SPECIAL, 2),
        ],
        # ten runs of 10 s then ten of 12 s: trend +20%; 2.5 GiB peak memory
        HOURLY: [
            measurement(HOURLY, n, duration=10 if n < 10 else 12, mem=2.5 * 1024 * MIB)
            for n in range(20)
        ],
    }


def received_at(app_id: str, n: int) -> float:
    """When the collector received the app's n-th run: hourly, each job on its own day."""
    return T0 + list(jobs_data()).index(app_id) * 86_400 + n * 3600


def fill(store: EventStore) -> None:
    for app_id, bodies in jobs_data().items():
        for n, body in enumerate(bodies):
            store.add(
                StoredEvent(
                    received_at=received_at(app_id, n),
                    account="acct",
                    app_id=app_id,
                    event_id=body["id"],
                    event="MEASUREMENT",
                    body=body,
                )
            )


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    store = EventStore(tmp_path_factory.mktemp("collector") / "db.sqlite")
    fill(store)
    c = Collector(store=store, bind="127.0.0.1", port=0).start()
    try:
        yield c
    finally:
        c.stop()
        store.close()


def job_url(base: str, app_id: str) -> str:
    return f"{base}/#job={quote(app_id, safe='')}"
