"""explorer_ui.chart_preload: the page Streamlit serves gains one module script that imports its Plotly chunk, so
the browser evaluates the chart library while the server still computes. Here the middleware on small ASGI apps;
tests/browser/test_chart_preload.py has the real server and browser."""

from __future__ import annotations

import asyncio
import concurrent.futures
from pathlib import Path

import pytest
from explorer_ui.chart_preload import ChartLibraryPreload, chart_chunk, preload_tag, with_preload

PAGE = b"<!DOCTYPE html><html><head><title>Streamlit</title></head><body><div id=root></div></body></html>"


def _serve(middleware: ChartLibraryPreload, path: str, headers: list[tuple[bytes, bytes]] | None = None,
           method: str = "GET") -> tuple[dict, bytes, list[tuple[bytes, bytes]]]:
    """One request through ``middleware``: (the response start, the body, the request headers the app saw)."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    request = middleware({"type": "http", "method": method, "path": path, "headers": headers or []}, receive, send)
    # A thread of its own: the worker may already run an event loop (Playwright's, in a browser test before).
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, request).result()
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start, body, middleware.app.seen_headers


class _App:
    """A small ASGI app: an HTML page in two body messages for page paths, JavaScript for /static/."""

    def __init__(self, page: bytes = PAGE, encoding: bytes | None = None, status: int = 200) -> None:
        self.page, self.encoding, self.status, self.seen_headers = page, encoding, status, []

    async def __call__(self, scope, receive, send) -> None:
        self.seen_headers = list(scope["headers"])
        html = not scope["path"].startswith("/static/")
        body = self.page if html else b"export default 1;"
        headers = [(b"content-type", b"text/html; charset=utf-8" if html else b"text/javascript"),
                   (b"content-length", str(len(body)).encode()), (b"etag", b'"abc"')]
        if self.status == 304:  # the length of what the browser holds, no body
            body = b""
        if self.encoding:
            headers.append((b"content-encoding", self.encoding))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        half = len(body) // 2
        await send({"type": "http.response.body", "body": body[:half], "more_body": True})
        await send({"type": "http.response.body", "body": body[half:], "more_body": False})


def test_the_page_gains_the_import_before_its_head_closes_with_its_length_told() -> None:
    start, body, seen = _serve(ChartLibraryPreload(_App(), chunk="PlotlyChart.X1.js"), "/architecture",
                               headers=[(b"accept-encoding", b"gzip"), (b"cookie", b"a=1")])
    tag = b'<script type="module">import("./static/js/PlotlyChart.X1.js")</script>'
    assert preload_tag("PlotlyChart.X1.js") == tag
    assert body == PAGE.replace(b"</head>", tag + b"</head>")
    headers = dict(start["headers"])
    assert int(headers[b"content-length"]) == len(body) and headers[b"etag"] == b'"abc"'
    assert seen == [(b"cookie", b"a=1")]  # asked uncompressed (a few kilobytes), everything else as sent


@pytest.mark.parametrize("path,method,encoding", [("/static/js/index.js", "GET", None),
                                                  ("/architecture", "POST", None),
                                                  ("/architecture", "GET", b"gzip")])
def test_everything_else_passes_through_untouched(path: str, method: str, encoding: bytes | None) -> None:
    app = _App(encoding=encoding)
    start, body, seen = _serve(ChartLibraryPreload(app, chunk="PlotlyChart.X1.js"), path, method=method,
                               headers=[(b"accept-encoding", b"gzip")])
    assert b"PlotlyChart" not in body and int(dict(start["headers"])[b"content-length"]) == len(body)
    if path.startswith("/static/") or method != "GET":
        assert seen == [(b"accept-encoding", b"gzip")]


def test_a_not_modified_answer_is_passed_on_as_it_is() -> None:
    """The browser revalidates its copy (which has the line already): a 304 keeps its headers and empty body."""
    start, body, _ = _serve(ChartLibraryPreload(_App(status=304), chunk="PlotlyChart.X1.js"), "/")
    assert start["status"] == 304 and body == b""
    assert dict(start["headers"])[b"content-length"] == str(len(PAGE)).encode()


def test_without_a_chunk_to_import_the_page_is_served_as_streamlit_wrote_it() -> None:
    start, body, _ = _serve(ChartLibraryPreload(_App(), chunk=""), "/")
    assert body == PAGE


def test_the_edit_is_made_once_and_only_where_there_is_a_head() -> None:
    once = with_preload(PAGE, "PlotlyChart.X1.js")
    assert with_preload(once, "PlotlyChart.X1.js") == once and once.count(b"PlotlyChart") == 1
    assert with_preload(b"<html><body>no head</body></html>", "PlotlyChart.X1.js") == b"<html><body>no head</body></html>"


def test_the_chunk_is_read_from_the_installed_frontend_and_must_be_the_only_match(tmp_path: Path) -> None:
    installed = chart_chunk()
    assert installed is not None and installed.startswith("PlotlyChart.") and installed.endswith(".js")
    assert chart_chunk(tmp_path) is None  # none: nothing to import
    (tmp_path / "PlotlyChart.a.js").write_text("")
    assert chart_chunk(tmp_path) == "PlotlyChart.a.js"
    (tmp_path / "PlotlyChart.b.js").write_text("")
    assert chart_chunk(tmp_path) is None  # two: which one the frontend imports is not ours to guess
