"""The chart library loads while the server computes: an ASGI middleware that adds one line to Streamlit's page.

Streamlit's frontend loads its Plotly chunk (4.7 MB of JavaScript) only when the first chart arrives, and
evaluating it takes the browser about 1.5 s on this machine: on a cold start that came after the server's
own work, on the critical path to the first chart. ``ChartLibraryPreload`` adds
``<script type="module">import("./static/js/PlotlyChart.<hash>.js")</script>`` to the HTML page Streamlit
serves, after Streamlit's own entry script, so the browser evaluates the chunk while the server imports torch
and counts the landing page's layers. The module map is keyed by URL: the chart element later imports the
very same, already evaluated module. Measured in benchmarks/bench_cold_start.py.

The chunk's name carries a content hash that changes with every Streamlit release; it is read from the
installed package, and when exactly one file matches nothing else is needed. With none (or several) the page
is served as Streamlit wrote it: the charts still load, as before, when they arrive.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CHART_CHUNK_GLOB = "PlotlyChart.*.js"
_LOGGER = logging.getLogger("resnet_explorer.chart_preload")


def chart_chunk(static_js: Path | None = None) -> str | None:
    """The file name of Streamlit's Plotly chunk in its installed frontend, or None unless exactly one matches.
    Read once per server, when the middleware is built."""
    if static_js is None:
        import streamlit

        static_js = Path(streamlit.__file__).parent / "static" / "static" / "js"
    found = sorted(path.name for path in static_js.glob(CHART_CHUNK_GLOB))
    if len(found) != 1:
        _LOGGER.warning("chart preload off: %d files match %s in %s", len(found), CHART_CHUNK_GLOB, static_js)
        return None
    return found[0]


def preload_tag(chunk: str) -> bytes:
    """The line added before ``</head>``: a module script (run after Streamlit's own, in document order) that
    imports the chunk by the same relative URL Streamlit's frontend uses."""
    return f'<script type="module">import("./static/js/{chunk}")</script>'.encode()


def with_preload(html: bytes, chunk: str) -> bytes:
    """``html`` with the preload line before its ``</head>``; unchanged when it has no head or has the line."""
    tag = preload_tag(chunk)
    if tag in html or b"</head>" not in html:
        return html
    return html.replace(b"</head>", tag + b"</head>", 1)


class ChartLibraryPreload:
    """ASGI middleware: Streamlit's HTML page (the index it serves for every page's path) gains the preload
    line. Every other response passes through untouched and unbuffered."""

    def __init__(self, app: ASGIApp, chunk: str | None = None) -> None:
        self.app = app
        self.chunk = chunk if chunk is not None else chart_chunk()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET" or not self.chunk \
                or any(part in scope.get("path", "") for part in ("/_stcore/", "/static/", "/media/", "/component/")):
            await self.app(scope, receive, send)
            return
        # The page is a few kilobytes: ask the inner app for it uncompressed so that it can be edited.
        scope = dict(scope)
        scope["headers"] = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"accept-encoding"]
        start: Message | None = None
        body: list[bytes] = []
        chunk = self.chunk

        async def send_edited(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = {k.lower(): v for k, v in message.get("headers", [])}
                if message.get("status") == 200 and headers.get(b"content-type", b"").startswith(b"text/html") \
                        and b"content-encoding" not in headers:
                    start = message  # held until the whole body is here
                    return
                await send(message)
            elif message["type"] == "http.response.body" and start is not None:
                body.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                edited = with_preload(b"".join(body), chunk)
                headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(edited)).encode()))
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": edited, "more_body": False})
            else:
                await send(message)

        await self.app(scope, receive, send_edited)
