"""Faithfulness metrics on a constructed case whose answers are known: a model that only looks at one quadrant.

The model's class-0 logit is A times the mean of the top-left quadrant of its (summed-channel) input; class 1's
logit is 0. On an all-ones image the top-left indicator is the perfect map and the bottom-right one the worst,
and every metric has a closed form: deleting k of the image's pixels in the perfect map's order leaves
(Q - min(k, Q)) / Q of the quadrant (Q its pixel count), so p_k = sigmoid(A * that).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import resnet_core
from resnet_core import cam
from resnet_core.hooks import count_hooks

SIDE, A, STEPS = 16, 4.0, 8


class TopLeftModel(nn.Module):
    """Class-0 logit = A * mean of the top-left quadrant of the channel sum / 3; class-1 logit = 0."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(3, 1, 1, bias=False)
        with torch.no_grad():
            self.features.weight.fill_(1 / 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        half = x.shape[-1] // 2
        score = A * f[:, 0, :half, :half].mean(dim=(1, 2))
        return torch.stack([score, torch.zeros_like(score)], dim=1)


def quadrant(top: bool) -> np.ndarray:
    heat = np.zeros((SIDE, SIDE), dtype=np.float32)
    half = SIDE // 2
    if top:
        heat[:half, :half] = 1
    else:
        heat[half:, half:] = 1
    return heat


def sigmoid(v):
    return 1 / (1 + np.exp(-np.asarray(v, dtype=np.float64)))


def expected_auc(fraction_left: np.ndarray) -> float:
    curve = sigmoid(A * fraction_left)
    return float((curve.sum() - (curve[0] + curve[-1]) / 2) / (len(curve) - 1))


@pytest.fixture(scope="module")
def scored() -> pd.DataFrame:
    model = TopLeftModel().eval()
    image = torch.ones(1, 3, SIDE, SIDE)
    calls = []
    table = cam.faithfulness(model, image, {"right": quadrant(True), "wrong": quadrant(False)}, target=0,
                             steps=STEPS, batch_size=5, insertion_baseline="zero",
                             progress=lambda done, total: calls.append((done, total)))
    table.attrs["calls"] = calls
    return table


def test_deletion_and_insertion_auc_match_the_closed_form(scored):
    pixels, q = SIDE * SIDE, (SIDE // 2) ** 2
    removed = np.array([round(k * pixels / STEPS) for k in range(STEPS + 1)])
    right = scored.set_index("method").loc["right"]
    # Perfect map: the quadrant goes first (deletion) / comes back first (insertion).
    assert right["deletion_auc"] == pytest.approx(expected_auc((q - np.minimum(removed, q)) / q), abs=1e-4)
    assert right["insertion_auc"] == pytest.approx(expected_auc(np.minimum(removed, q) / q), abs=1e-4)
    # The curves themselves: full probability at the start of deletion, 0.5 (logit 0) once the quadrant is gone.
    assert right["deletion_curve"][0] == pytest.approx(sigmoid(A)) and right["deletion_curve"][-1] == 0.5
    assert right["insertion_curve"][0] == 0.5 and right["insertion_curve"][-1] == pytest.approx(sigmoid(A))


def test_the_wrong_quadrant_scores_worse_on_every_metric(scored):
    by = scored.set_index("method")
    right, wrong = by.loc["right"], by.loc["wrong"]
    assert wrong["deletion_auc"] > right["deletion_auc"] + 0.1
    assert wrong["insertion_auc"] < right["insertion_auc"] - 0.1
    # Image x map: the right map keeps the quadrant (no drop, no increase); the wrong one zeroes it (logit 0).
    assert right["average_drop"] == pytest.approx(0.0, abs=1e-9)
    assert wrong["average_drop"] == pytest.approx(100 * (sigmoid(A) - 0.5) / sigmoid(A), abs=1e-4)
    assert right["increase_in_confidence"] == 0 and wrong["increase_in_confidence"] == 0
    assert scored["method"].tolist() == ["right", "wrong"] and scored["rank"].tolist() == [1, 2]
    assert right["probability"] == pytest.approx(sigmoid(A))


def test_batches_and_progress(scored):
    total = cam.faithfulness_passes(2, STEPS)
    assert total == 1 + 2 * (2 * (STEPS + 1) + 1)
    calls = scored.attrs["calls"]
    assert calls[-1] == (total, total) and len(calls) == -(-total // 5)
    assert all(t == total for _, t in calls) and [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_increase_in_confidence_when_the_map_weakens_negative_evidence():
    """With the quadrant at -1, class 0's logit is -A: a map of 0.5 there halves it to -A/2 (an increase), a map
    of 1 leaves it (no change), and for class 1 (logit 0 vs -A) a map of 0 there removes its help (a drop)."""
    model = TopLeftModel().eval()
    image = torch.ones(1, 3, SIDE, SIDE)
    image[:, :, : SIDE // 2, : SIDE // 2] = -1.0
    half = cam.faithfulness(model, image, {"half": quadrant(True) * 0.5}, target=0, steps=4).iloc[0]
    assert half["probability"] == pytest.approx(sigmoid(-A), abs=1e-6)
    assert half["increase_in_confidence"] == 1.0 and half["average_drop"] == 0.0
    same = cam.faithfulness(model, image, {"top": quadrant(True)}, target=0, steps=4).iloc[0]
    assert same["increase_in_confidence"] == 0.0 and same["average_drop"] == pytest.approx(0.0, abs=1e-4)
    away = cam.faithfulness(model, image, {"away": quadrant(False)}, target=1, steps=4).iloc[0]
    assert away["probability"] == pytest.approx(sigmoid(A), abs=1e-6)
    assert away["average_drop"] == pytest.approx(100 * (sigmoid(A) - 0.5) / sigmoid(A), abs=1e-4)


def test_explanations_in_a_trust_sentence_and_state_left_alone():
    model = resnet_core.build("resnet20", seed=0, width=4).eval()
    image = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    explanations = [cam.explain(model, image, 2, "layer3.2", m) for m in ("gradcam", "hirescam", "eigencam")]
    table = cam.faithfulness(model, image, explanations, steps=4)
    assert table["method"].tolist() != [] and set(table["method"]) == {"gradcam", "hirescam", "eigencam"}
    assert np.all(np.diff(table["auc_difference"].to_numpy()) <= 0)
    assert ((table[["deletion_auc", "insertion_auc"]] >= 0) & (table[["deletion_auc", "insertion_auc"]] <= 1)).all().all()
    sentence = cam.trust_sentence(table, cam.METHODS)
    best = cam.METHODS[table.iloc[0]["method"]]
    assert sentence.startswith(f"On this image, trust {best} most") and sentence.endswith(").")
    assert f"{table.iloc[0]['auc_difference']:+.2f}" in sentence
    assert count_hooks(model) == 0 and all(p.grad is None for p in model.parameters())


def test_bad_requests_are_one_sentence():
    model = TopLeftModel().eval()
    image = torch.ones(1, 3, SIDE, SIDE)
    with pytest.raises(cam.CamError, match="is 8x8 but the image is 16x16"):
        cam.faithfulness(model, image, {"small": np.zeros((8, 8))}, target=0)
    with pytest.raises(cam.CamError, match="Give the target class"):
        cam.faithfulness(model, image, {"m": quadrant(True)})
    with pytest.raises(cam.CamError, match="outside this model's 2 classes"):
        cam.faithfulness(model, image, {"m": quadrant(True)}, target=5)
    with pytest.raises(cam.CamError, match="Unknown baseline"):
        cam.faithfulness(model, image, {"m": quadrant(True)}, target=0, deletion_baseline="noise")


def test_blur_baseline_is_rise_kernel():
    image = torch.zeros(1, 3, 21, 21)
    image[0, :, 10, 10] = 1.0
    out = cam.faithfulness.__globals__["blurred"](image)
    assert out.sum().item() == pytest.approx(3.0, abs=1e-5)  # mass kept
    assert out[0, 0, 10, 10] == out[0, 0].max() and out[0, 0, 10, 5] > 0 and out[0, 0, 10, 4] == 0  # 11 taps


def test_compare_methods_explains_one_class_with_every_method_and_ranks_them():
    model = resnet_core.build("resnet20", seed=0, width=4).eval()
    image = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    stages = []
    result = cam.compare_methods(model, image, None, None, class_names=[f"c{i}" for i in range(10)], steps=4,
                                 progress=lambda stage, done, total: stages.append(stage))
    with torch.no_grad():
        top = int(model(image).argmax())
    assert result.class_index == top and result.class_name == f"c{top}" and result.layer == "layer3.2"
    assert list(result.explanations) == list(cam.METHODS)
    assert all(e.class_index == top for e in result.explanations.values())
    assert set(result.table["method"]) == set(cam.METHODS) and result.table["rank"].tolist() == list(range(1, len(cam.METHODS) + 1))
    assert result.table["label"].tolist() == [cam.METHODS[m] for m in result.table["method"]]
    assert (result.table["seconds"] > 0).all()
    assert result.sentence == cam.trust_sentence(result.table, cam.METHODS)
    assert stages[0] == "gradcam" and stages[-1] == "faithfulness" and "scorecam" in stages
    # The maps are the single explanations', so the page's grid and its single view agree.
    single = cam.explain(model, image, top, "layer3.2", "xgradcam")
    assert np.array_equal(result.explanations["xgradcam"].heatmap, single.heatmap)
    assert count_hooks(model) == 0 and all(p.grad is None for p in model.parameters())


def test_road_on_the_one_quadrant_model():
    """Image: ones in the top-left quadrant, zeros elsewhere. Removing the top-left quadrant (25 %, the right map
    first) imputes it from zero neighbours: zeros, logit 0, p = 0.5. Removing the bottom-right quadrant imputes
    zeros where zeros were: nothing changes."""
    model = TopLeftModel().eval()
    image = torch.zeros(1, 3, SIDE, SIDE)
    image[:, :, : SIDE // 2, : SIDE // 2] = 1.0
    table = cam.faithfulness(model, image, {"right": quadrant(True), "wrong": quadrant(False)}, target=0, steps=2,
                             road=True, road_percentiles=(25,), road_noise=0.0).set_index("method")
    p = sigmoid(A)
    assert table.loc["right", "road_morf"] == pytest.approx(0.5, abs=1e-5)
    assert table.loc["wrong", "road_morf"] == pytest.approx(p, abs=1e-5)
    # LeRF removes the last 25 % in the map's order: for the right map the bottom-right rows (zeros, no change).
    assert table.loc["right", "road_lerf"] == pytest.approx(p, abs=1e-5)
    assert table.loc["right", "road_combined"] > table.loc["wrong", "road_combined"]
    assert cam.faithfulness_passes(2, 2, road=True, road_percentiles=1) == 1 + 2 * (2 * 3 + 1 + 2)


def test_imputation_is_the_neighbour_mean_and_seeded():
    from resnet_core.cam import impute

    ramp = torch.arange(8, dtype=torch.float32).repeat(3, 8, 1)  # (3, 8, 8): each row 0..7, linear in x
    removed = torch.zeros(8, 8, dtype=torch.bool)
    removed[2:5, 3:6] = True
    filled = impute(ramp, removed, noise=0.0)
    assert torch.allclose(filled, ramp, atol=1e-5)  # a linear image is its own neighbour mean inside
    a = impute(ramp, removed, noise=0.01, generator=torch.Generator().manual_seed(1))
    b = impute(ramp, removed, noise=0.01, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and torch.equal(a[:, ~removed], ramp[:, ~removed])
    assert 0 < (a - ramp).abs().max() < 0.1
