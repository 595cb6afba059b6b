"""The collector's page (servo/web/index.html): over plain HTTP, and rendered by a real headless
browser (Debian's chromium) against a real collector filled with a few jobs.

The browser runs with `--dump-dom` (the DOM after the page's JS has fetched and drawn, parsed
here with the stdlib) and `--screenshot` (a PNG decoded here with zlib/struct). Without
/usr/bin/chromium the browser tests are skipped; CI installs it (`apt-get install -y chromium`).
"""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import threading
import urllib.request
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from servo.collector import Collector, page_html
from servo.store import EventStore, StoredEvent

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium at /usr/bin/chromium "
    "(apt-get update && apt-get install -y chromium); CI installs it",
)
BROWSER_TIMEOUT_S = 30
SVG_NS = "http://www.w3.org/2000/svg"
FIGURES = ("duration", "cpu_time", "max_memory")
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


# -- a headless browser --------------------------------------------------------------------------


def chromium(profile: Path, *args: str) -> str:
    """Run headless chromium to completion; its stdout. Killed (with its children) on timeout."""
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        # lets the page's fetches and drawing finish before the dump or screenshot
        "--virtual-time-budget=5000",
        *args,
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group, so that its helpers die with it
    )
    try:
        out, err = proc.communicate(timeout=BROWSER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        out, err = proc.communicate()
        pytest.fail(f"chromium ran over {BROWSER_TIMEOUT_S} s: {' '.join(args)}\n{err[-3000:]}")
    finally:
        _kill_group(proc.pid)  # any helper process left behind
    assert proc.returncode == 0, f"chromium exited {proc.returncode}:\n{err[-3000:]}"
    return out


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# -- a small DOM of the dumped page (stdlib html.parser) -----------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    @property
    def hidden(self) -> bool:
        return "hidden" in self.attrs

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self) -> Iterator[Node]:
        for c in self.children:
            if isinstance(c, Node):
                yield c
                yield from c.iter()

    def all(self, tag: str, cls: str | None = None, **attrs: str) -> list[Node]:
        """Descendants by tag, class and attributes (data_app= means data-app=)."""
        want = {k.replace("_", "-"): v for k, v in attrs.items()}
        return [
            n
            for n in self.iter()
            if n.tag == tag
            and (cls is None or cls in n.classes)
            and all(n.attrs.get(k) == v for k, v in want.items())
        ]

    def one(self, tag: str, cls: str | None = None, **attrs: str) -> Node:
        found = self.all(tag, cls, **attrs)
        assert len(found) == 1, f"expected one <{tag} class={cls} {attrs}>, found {len(found)}"
        return found[0]


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.open = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.open[-1].children.append(node)
        if tag not in VOID:
            self.open.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.open[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.open) - 1, 0, -1):
            if self.open[i].tag == tag:
                del self.open[i:]
                return

    def handle_data(self, data: str) -> None:
        self.open[-1].children.append(data)


def parse(html: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


def by_id(root: Node, id_: str) -> Node:
    [node] = [n for n in root.iter() if n.attrs.get("id") == id_]
    return node


def dump(profile: Path, url: str) -> Node:
    return parse(chromium(profile, "--dump-dom", url))


def job_rows(doc: Node) -> dict[str, Node]:
    rows = [r for r in by_id(doc, "jobs").one("tbody").all("tr") if "data-app" in r.attrs]
    return {r.attrs["data-app"]: r for r in rows}


def chart(doc: Node, figure: str) -> Node:
    return doc.one("svg", "chart", data_figure=figure)


# -- PNG (stdlib only) ---------------------------------------------------------------------------


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB bytes) of an 8-bit RGB or RGBA, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        assert (
            zlib.crc32(kind + body)
            == struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0]
        )
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    assert header is not None, "no IHDR"
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    assert len(raw) == height * (stride + 1)
    rows, prev = [], bytearray(stride)
    for y in range(height):
        kind, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 0xFF
        else:
            assert kind == 0, f"unknown PNG filter {kind}"
        rows.append(bytes(line) if bpp == 3 else bytes(b for i, b in enumerate(line) if i % 4 != 3))
        prev = line
    return width, height, rows


# -- plain HTTP ----------------------------------------------------------------------------------


def get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read()


def test_page_is_served_as_html(collector: Collector) -> None:
    status, content_type, body = get(collector.url + "/")

    assert status == 200
    assert content_type == "text/html; charset=utf-8"
    assert body.lstrip().lower().startswith(b"<!doctype html>")
    assert b'<meta charset="utf-8">' in body
    assert get(collector.url + "/index.html")[2] == body


def test_page_loads_nothing_from_outside(collector: Collector) -> None:
    html = get(collector.url + "/")[2].decode()

    # The SVG namespace is a name, never fetched; any other absolute URL would be.
    assert set(re.findall(r"https?://[^\s\"'<>)]+", html)) <= {SVG_NS}
    assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(//|[a-z]+:)""", html, re.I)
    assert "@import" not in html and "url(" not in html
    assert not re.search(r"<(script|link|img|iframe)[^>]*\s(src|href)=", html, re.I)
    # and the browser is told so: nothing but this collector is reachable
    assert "default-src 'none'" in html and "connect-src 'self'" in html


def test_page_script_never_turns_data_into_markup() -> None:
    script = page_html().decode()

    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, f"{sink} in index.html: build elements, set textContent"


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
