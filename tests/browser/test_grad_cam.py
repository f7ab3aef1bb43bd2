"""A real browser uploads a photo to the Grad-CAM page and sees the top-5 and the overlay; a broken file too."""

from __future__ import annotations

import re

import pytest

from resnet_core import cam
from resnet_core.images import sample_images
from tests.browser.conftest import screenshot, wait_idle

pytestmark = pytest.mark.browser


def _no_exception(tab) -> None:
    assert tab.locator('[data-testid="stException"]').count() == 0, "a traceback is on the page"


def _choose_upload(tab) -> None:
    main = tab.locator('[data-testid="stMain"]')
    main.get_by_text("Grad-CAM: where does the net look?").wait_for()
    wait_idle(tab)
    main.locator('[data-testid="stButtonGroup"]').get_by_text("Upload", exact=True).click()
    main.locator('[data-testid="stFileUploaderDropzoneInput"]').wait_for(state="attached")
    wait_idle(tab)


def test_upload_a_photo_and_see_the_overlay(page, server_url: str, tmp_path) -> None:
    tab = page
    photo = tmp_path / "chelsea.jpg"
    sample_images()["chelsea"].save(photo, quality=92)
    # ResNet-18 at a quarter width: ImageNet preprocessing (224 px), quick on a laptop CPU.
    tab.goto(f"{server_url}/grad-cam?arch=resnet18&width=quarter")
    _choose_upload(tab)
    main = tab.locator('[data-testid="stMain"]')
    main.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(photo))
    main.get_by_text("Top 5").wait_for()
    charts = main.locator('[data-testid="stPlotlyChart"]')
    charts.nth(1).locator(".main-svg").first.wait_for()
    wait_idle(tab)
    _no_exception(tab)
    # The map figure: a heat-map layer over the photo, titled with the explained class and layer.
    assert charts.nth(1).locator("g.hm image").count() == 1 and charts.nth(1).locator("g.im image").count() == 1
    main.get_by_text("Grad-CAM for '").first.wait_for()
    assert main.get_by_text("at layer4.1").count() >= 1
    assert main.locator('[data-testid="stDataFrame"]').count() >= 1
    assert main.get_by_role("button", name="Raw map (.npy)").count() == 1
    screenshot(tab, "grad-cam-upload")

    main.locator('[data-testid="stSlider"]').first.focus()
    main.get_by_text("Compare the last block of each stage").click()
    charts.nth(2).locator(".main-svg").first.wait_for()
    wait_idle(tab)
    _no_exception(tab)
    assert main.get_by_text("layer1.1 (56x56 map)").count() >= 1
    assert main.get_by_text("layer4.1 (7x7 map)").count() >= 1
    screenshot(tab, "grad-cam-layers")


def test_broken_upload_shows_one_sentence(page, server_url: str, tmp_path) -> None:
    tab = page
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)  # a PNG signature, then nothing valid
    tab.goto(f"{server_url}/grad-cam")
    _choose_upload(tab)
    main = tab.locator('[data-testid="stMain"]')
    main.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(broken))
    main.get_by_text("is not an image ResNet Explorer can read").wait_for()
    wait_idle(tab)
    _no_exception(tab)
    screenshot(tab, "grad-cam-broken-upload")


def test_every_method_side_by_side(page, server_url: str) -> None:
    """The grid of every method's map (all nineteen) on the sample photo, ranked, with the verdict and the ranking
    table."""
    tab = page
    tab.goto(f"{server_url}/grad-cam?arch=resnet18&width=quarter")
    main = tab.locator('[data-testid="stMain"]')
    main.get_by_text("Every method side by side").wait_for()
    wait_idle(tab)
    assert main.get_by_text("Score-CAM runs up to 129 more").count() == 1  # 128 layer4 channels at quarter width
    main.get_by_role("button", name="Compare the methods", exact=True).click()
    main.get_by_text("Which to trust:").wait_for(timeout=240_000)
    wait_idle(tab, timeout=240_000)
    _no_exception(tab)
    grid = main.locator('[data-testid="stPlotlyChart"]').filter(has_text="#1 ")
    grid.locator(".main-svg").first.wait_for()
    methods = len(cam.METHODS)
    assert methods == 19
    assert grid.locator("g.hm image").count() == methods and grid.locator("g.im image").count() == methods
    for rank in range(1, methods + 1):
        assert grid.get_by_text(re.compile(rf"^#{rank} ")).count() == 1
    assert main.get_by_text("On this image, trust").count() == 1
    grid.scroll_into_view_if_needed()
    screenshot(tab, "grad-cam-methods")
