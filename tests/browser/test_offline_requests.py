"""Offline and projector check in a real browser: a class clicks through every page (through the sidebar, as a
teacher would), every request the browser makes is recorded and must go to the local server (no font server, no
icon CDN, no metrics), the favicon is the bundled one, and each page's first screen is saved at 1280x720, the
projector's size, in artifacts/screenshots/offline-<page>.png for a person to look at."""

from __future__ import annotations

import re
import urllib.parse

import pytest
from explorer_ui.chart_preload import chart_chunk
from explorer_ui.warm_start import navigation_pages

from tests.browser.conftest import new_tab, screenshot, wait_idle
from tests.conftest import APP_SCRIPT

pytestmark = pytest.mark.browser

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
PROJECTOR = {"width": 1280, "height": 720}


def _pages() -> list[tuple[str, str]]:
    """(title, url_path) of every page app/navigation.py navigates to (warm_start's one reader of that list)."""
    pages = navigation_pages(APP_SCRIPT)
    assert len(pages) >= 6, pages
    return pages


def _foreign(requests: list[str]) -> list[str]:
    out = []
    for url in requests:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme in ("data", "blob", "about", "chrome-extension"):
            continue
        if parts.hostname not in LOCAL_HOSTS:
            out.append(url)
    return out


def _settle(tab) -> None:
    """The run finished and, where the page has charts, the first one is drawn (Plotly's bundle loads lazily)."""
    wait_idle(tab, timeout=240_000)
    if tab.locator('[data-testid="stPlotlyChart"]').count():
        tab.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for(state="attached", timeout=120_000)
    wait_idle(tab, timeout=240_000)


def test_every_page_loads_only_from_localhost_and_is_screenshot_at_projector_size(profile, server_url) -> None:
    tab = new_tab(profile, PROJECTOR["width"], PROJECTOR["height"], timeout_ms=120_000)
    requests: list[str] = []
    tab.on("request", lambda request: requests.append(request.url))
    try:
        pages = _pages()
        tab.goto(f"{server_url}/{pages[0][1]}")
        shots = []
        for title, path in pages:
            if path != pages[0][1]:
                tab.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title, exact=True).click()
            tab.locator('[data-testid="stMain"] h1').filter(has_text=re.compile(r"\w")).first.wait_for()
            _settle(tab)
            assert urllib.parse.urlsplit(tab.url).path == f"/{path}", (title, tab.url)
            assert tab.locator('[data-testid="stException"]').count() == 0, title
            shots.append(screenshot(tab, f"offline-{path}"))
        # The favicon is ours, served by this server (no emoji font, no icon CDN).
        icons = tab.eval_on_selector_all('link[rel~="icon"]', "links => links.map(l => l.href)")
        assert icons, "the page declares no favicon"
        for href in icons:
            parts = urllib.parse.urlsplit(href)
            assert parts.scheme == "data" or parts.hostname in LOCAL_HOSTS, href
        assert any(".png" in href or href.startswith("data:image/png") for href in icons), icons
        assert all(path.stat().st_size > 10_000 for path in shots)  # a real first screen, not a blank page
    finally:
        tab.close()
    local = [u for u in requests if urllib.parse.urlsplit(u).hostname in LOCAL_HOSTS]
    assert len(local) > 20, "the browser recorded too few requests to mean anything"
    assert not _foreign(requests), _foreign(requests)
    # The chart library is loaded once, by the page's preload (explorer_ui.chart_preload), and every page's
    # charts draw from that one module.
    assert sum(u.endswith(f"/static/js/{chart_chunk()}") for u in local) == 1


def test_a_shared_activations_link_reopens_the_same_view(profile, server_url) -> None:
    """The page's settings (image, batch, batch-norm mode, layer) travel in the browser's URL and come back."""
    tab = new_tab(profile, timeout_ms=120_000)
    try:
        link = (f"{server_url}/activations?weights=random&act_source=shapes&act_shape=5&act_batch=4&act_bn=running"
                "&act_layer=layer2.1.tap_sum")
        tab.goto(link)
        main = tab.locator('[data-testid="stMain"]')
        main.get_by_text("Feature maps at layer2.1 sum").wait_for()
        main.get_by_text(re.compile(r"^Shapes image 5 \(a \w+\) \(first of a batch of 4\)")).wait_for()
        _settle(tab)
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(tab.url).query)
        assert {k: query[k] for k in ("act_source", "act_shape", "act_batch", "act_bn", "act_layer")} == {
            "act_source": ["shapes"], "act_shape": ["5"], "act_batch": ["4"], "act_bn": ["running"],
            "act_layer": ["layer2.1.tap_sum"]}
        # A click changes the URL: the next shared link carries it.
        main.get_by_role("button", name="Next layer", exact=True).click()
        main.get_by_text("Feature maps at layer2.1 out").wait_for()
        _settle(tab)
        assert "act_layer=layer2.1.tap_out" in tab.url
    finally:
        tab.close()
