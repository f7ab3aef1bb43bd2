"""The lesson's measured steps (1, 6, 7, 8) in Debian's Chromium at a projector's 1280x720: each step's chart
renders, its numbers are on screen, and a screenshot of each lands in artifacts/screenshots/.

A server of its own on a runs folder of its own, holding one short finished race (Plain-56 vs ResNet-56, named
like the preset) so step 1 draws measured curves; steps 6-8 use the embedded demo pair (Plain-20, ResNet-20).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest

from resnet_core import lesson
from resnet_core.train import RaceConfig, RacerSpec
from tests.browser.conftest import new_tab, screenshot, streamlit_server, wait_idle

pytestmark = pytest.mark.browser

BLOCKS = [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)]


@pytest.fixture(scope="module")
def lesson_url(_isolated_dirs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not lesson.demo_pair_ready():
        pytest.skip("the embedded demo models are not installed (make demo-models)")
    old = os.environ["RESNET_EXPLORER_RUNS"]
    os.environ["RESNET_EXPLORER_RUNS"] = str(tmp_path_factory.mktemp("lesson-browser-runs"))
    try:
        # Not a Plain-20/ResNet-20 pair, so steps 6-8 stay on the demo pair whatever this short race learns.
        race = RaceConfig(racers=(RacerSpec("resnet56", residual=False), RacerSpec("resnet56")),
                          name="Plain-56 vs ResNet-56", steps=12, batch_size=16, width=4, image_size=16,
                          n_train=128, n_test=32, eval_every=6, eval_samples=32, checkpoint_every=0)
        lesson.wait_for_race(lesson.train_race(race))
        with streamlit_server(["--server.address", "localhost"], log_name="streamlit-lesson.log",
                              prime="why-residuals", wait_warm=True) as (url, _):
            yield url
    finally:
        os.environ["RESNET_EXPLORER_RUNS"] = old


def _texts(tab, selector: str) -> list[str]:
    """The text of SVG elements (Playwright's inner_text reads HTML only)."""
    return [t.strip() for t in tab.locator(selector).evaluate_all("els => els.map(e => e.textContent)")]


def _step(tab, number: int, chart_key: str, name: str) -> None:
    """Wait for step ``number``'s chart (the plotly chart keyed ``chart_key``), scroll its header to the top of
    the viewport and screenshot it."""
    tab.locator(f".st-key-{chart_key} .main-svg").first.wait_for(state="attached", timeout=300_000)
    heading = tab.locator('[data-testid="stMain"]').get_by_role("heading", name=re.compile(rf"^{number}\. "))
    heading.evaluate("e => e.scrollIntoView({block: 'start'})")
    tab.wait_for_timeout(400)
    assert tab.locator(f".st-key-{chart_key} .main-svg").first.is_visible()
    screenshot(tab, f"why-residuals-step{number}-{name}")


def test_each_measured_step_renders_at_1280x720(profile, lesson_url: str) -> None:
    from resnet_core.weights.demo import demo_test_accuracy

    tab = new_tab(profile, 1280, 720, timeout_ms=120_000)
    try:
        tab.goto(f"{lesson_url}/why-residuals?reveal=1")  # the answers without their questions first
        main = tab.locator('[data-testid="stMain"]')
        main.get_by_role("heading", name="Why residuals work").wait_for()

        # Step 1: the finished race's training curves, one line per net.
        _step(tab, 1, "lesson_race", "curves")
        main.get_by_text(re.compile(r"^Training curves of the race '.+' of \d+ \w+ \d\d:\d\d \(")).wait_for()
        legend = _texts(tab, ".st-key-lesson_race .legendtext")
        assert {"Plain-56", "ResNet-56"} <= set(legend), legend

        # Step 6: both accuracies beside the landscape of each net.
        _step(tab, 6, "lesson_surface", "landscape")
        metrics = dict(zip(tab.locator('[data-testid="stMetricLabel"]').all_inner_texts(),
                           tab.locator('[data-testid="stMetricValue"]').all_inner_texts(), strict=True))
        assert metrics == {"Plain-20: held-out accuracy": f"{demo_test_accuracy('plain20'):.1%}",
                           "ResNet-20: held-out accuracy": f"{demo_test_accuracy('resnet20'):.1%}"}
        assert tab.locator('[data-testid="stMetricValue"]').first.is_visible()
        assert tab.locator(".st-key-lesson_surface .contourlayer, .st-key-lesson_surface .heatmaplayer").count() >= 1

        # Step 7: a bar per block on the lesion chart (downsampling blocks marked with an arrow).
        _step(tab, 7, "lesson_lesion", "lesion")
        ticks = _texts(tab, ".st-key-lesson_lesion .xtick text")
        assert [t.rstrip(" ↓") for t in ticks] == BLOCKS, ticks
        assert sum(t.endswith("↓") for t in ticks) == 2  # layer2.0 and layer3.0 change the shape
        assert {"Plain-20: one block removed", "ResNet-20: one block removed"} <= set(
            _texts(tab, ".st-key-lesson_lesion .legendtext"))
        # Every block of the residual net is removable: one drawn bar per block (the first bar trace).
        bars = tab.locator(".st-key-lesson_lesion .barlayer .trace").first.locator(".point path")
        assert bars.count() == len(BLOCKS)
        main.get_by_text(re.compile(r"ResNet-20 \d+\.\d% with every block, \d+\.\d% on average with one removed")).wait_for()

        # Step 8: six Grad-CAM overlays with their captions, and the pointing game.
        _step(tab, 8, "lesson_pointing", "grad-cam")
        assert tab.locator('[data-testid="stImage"] img').count() == 6
        assert main.get_by_text(re.compile(r"^\w+ \(predicted \w+\)$")).count() == 6  # true and predicted class
        wait_idle(tab, timeout=300_000)
        assert tab.locator('[data-testid="stException"]').count() == 0
    finally:
        tab.close()
