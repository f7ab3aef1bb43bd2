"""The Activations and Gradient-flow pages in a real `streamlit run` driven by Debian's Chromium."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import screenshot, wait_idle

pytestmark = pytest.mark.browser


def _no_exception(tab) -> None:
    assert tab.locator('[data-testid="stException"]').count() == 0, "a traceback is on the page"


def test_activations_page_walks_the_depth_strip(page, server_url: str) -> None:
    tab = page
    tab.goto(f"{server_url}/activations")
    main = tab.locator('[data-testid="stMain"]')
    main.get_by_text("Activations of ResNet-20").wait_for()
    charts = tab.locator('[data-testid="stPlotlyChart"] .main-svg')
    charts.nth(4).wait_for()  # strip, maps, depth stats and both heatmaps are drawn
    wait_idle(tab)
    _no_exception(tab)
    assert tab.locator('[data-testid="stPlotlyChart"]').count() == 5
    main.get_by_text("Feature maps at layer1.0 out").wait_for()
    main.get_by_text(re.compile(r"Showing 16 of 16 channels: the 16 channels with the highest mean")).wait_for()
    main.get_by_text(re.compile(r"Measured here on this batch: ResNet-20: the std (grows|shrinks|stays about the same), [\d.,]+ after the first block")).wait_for()
    screenshot(tab, "activations-resnet20")

    main.get_by_role("button", name="Next layer", exact=True).click()
    tab.wait_for_timeout(500)
    wait_idle(tab)
    main.get_by_text("Feature maps at layer1.1 branch_in").wait_for()
    _no_exception(tab)
    screenshot(tab, "activations-next-layer")

    # A Shapes sample as input.
    main.get_by_text("Shapes sample", exact=True).click()
    tab.wait_for_timeout(500)
    wait_idle(tab)
    main.get_by_text(re.compile(r"^Shapes image 0 \(a ")).wait_for()
    charts.nth(4).wait_for()
    _no_exception(tab)
    screenshot(tab, "activations-shapes-input")


def test_gradient_flow_page_shows_the_measured_story(page, server_url: str) -> None:
    tab = page
    tab.goto(f"{server_url}/gradient-flow")
    main = tab.locator('[data-testid="stMain"]')
    main.get_by_role("heading", name="Gradient flow").first.wait_for()
    # Predict, then reveal: the norms chart comes after the student commits an answer.
    main.get_by_text("Where is the gradient norm largest: the first, middle or last block?").wait_for(
        timeout=180_000)
    main.get_by_text("The first block", exact=True).click()
    main.get_by_role("button", name="Commit my answer").click()
    main.get_by_text(re.compile(r"Measured here: (The first block|A middle block|The last block)\.")).first.wait_for(
        timeout=180_000)
    tab.locator('[data-testid="stPlotlyChart"] .main-svg').nth(2).wait_for(timeout=180_000)
    wait_idle(tab, timeout=180_000)
    _no_exception(tab)
    assert tab.locator('[data-testid="stPlotlyChart"]').count() == 3
    main.get_by_text(re.compile(r"Measured here: ResNet-20: first/last = [\d.,]+; Plain-20: first/last")).wait_for()
    main.get_by_text(re.compile(r"the shortcut carries \d+% and the branch \d+%")).wait_for()
    main.get_by_text(re.compile(r"Measured here at depth 110: plain [\d.,e+]+, residual [\d.,e+]+")).wait_for()
    screenshot(tab, "gradient-flow-resnet20")

    tab.goto(f"{server_url}/gradient-flow?arch=resnet56&plain=1&reveal=1")
    main.get_by_text(re.compile(r"Plain-56: first/last")).wait_for(timeout=180_000)
    tab.locator('[data-testid="stPlotlyChart"] .main-svg').nth(2).wait_for(timeout=180_000)
    wait_idle(tab, timeout=180_000)
    _no_exception(tab)
    main.get_by_text(re.compile(r"for ResNet-56: the shortcut carries")).wait_for()
    screenshot(tab, "gradient-flow-plain56")
