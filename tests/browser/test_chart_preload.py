"""The chart library loads while the server computes (explorer_ui.chart_preload), on the real server in Chromium:
with the app's stream cut off, so that no script runs and no chart can arrive, the browser still loads and
evaluates Streamlit's Plotly chunk. That every page's charts then draw from that one module is checked in
test_offline_requests, which walks them all."""

from __future__ import annotations

import re
import urllib.request

import pytest
from explorer_ui.chart_preload import chart_chunk, preload_tag

pytestmark = pytest.mark.browser


def test_the_page_loads_the_chart_library_before_any_chart_is_sent(browser, server_url) -> None:
    chunk = chart_chunk()
    assert chunk is not None
    html = urllib.request.urlopen(f"{server_url}/architecture", timeout=30).read()
    assert html.count(preload_tag(chunk)) == 1 and html.index(preload_tag(chunk)) < html.index(b"</head>")

    context = browser.new_context(viewport={"width": 1280, "height": 720})
    # The app's stream is answered by nobody: the page never reaches the server's script, so no element arrives.
    context.route_web_socket(re.compile(r".*/_stcore/stream$"), lambda socket: None)
    loaded: list[str] = []
    context.on("requestfinished", lambda request: loaded.append(request.url))
    tab = context.new_page()
    tab.set_default_timeout(60_000)
    try:
        tab.goto(f"{server_url}/architecture")
        tab.wait_for_function("() => window.Plotly !== undefined || performance.getEntriesByType('resource')"
                              f".some(entry => entry.name.endsWith('/{chunk}'))")
        assert any(url.endswith(f"/static/js/{chunk}") for url in loaded), loaded
        assert tab.locator('[data-testid="stPlotlyChart"]').count() == 0
    finally:
        context.close()

