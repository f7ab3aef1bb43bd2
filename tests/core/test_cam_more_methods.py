"""The grad-cam package's other eight methods agree with the package (pytorch-grad-cam), the reference.

Agreement as in test_cam_methods: Pearson >= 0.99 of the maps on the same model, layer, class and image; for the
principal-component methods (Eigen-Grad-CAM, KPCA-CAM) up to the component's sign, which is arbitrary. FinerCAM
compares against the three classes nearest in logit, the package's default. Each leaves no parameter gradient
and no hook behind.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from resnet_core import cam
from resnet_core.hooks import count_hooks
from resnet_core.settings import ENV_MEMORY_BUDGET, BudgetError
from tests.core.test_cam_methods import assert_agree, photo, resnet18, trained  # noqa: F401  (fixtures)

pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam import (  # noqa: E402
    FEM,
    KPCA_CAM,
    AblationCAM,
    EigenGradCAM,
    FinerCAM,
    FullGrad,
    GradCAM,
    GradCAMElementWise,
    ShapleyCAM,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection, get_2d_projection_kernel  # noqa: E402

EIGHT = ("ablationcam", "eigengradcam", "fullgrad", "kpcacam", "shapleycam", "finercam", "gradcamelementwise",
         "fem")
PACKAGE = {"ablationcam": AblationCAM, "eigengradcam": EigenGradCAM, "fullgrad": FullGrad, "kpcacam": KPCA_CAM,
           "shapleycam": ShapleyCAM, "finercam": FinerCAM, "gradcamelementwise": GradCAMElementWise, "fem": FEM}
SIGNED = ("eigengradcam", "kpcacam")  # built on a principal component: compared up to its sign


def package_map(model, image, target: int, layer: str, method: str) -> np.ndarray:
    """The package's map (min-max scaled), its parameter gradients cleared afterwards (it calls backward())."""
    module = model.get_submodule(layer)
    if method == "fullgrad":
        ref = FullGrad(model, [])
        out = ref(image, [ClassifierOutputTarget(target)])[0]
        ref.activations_and_grads.release()
    elif method == "finercam":
        with FinerCAM(model, [module], base_method=GradCAM) as ref:
            out = ref(image, target_idx=target)[0]
    else:
        with PACKAGE[method](model, [module]) as ref:
            out = ref(image, [ClassifierOutputTarget(target)])[0]
    model.zero_grad(set_to_none=True)
    assert count_hooks(model) == 0
    return out


def _layer_inputs(model, image, target: int, layer: str) -> tuple[np.ndarray, np.ndarray]:
    """The layer's activations and the target logit's gradient there, by hand (numpy, (1, C, h, w))."""
    kept = []
    handle = model.get_submodule(layer).register_forward_hook(lambda _m, _i, out: kept.append(out))
    try:
        logits = model(image)
        (grad,) = torch.autograd.grad(logits[0, target], kept[0])
    finally:
        handle.remove()
    return kept[0].detach().numpy(), grad.numpy()


def _both_signs(projection: np.ndarray, size: tuple[int, int]) -> list[np.ndarray]:
    """ReLU of + and - the projection (h, w), bilinearly upsampled: the two maps a component's sign allows."""
    out = []
    for sign in (1.0, -1.0):
        relu = torch.from_numpy(np.maximum(sign * projection, 0)).float()
        out.append(F.interpolate(relu[None, None], size=size, mode="bilinear")[0, 0].numpy())
    return out


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return 1.0 if a.max() == b.max() == 0 else 0.0
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def assert_agree_up_to_sign(method, ours: np.ndarray, theirs: np.ndarray, model, image, target, layer) -> float:
    """Ours equals the map of one sign of the package's own projection, and the package's output is one of the two."""
    activations, grads = _layer_inputs(model, image, target, layer)
    if method == "eigengradcam":
        projection = get_2d_projection(grads * activations)[0]
    else:
        projection = get_2d_projection_kernel(activations, "sigmoid", None)[0]
    candidates = _both_signs(projection, tuple(image.shape[-2:]))
    assert max(_pearson(theirs, c) for c in candidates) >= 0.99  # we rebuilt the package's projection right
    best = max(_pearson(ours, c) for c in candidates)
    assert best >= 0.99, best
    return best


@pytest.mark.parametrize("method, layer", [(m, layer) for m in EIGHT for layer in ("layer4.1", "layer3.1")
                                           if not (m == "fullgrad" and layer == "layer3.1")])  # it ignores the layer
def test_each_method_agrees_with_the_package_on_a_photo(resnet18, photo, method, layer):  # noqa: F811
    with torch.no_grad():
        target = int(resnet18(photo).argmax())
    ours = cam.explain(resnet18, photo, target, layer, method)
    assert ours.heatmap.shape == (64, 64) and ours.class_index == target
    assert all(p.grad is None for p in resnet18.parameters()) and count_hooks(resnet18) == 0
    theirs = package_map(resnet18, photo, target, layer, method)
    if method in SIGNED:
        assert_agree_up_to_sign(method, ours.heatmap, theirs, resnet18, photo, target, layer)
    else:
        assert_agree(ours.heatmap, theirs)


