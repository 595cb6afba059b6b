"""The collector's page rendered by a real headless browser (see browser.py) against a real
collector filled with a few jobs: the jobs table, one job's history and charts, the empty and
failing states, and a screenshot that shows the charts."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from servo.collector.server import Collector, page_html
from servo.store.events import EventStore
from tests.support.browser import (
    by_id,
    chart,
    chromium,
    decode_png,
    dump,
    job_rows,
    needs_chromium,
)
from tests.support.pagekit import ETL, HOURLY, SPECIAL, job_url, jobs_data, received_at

FIGURES = ("duration", "cpu_time", "max_memory")

# -- in a browser --------------------------------------------------------------------------------


@needs_chromium
def test_jobs_table_has_a_row_per_job(collector: Collector, tmp_path: Path) -> None:
    doc = dump(tmp_path, collector.url + "/")
    rows = job_rows(doc)
    expected = jobs_data()

    assert sorted(rows) == sorted(expected)
    for app_id, bodies in expected.items():
        failures = sum(
            b["param"].get("status") == "failed" or b["param"]["annotations"]["exitcode"] != "0"
            for b in bodies
        )
        assert rows[app_id].one("td", "runs").text() == str(len(bodies))
        assert rows[app_id].one("td", "failures").text() == str(failures)
    assert by_id(doc, "empty").hidden and by_id(doc, "error").hidden
    assert by_id(doc, "count").text() == "3 jobs"
    # figures, formatted
    etl = rows[ETL]
    assert etl.one("td", "duration-p50").text() == "14 s"
    assert etl.one("td", "duration-max").text() == "30 s"
    assert etl.one("td", "max_memory-max").text() == "240 MiB"
    assert rows[HOURLY].one("td", "max_memory-p50").text() == "2.50 GiB"
    trend = rows[HOURLY].one("span", "trend")
    assert trend.text() == "+20%" and "up" in trend.classes
    assert rows[ETL].one("span", "trend").text() == "—"  # too few runs to compare
    assert "T" in rows[ETL].one("time").attrs["datetime"]


@needs_chromium
def test_special_app_id_stays_text(collector: Collector, tmp_path: Path) -> None:
    doc = dump(tmp_path, job_url(collector.url, SPECIAL))
    link = job_rows(doc)[SPECIAL].one("td", "app").one("a")

    assert link.text() == SPECIAL
    assert link.attrs["href"] == "#job=a%2Fb%20%3Cx%3E"
    assert not doc.all("x"), "the app id was parsed as markup"
    # its history was fetched by the URL-encoded id and drawn
    assert by_id(doc, "job-title").text() == SPECIAL
    assert not by_id(doc, "detail").hidden and by_id(doc, "job-error").hidden
    runs = by_id(doc, "runs").one("tbody").all("tr")
    assert len(runs) == 3
    assert [("failed" in r.classes) for r in runs] == [True, False, False]  # newest first
    assert runs[0].one("td", "message").text() == "job deleted before it ran"
    for figure in FIGURES:
        svg = chart(doc, figure)
        assert len(svg.all("circle")) == 2  # the run that never ran has no figures...
        assert len(svg.all("path", "miss")) == 1  # ...and is a red cross on the time axis


@needs_chromium
def test_job_charts_have_a_point_per_run(collector: Collector, tmp_path: Path) -> None:
    doc = dump(tmp_path, job_url(collector.url, ETL))
    runs = jobs_data()[ETL]

    assert by_id(doc, "job-title").text() == ETL
    assert "selected" in job_rows(doc)[ETL].classes
    for figure in FIGURES:
        svg = chart(doc, figure)
        circles = svg.all("circle")
        assert len(circles) == len(runs)
        assert [float(c.attrs["data-at"]) for c in circles] == [
            received_at(ETL, n) for n in range(len(runs))
        ]
        assert [("failed" in c.classes) for c in circles] == [n == 3 for n in range(len(runs))]
        assert len(svg.all("polyline")) == 1
        # axis labels at the lowest and highest value
        assert len(svg.all("text", "tick")) == 2
    assert [t.text() for t in chart(doc, "duration").all("text", "tick")] == ["12 s", "30 s"]
    assert len(by_id(doc, "runs").one("tbody").all("tr")) == len(runs)


@needs_chromium
def test_no_jobs_yet_says_how_to_make_one(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "empty.sqlite")
    c = Collector(store=store, bind="127.0.0.1", port=0).start()
    try:
        doc = dump(tmp_path / "profile", c.url + "/")
    finally:
        c.stop()
        store.close()
    empty = by_id(doc, "empty")

    assert not empty.hidden
    assert "No jobs yet" in empty.text() and "servo measure -- sleep 1" in empty.text()
    assert job_rows(doc) == {}
    assert by_id(doc, "error").hidden


class _FailingApi(BaseHTTPRequestHandler):
    """The page, and a 500 for every API call."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        if self.path.startswith("/api/"):
            status, kind, data = (
                500,
                "application/json",
                json.dumps({"error": "disk full"}).encode(),
            )
        else:
            status, kind, data = 200, "text/html; charset=utf-8", page_html()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@needs_chromium
def test_fetch_errors_are_shown(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FailingApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        doc = dump(tmp_path, job_url(f"http://127.0.0.1:{server.server_address[1]}", ETL))
    finally:
        server.shutdown()
        server.server_close()
    error, job_error = by_id(doc, "error"), by_id(doc, "job-error")

    assert not error.hidden and error.attrs["role"] == "alert"
    assert error.text() == "Could not load the jobs: HTTP 500: disk full"
    assert not job_error.hidden and "HTTP 500: disk full" in job_error.text()
    assert not doc.all("circle")


@needs_chromium
def test_screenshot_shows_the_charts(collector: Collector, tmp_path: Path) -> None:
    png = tmp_path / "page.png"
    chromium(
        tmp_path / "profile",
        f"--screenshot={png}",
        "--window-size=1280,800",
        job_url(collector.url, ETL),
    )
    width, height, rows = decode_png(png.read_bytes())
    pixels = Counter(row[i : i + 3] for row in rows for i in range(0, len(row), 3))

    def count(test: Callable[[int, int, int], bool]) -> int:
        return sum(n for (r, g, b), n in pixels.items() if test(r, g, b))

    assert (width, height) == (1280, 800)
    assert len(pixels) > 50, "a nearly flat image: the page did not render"
    assert pixels[b"\xff\xff\xff"] < 0.97 * width * height, "a blank page"
    # the failed run's points (red), the other points and the lines (blue)
    assert count(lambda r, g, b: r > 190 and g < 80 and b < 80) >= 30
    assert count(lambda r, g, b: b > 200 and r < 80 and g < 140) >= 60
