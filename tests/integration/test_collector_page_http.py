"""The collector's page (servo/collector/web/index.html) over plain HTTP: served as HTML, loading
nothing from outside the collector, and a script that never turns data into markup."""

from __future__ import annotations

import re
import urllib.request

from servo.collector.server import Collector, page_html

SVG_NS = "http://www.w3.org/2000/svg"

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
