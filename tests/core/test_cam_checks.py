"""The pointing game and the randomisation cascade for every method: batches agree with single explanations."""

from __future__ import annotations

import numpy as np
import pytest

import resnet_core
from resnet_core import cam
from resnet_core.data import shapes_split
from resnet_core.hooks import count_hooks


@pytest.fixture(scope="module")
def setup():
    model = resnet_core.build("resnet20", seed=0, width=4).eval()
    data = shapes_split("test", 12, image_size=32)
    x = (data.images - 0.5) / 0.25
    return model, x, data.labels, data.masks


@pytest.mark.parametrize("method", list(cam.METHODS))
def test_a_batch_gives_each_image_its_own_explanation(setup, method):
    model, x, labels, _ = setup
    maps = cam.cam_batch(model, x[:3], labels[:3], "layer3.1", method)
    assert maps.shape == (3, 32, 32)
    for i in range(3):
        single = cam.explain(model, x[i:i + 1], int(labels[i]), "layer3.1", method)
        assert np.abs(maps[i].numpy() - single.raw).max() <= 1e-4 * max(1.0, float(np.abs(single.raw).max()))
    assert count_hooks(model) == 0 and all(p.grad is None for p in model.parameters())


def test_method_table_matches_the_single_method_checks(setup):
    model, x, labels, masks = setup
    done = []
    table = cam.method_checks(model, x, labels, masks, ["gradcam", "layercam", "scorecam"], cascade_images=4,
                              progress=lambda d, t: done.append((d, t)))
    assert table["method"].tolist() == ["gradcam", "layercam", "scorecam"]
    assert table["label"].tolist() == ["Grad-CAM", "LayerCAM", "Score-CAM"]
    assert done == [(1, 3), (2, 3), (3, 3)]
    for row in table.itertuples():
        pointing = cam.pointing_game(model, x, labels, masks, method=row.method)
        cascade = cam.randomization_cascade(model, x[:4], labels[:4], method=row.method)
        assert row.pointing == pytest.approx(pointing.hit_rate) and row.chance == pytest.approx(pointing.chance)
        assert row.pointing_vs_chance == pytest.approx(pointing.hit_rate - pointing.chance)
        assert row.cascade_top == pytest.approx(cascade.iloc[2]["rank_correlation"])
        assert row.cascade_all == pytest.approx(cascade.iloc[-1]["rank_correlation"])
        assert -1 <= row.cascade_all <= 1 and 0 <= row.pointing <= 1
    # Grad-CAM through the generic path is the old check exactly.
    assert table.iloc[0]["pointing"] == pytest.approx(cam.pointing_game(model, x, labels, masks).hit_rate)
    with pytest.raises(cam.CamError, match="Unknown method 'lime'"):
        cam.method_checks(model, x, labels, masks, ["lime"])