@pytest.mark.parametrize("method", EIGHT)
def test_each_method_agrees_with_the_package_on_a_trained_net(trained, method):  # noqa: F811
    model, images = trained
    for target in (0, 4):
        ours = cam.explain(model, images[:1], target, "layer3.2", method)
        theirs = package_map(model, images[:1], target, "layer3.2", method)
        if method in SIGNED:
            assert_agree_up_to_sign(method, ours.heatmap, theirs, model, images[:1], target, "layer3.2")
        else:
            assert_agree(ours.heatmap, theirs)
        assert all(p.grad is None for p in model.parameters())


def test_fullgrad_ignores_the_layer_and_says_so(trained):  # noqa: F811
    model, images = trained
    at_one = cam.explain(model, images[:1], 2, "layer3.2", "fullgrad")
    at_other = cam.explain(model, images[:1], 2, "layer1.0", "fullgrad")
    assert np.array_equal(at_one.heatmap, at_other.heatmap) and at_one.layer is None
    assert any("does not explain at a layer" in n and "layer3.2" in n for n in at_one.notes)
    assert "fullgrad" not in cam.LAYER_METHODS


def test_shapleycam_equals_gradcam_on_a_relu_net_because_the_hessian_term_vanishes(trained):  # noqa: F811
    model, images = trained
    shapley = cam.explain(model, images[:1], 1, "layer2.2", "shapleycam")
    grad = cam.explain(model, images[:1], 1, "layer2.2", "gradcam")
    assert np.allclose(shapley.layer_map, grad.layer_map, atol=1e-6)


def test_finercam_explains_the_class_against_its_nearest_rivals_by_hand(trained):  # noqa: F811
    """FinerCAM by hand: Grad-CAM of sum_k p_k (y_c - y_k) / sum_k p_k over the three classes nearest y_c."""
    model, images = trained
    image, target = images[:1], 0
    kept = []
    handle = model.layer3[2].register_forward_hook(lambda _m, _i, out: kept.append(out))
    try:
        logits = model(image)[0]
        rivals = [int(i) for i in (logits - logits[target]).abs().detach().argsort()[1:4]]
        p = logits.softmax(0)
        objective = sum(p[k] * (logits[target] - logits[k]) for k in rivals) / sum(p[k] for k in rivals)
        (grad,) = torch.autograd.grad(objective, kept[0])
    finally:
        handle.remove()
    act = kept[0].detach()
    expected = torch.relu((grad.mean(dim=(2, 3), keepdim=True) * act).sum(1))[0].numpy()
    ours = cam.explain(model, image, target, "layer3.2", "finercam")
    assert target not in rivals and len(rivals) == 3
    assert np.abs(ours.layer_map - expected).max() < 1e-5 * max(1.0, float(expected.max()))
    assert ours.score == pytest.approx(float(logits[target].detach()), rel=1e-5)  # the score shown is the class's logit


def test_fem_weights_are_the_share_of_positions_two_deviations_above_the_mean(trained):  # noqa: F811
    model, images = trained
    act, _ = _layer_inputs(model, images[:1], 0, "layer3.2")
    a = torch.from_numpy(act)[0]
    threshold = a.mean(dim=(1, 2), keepdim=True) + 2 * a.std(dim=(1, 2), keepdim=True, correction=0)
    weights = (a > threshold).float().mean(dim=(1, 2))
    expected = torch.relu((weights[:, None, None] * a).sum(0)).numpy()
    ours = cam.explain(model, images[:1], 0, "layer3.2", "fem")
    assert weights.max() > 0
    assert np.abs(ours.layer_map - expected).max() < 1e-5 * max(1.0, float(expected.max()))


def test_ablationcam_reports_one_forward_per_channel(trained):  # noqa: F811
    model, images = trained
    calls: list[tuple[int, int]] = []
    cam.explain(model, images[:1], 0, "layer3.2", "ablationcam", batch_size=16, progress=lambda d, t: calls.append((d, t)))
    channels = model.layer3[2].bn2.num_features
    assert calls[-1] == (channels, channels) and len(calls) == -(-channels // 16)


def test_kpcacam_refuses_a_layer_with_too_many_positions_before_building_the_kernel():
    from resnet_core import build

    model = build("resnet20", seed=0, width=4).eval()
    image = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with pytest.raises(cam.CamError, match=r"KPCA-CAM compares every pair of the layer's 96x96 positions"):
        cam.explain(model, image, 0, "layer1.0", "kpcacam")


@pytest.mark.parametrize("method", EIGHT)
def test_each_method_is_costed_before_it_runs(method, monkeypatch):
    from resnet_core import build

    model = build("resnet20", seed=0, width=4).eval()
    image = torch.randn(1, 3, 576, 576, generator=torch.Generator().manual_seed(1))
    estimate = cam.REGISTRY[method].estimate(model, (3, 576, 576))
    assert estimate.total > 17e6 and estimate.task
    monkeypatch.setenv(ENV_MEMORY_BUDGET, "17MB")  # under every method's need at 576 px: nothing may run
    ran = []
    handle = model.register_forward_pre_hook(lambda *_: ran.append(1))
    try:
        with pytest.raises(BudgetError):
            cam.explain(model, image, 0, None, method)
    finally:
        handle.remove()
    assert ran == []
