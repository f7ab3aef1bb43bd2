"""The Training race page in Debian's Chromium: Start, watch the curves update live, Stop."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import screenshot, wait_idle

pytestmark = pytest.mark.browser

PROGRESS = '[data-testid="stProgress"]'


def _step_shown(tab) -> int:
    text = tab.locator(PROGRESS).inner_text()
    match = re.search(r"step (\d+) of", text)
    return int(match.group(1)) if match else -1


def test_start_live_curves_then_stop(page, server_url: str) -> None:
    tab = page
    tab.goto(f"{server_url}/training?reveal=1")
    main = tab.locator('[data-testid="stMain"]')
    main.get_by_role("heading", name="Training race").wait_for()
    wait_idle(tab)
    # A slim net keeps the shared 2-core machine responsive; everything else is the preset's.
    width = main.get_by_role("spinbutton", name="Width (channels of the first stage)")
    width.fill("4")
    width.press("Enter")
    wait_idle(tab)
    main.get_by_role("button", name="Start", exact=True).click()

    tab.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for(timeout=180_000)
    first = _step_shown(tab)
    assert first >= 1
    # Live: the progress bar redraws every 2 s while the thread trains; the step count climbs by itself.
    tab.wait_for_function(
        f"""() => {{
            const el = document.querySelector('{PROGRESS}');
            const m = el && el.innerText.match(/step (\\d+) of/);
            return m && Number(m[1]) >= {first + 3};
        }}""", timeout=180_000)
    assert "running" in tab.locator(PROGRESS).inner_text()
    assert main.get_by_role("button", name="Start", exact=True).is_disabled()
    assert tab.locator('[data-testid="stException"]').count() == 0
    screenshot(tab, "training-live")
    # A projector's first screen: the settings folded, the live loss curves in view without scrolling.
    tab.set_viewport_size({"width": 1280, "height": 720})
    tab.evaluate("() => document.querySelectorAll('[data-testid=\"stMain\"], [data-testid=\"stAppViewContainer\"]')"
                 ".forEach(el => el.scrollTo(0, 0))")
    tab.wait_for_timeout(500)
    assert not main.get_by_role("spinbutton", name="Steps", exact=True).is_visible()
    curves = tab.locator('[data-testid="stPlotlyChart"] .main-svg').first
    curves.wait_for(state="visible")  # drawn again at the new size (and by the live view's redraws)
    chart = curves.bounding_box()
    assert chart is not None and chart["y"] + 200 < 720, chart  # the loss panel's top 200 px on screen
    assert main.get_by_role("button", name="Stop", exact=True).bounding_box()["y"] < 720
    screenshot(tab, "training-live-1280x720")
    tab.set_viewport_size({"width": 1400, "height": 2400})

    main.get_by_role("button", name="Stop", exact=True).click()
    main.get_by_text(re.compile(r"· stopped ·")).wait_for(timeout=60_000)
    wait_idle(tab)
    stopped_at = _step_shown(tab)
    tab.wait_for_timeout(2500)
    assert _step_shown(tab) == stopped_at  # nothing trains after Stop
    assert main.get_by_role("button", name="Start", exact=True).is_enabled()
    assert main.get_by_role("button", name="Stop", exact=True).is_disabled()
    table = main.locator('[data-testid="stDataFrame"]').first
    table.wait_for()
    assert tab.locator('[data-testid="stPlotlyChart"]').count() == 2
    main.get_by_text("Trained model").wait_for()
    assert tab.locator('[data-testid="stException"]').count() == 0
    screenshot(tab, "training-stopped")
