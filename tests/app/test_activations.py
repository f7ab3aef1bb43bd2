"""The Activations page through the real app (AppTest), asserting on chart data and visible text."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from resnet_core.plots.style import fmt_value
from tests.app.conftest import open_page

PAGE = "../pages/activations.py"


def _by_kind(app) -> dict[str, dict]:
    figs = [json.loads(c.proto.spec) for c in app.get("plotly_chart")]
    kinds = {}
    for fig in figs:
        types = {d.get("type") for d in fig["data"]}
        names = [d.get("name") for d in fig["data"]]
        if "selected" in names:
            kinds["strip"] = fig
        elif types == {"heatmap"} and len(fig["data"]) > 1:
            kinds["maps"] = fig
        elif types == {"heatmap"}:
            kinds.setdefault("heat", []).append(fig)
        else:
            kinds["depth"] = fig
    return kinds


@pytest.fixture
def page(app):
    return open_page(app, PAGE)


def test_default_view_shows_maps_depth_stats_and_heatmaps(page):
    assert page.title[0].value == "Activations of ResNet-20"
    slider = page.select_slider(key="act_layer")
    assert slider.value == "layer1.0.tap_out"
    assert slider.options[0] == "stem" and len(slider.options) == 1 + 9 * 6
    figs = _by_kind(page)
    # Feature maps: at most 16 tiles of at most 32x32 (a 32x32 CIFAR map is shown at full size).
    tiles = figs["maps"]["data"]
    assert len(tiles) == 16
    assert all(len(t["z"]) <= 32 and len(t["z"][0]) <= 32 for t in tiles)
    assert any("Showing 16 of 16 channels" in c.value and "highest mean activation" in c.value for c in page.caption)
    # Stats across depth: both nets, one point per block, three panels each.
    depth = figs["depth"]["data"]
    names = [t["name"] for t in depth]
    assert names.count("ResNet-20") == 3 and names.count("Plain-20") == 3
    assert all(len(t["y"]) == 9 for t in depth)
    inactive = [t for t in depth if t["yaxis"] == "y3"]
    assert all(0 <= v <= 1 for t in inactive for v in t["y"])
    stds = [t for t in depth if t["yaxis"] == "y2"]
    assert all(v > 0 for t in stds for v in t["y"])
    # The text quotes the numbers the chart shows.
    resnet_std = next(t for t in stds if t["name"] == "ResNet-20")["y"]
    text = next(m.value for m in page.markdown if "Measured here on this batch" in m.value)
    ratio = resnet_std[-1] / resnet_std[0]
    trend = "grows" if ratio > 1.1 else "shrinks" if ratio < 1 / 1.1 else "stays about the same"
    assert (f"ResNet-20: the std {trend}, {fmt_value(resnet_std[0])} after the first block and {fmt_value(resnet_std[-1])} "
            "after the last") in text
    assert "accumulates with depth" not in text  # stated from the measurement, not assumed
    # Colorful dimension: one heatmap per net, 9 block columns, 48 fixed bins.
    heat = figs["heat"]
    assert len(heat) == 2 and [h["layout"]["title"]["text"] for h in heat] == ["ResNet-20", "Plain-20"]
    assert all(len(h["data"][0]["x"]) == 9 and len(h["data"][0]["y"]) == 48 for h in heat)


def test_next_and_previous_walk_the_depth_strip(page):
    slider = page.select_slider(key="act_layer")
    labels = slider.options  # shown as labels: "stem", "layer1.0 branch_in", ...
    start = labels.index("layer1.0 out")
    assert labels[start + 1] == "layer1.1 branch_in"
    page.button(key="act_next").click().run()
    assert page.select_slider(key="act_layer").value == "layer1.1.tap_branch_in"
    assert any(s.value.startswith("Feature maps at layer1.1 branch_in") for s in page.subheader)
    page.button(key="act_prev").click().run()
    page.button(key="act_prev").click().run()
    assert page.select_slider(key="act_layer").value == "layer1.0.tap_sum"
    strip = _by_kind(page)["strip"]
    selected = next(t for t in strip["data"] if t["name"] == "selected")
    assert selected["customdata"] == ["layer1.0.tap_sum"]
    # The first layer disables "Previous layer".
    page.select_slider(key="act_layer").set_value("maxpool").run()
    assert page.button(key="act_prev").disabled and not page.button(key="act_next").disabled
    assert any(s.value.startswith("Feature maps at stem") for s in page.subheader)


def test_shapes_sample_input(page):
    page.button_group(key="act_source").set_value("shapes").run()
    assert not page.exception
    page.number_input(key="act_shape").set_value(3).run()
    captions = [caption for element in page.get("image") for caption in element.captions]
    assert any(c.startswith("Shapes image 3 (a ") and "the model sees 32x32 px" in c for c in captions)
    figs = _by_kind(page)
    assert len(figs["maps"]["data"]) == 16 and len(figs["depth"]["data"]) == 6


def _png(size=(40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_upload_and_a_broken_upload(page):
    page.button_group(key="act_source").set_value("upload").run()
    assert any("Upload an image" in i.value for i in page.info)
    page.file_uploader(key="act_upload").set_value(("red.png", _png(), "image/png")).run()
    assert not page.exception and not page.error
    red = _by_kind(page)["depth"]["data"][0]["y"]
    page.file_uploader(key="act_upload").set_value(("broken.png", b"not an image at all", "image/png")).run()
    assert not page.exception
    assert len(page.error) == 1 and "Showing the sample photo 'chelsea'" in page.error[0].value
    # The page still works, on the sample photo.
    figs = _by_kind(page)
    assert len(figs["depth"]["data"]) == 6 and figs["depth"]["data"][0]["y"] != red


def test_plain_net_in_the_sidebar_puts_its_rows_first(app):
    app.toggle(key="sb_plain").set_value(True).run()
    app.switch_page(PAGE).run()
    assert not app.exception
    assert app.title[0].value == "Activations of Plain-20"
    slider = app.select_slider(key="act_layer")
    assert not any("shortcut" in option for option in slider.options)
    names = [t["name"] for t in _by_kind(app)["depth"]["data"]]
    assert names[0] == "ResNet-20" and "Plain-20" in names  # residual drawn first, both present
