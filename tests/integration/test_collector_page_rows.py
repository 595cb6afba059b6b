"""The collector's page in a real headless browser (see browser.py) over a file that holds
rows no check let through (written straight into SQLite): the jobs table and a job's history
still draw, from the rows that can be read, and no error is shown."""

from __future__ import annotations

import json
from pathlib import Path

from servo.collector.server import Collector
from servo.store.events import EventStore
from tests.support.browser import by_id, chart, dump, job_rows, needs_chromium
from tests.support.collectorkit import GARBAGE, HUGE, measurement, raw_insert
from tests.support.pagekit import job_url


@needs_chromium
def test_page_draws_around_rows_it_cannot_use(tmp_path: Path) -> None:
    db = tmp_path / "servo.db"
    EventStore(db).close()
    good = [
        {
            "body": json.dumps(measurement(f"ok{n}", 10 + n)),
            "app_id": "MIXED",
            "received_at": 1_700_000_000.0 + 3600 * n,
        }
        for n in range(3)
    ]
    bad = [{**row, "app_id": "MIXED"} for row in GARBAGE if "app_id" not in row]
    raw_insert(db, [*good, *bad, {"body": json.dumps(measurement("h", HUGE)), "app_id": "HUGE"}])
    with EventStore(db) as store, Collector(store=store, port=0) as c:
        table = dump(tmp_path / "table", c.url + "/")
        detail = dump(tmp_path / "detail", job_url(c.url, "MIXED"))

    rows = job_rows(table)
    assert {"MIXED", "HUGE"} <= set(rows) and by_id(table, "error").hidden
    assert rows["MIXED"].one("td", "duration-max").text() == "12 s"
    assert rows["HUGE"].one("td", "duration-max").text() == "—"
    assert by_id(detail, "job-error").hidden and not by_id(detail, "detail").hidden
    # the three good runs, and the one whose only fault is an exit code too long to show
    circles = chart(detail, "duration").all("circle")
    assert len(circles) == 4
    assert {1_700_000_000 + 3600 * n for n in range(3)} <= {
        int(c.attrs["data-at"]) for c in circles
    }
