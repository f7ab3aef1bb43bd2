"""The Grad-CAM page's method comparison (AppTest): the grid, the ranking table, the verdict, the per-method
checks, and the explained class following a new image."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from resnet_core import cam
from resnet_core.data import SHAPES_CLASSES
from tests.app.test_grad_cam import _figures, _fresh, _heatmaps, _shapes_checkpoint, _upload

PAGE = "../pages/grad_cam.py"
CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _top_classes(app) -> list[int]:
    """The top-5 class indices the page offers, best first (the radio's labels end in "(index)")."""
    return [int(label.rsplit("(", 1)[1].rstrip(")")) for label in app.radio(key="gc_class").options]


def _table(app, column: str):
    (table,) = [d.value for d in app.dataframe if column in d.value.columns]
    return table


@pytest.fixture
def page():
    # A link pins the seeded random init these tests recompute (the page's own default is the best trained
    # model on disk: tests/app/test_demo_defaults.py).
    return _fresh({"weights": "random"})


def test_every_method_in_a_grid_with_a_ranking_table_and_a_verdict(page):
    data = _png(0)
    _upload(page, "noise.png", data)
    captions = [c.value for c in page.caption]
    assert any(re.search(r"Score-CAM runs up to \d+ more \(one per channel of layer\d\.\d, 32 at a time\)", c)
               for c in captions)
    assert any("occlusion runs 227 (one per 4x4 window, stride 2)" in c for c in captions)  # 32 px images
    page.button(key="gc_compare_methods").click().run()
    assert not page.exception, page.exception

    # The grid: every method's map, ranked, each the library's map for the page's class and layer.
    grid = [f for f in _figures(page) if len(_heatmaps(f)) == len(cam.METHODS)]
    assert len(grid) == 1
    titles = [a["text"] for a in grid[0]["layout"]["annotations"]]
    assert [t.split(" ")[0] for t in titles] == [f"#{i}" for i in range(1, len(cam.METHODS) + 1)]
    table = _table(page, "auc_difference")
    assert table["rank"].tolist() == list(range(1, len(cam.METHODS) + 1))
    assert sorted(table["label"]) == sorted(cam.METHODS.values())
    assert np.all(np.diff(table["auc_difference"].to_numpy()) <= 1e-12)
    # Each title: "#rank label<br>time, AUC diff" (two lines, so it fits over its map at 14 px).
    assert all(title.split("<br>")[0].split(" ", 1)[1] == label for title, label in zip(titles, table["label"],
                                                                                       strict=True))
    comparison = page.session_state["gc_comparison"][1]
    assert comparison.class_index == page.radio(key="gc_class").value == _top_classes(page)[0]
    assert comparison.layer == page.selectbox(key="gc_layer").value
    label_to_method = {label: name for name, label in cam.METHODS.items()}
    for heat, label in zip(_heatmaps(grid[0]), table["label"], strict=True):
        expected = comparison.explanations[label_to_method[label]].heatmap
        assert np.abs(heat - expected).max() < 1e-3, label
    # The single view's map (Grad-CAM by default) is the grid's Grad-CAM map: the same class, layer and image.
    (single,) = _heatmaps(_figures(page)[1])
    assert np.abs(single - comparison.explanations["gradcam"].heatmap).max() < 1e-3
    # The verdict names the best-ranked method with its number.
    verdict = [m.value for m in page.markdown if m.value.startswith("**Which to trust:**")]
    assert len(verdict) == 1 and f"trust {table['label'][0]} most" in verdict[0]
    assert f"{table['auc_difference'][0]:+.2f}" in verdict[0]

    # A different layer: the stored comparison no longer applies and the page says so.
    page.selectbox(key="gc_layer").set_value("layer2.2").run()
    assert not [f for f in _figures(page) if len(_heatmaps(f)) == len(cam.METHODS)]
    assert any("press the button to compare again" in c.value for c in page.caption)


def test_a_subset_of_methods_with_road(page):
    page.multiselect(key="gc_methods").set_value(["gradcam", "eigencam"]).run()
    page.toggle(key="gc_road").set_value(True).run()
    assert any(f"take {cam.faithfulness_passes(2, 20, road=True)} forward passes" in c.value for c in page.caption)
    assert not any("Score-CAM runs" in c.value for c in page.caption)
    page.button(key="gc_compare_methods").click().run()
    assert not page.exception, page.exception
    table = _table(page, "auc_difference")
    assert sorted(table["label"]) == ["Eigen-CAM", "Grad-CAM"]
    comparison = page.session_state["gc_comparison"][1]
    assert np.allclose(table["road_combined"], comparison.table["road_combined"])
    assert np.allclose(table["road_combined"], (table["road_lerf"] - table["road_morf"]) / 2)


def test_the_class_follows_a_new_image_unless_pinned(page):
    """Noise images of different seeds: the page's model ranks their classes differently (checked below)."""
    _upload(page, "a.png", _png(0))
    a_top = _top_classes(page)
    assert page.radio(key="gc_class").value == a_top[0]
    page.radio(key="gc_class").set_value(a_top[2]).run()
    title = _figures(page)[1]["layout"]["title"]["text"]
    page.file_uploader(key="gc_upload").set_value(("b.png", _png(1), "image/png")).run()
    assert not page.exception, page.exception
    b_top = _top_classes(page)
    assert b_top[0] != a_top[2]
    assert page.radio(key="gc_class").value == b_top[0]  # the new image's top-1, not the old image's third class
    assert _figures(page)[1]["layout"]["title"]["text"] != title
    assert f"({b_top[0]})" in page.radio(key="gc_class").options[0]
    # A class pinned in "...or any class" survives a new image.
    pinned = next(i for i in range(10) if i not in b_top[:1])
    page.selectbox(key="gc_other").set_value(pinned).run()
    pinned_title = _figures(page)[1]["layout"]["title"]["text"]
    page.file_uploader(key="gc_upload").set_value(("c.png", _png(2), "image/png")).run()
    assert not page.exception, page.exception
    assert page.selectbox(key="gc_other").value == pinned
    assert _figures(page)[1]["layout"]["title"]["text"] == pinned_title


def test_both_checks_for_every_method(tmp_path):
    path = _shapes_checkpoint(tmp_path)
    at = _fresh({"arch": "resnet20", "weights": f"ckpt:{path}"})
    assert at.toggle(key="gc_check_own").value is True
    at.button(key="gc_check_methods").click().run()
    assert not at.exception, at.exception
    table = _table(at, "cascade_all")
    assert table["label"].tolist() == list(cam.METHODS.values())
    assert ((table["pointing"] >= 0) & (table["pointing"] <= 1)).all()
    assert ((table["cascade_all"] >= -1) & (table["cascade_all"] <= 1)).all()
    figure = _figures(at)[-1]
    assert [t["name"] for t in figure["data"]] == ["pointing game", "chance", "cascade (0 = changed, good)"]
    assert set(at.dataframe[0].value["class"]) <= set(SHAPES_CLASSES)
