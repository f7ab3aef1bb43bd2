"""Every layer method agrees with the grad-cam package (pytorch-grad-cam), the reference, and leaves no trace.

Agreement: Pearson correlation >= 0.99 between our normalised map and the package's on the same model, layer,
class and image (its maps are min-max scaled, ours max-scaled: Pearson does not see the difference); where its
map is all zero, ours is too. Nets: a seeded random-init ResNet-18 on a real photo at 64 px (ImageNet stem, 512
layer4 channels keep Score-CAM to seconds) and a ResNet-20 trained briefly on Shapes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import resnet_core
from resnet_core import cam
from resnet_core.data import shapes_split
from resnet_core.hooks import count_hooks
from resnet_core.images import Preprocessing, preprocess, sample_images

pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam import (  # noqa: E402
    EigenCAM,
    GradCAM,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection  # noqa: E402

REFERENCE = {"gradcam": GradCAM, "gradcampp": GradCAMPlusPlus, "xgradcam": XGradCAM, "hirescam": HiResCAM,
             "layercam": LayerCAM, "scorecam": ScoreCAM, "eigencam": EigenCAM}
NEW = ("gradcampp", "xgradcam", "hirescam", "layercam", "scorecam", "eigencam")


@pytest.fixture(scope="module")
def resnet18() -> torch.nn.Module:
    return resnet_core.build("resnet18", seed=0).eval()


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    prep = Preprocessing(resize=64, crop=64, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    return preprocess(sample_images()["chelsea"], prep)


@pytest.fixture(scope="module")
def trained() -> tuple[torch.nn.Module, torch.Tensor]:
    """ResNet-20 (width 8) after 24 SGD steps on Shapes: a model whose maps have structure, in seconds."""
    model = resnet_core.build("resnet20", seed=0, width=8)
    data = shapes_split("train", 320, image_size=32)
    x = (data.images - 0.5) / 0.25
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    order = torch.randperm(320, generator=torch.Generator().manual_seed(0))
    model.train()
    for step in range(24):
        idx = order[(step * 32) % 320:(step * 32) % 320 + 32]
        optimiser.zero_grad()
        F.cross_entropy(model(x[idx]), data.labels[idx]).backward()
        optimiser.step()
    model.zero_grad(set_to_none=True)
    return model.eval(), x[:2]


def reference_map(model, image, target, layer, method):
    module = model.get_submodule(layer)
    with REFERENCE[method](model, [module]) as ref:
        if method == "scorecam":
            ref.batch_size = 64
        out = ref(image, [ClassifierOutputTarget(target)])[0]
    model.zero_grad(set_to_none=True)  # the package calls backward(): its parameter gradients, not ours
    assert count_hooks(model) == 0
    return out


def assert_agree(ours: np.ndarray, theirs: np.ndarray) -> float:
    assert ours.shape == theirs.shape
    if theirs.max() == 0:
        assert ours.max() == 0, "the reference map is all zero, ours is not"
        return 1.0
    assert ours.std() > 0
    corr = float(np.corrcoef(ours.ravel(), theirs.ravel())[0, 1])
    assert corr >= 0.99, corr
    return corr


@pytest.mark.parametrize("method, layer", [(m, layer) for m in ["gradcam", *NEW] if m != "eigencam"
                                           for layer in ("layer4.1", "layer3.1")
                                           if not (m == "scorecam" and layer == "layer3.1")])  # 256 more passes
def test_random_init_resnet18_on_a_photo_agrees_with_the_package(resnet18, photo, method, layer):
    with torch.no_grad():
        target = int(resnet18(photo).argmax())
    ours = cam.explain(resnet18, photo, target, layer, method)
    assert ours.method == method and ours.layer == layer and ours.heatmap.shape == (64, 64)
    assert_agree(ours.heatmap, reference_map(resnet18, photo, target, layer, method))


@pytest.mark.parametrize("method", ["gradcam", *[m for m in NEW if m != "eigencam"]])
def test_briefly_trained_net_agrees_with_the_package(trained, method):
    model, images = trained
    for i in range(images.shape[0]):
        for target in (0, 4):
            ours = cam.explain(model, images[i:i + 1], target, "layer3.2", method)
            assert_agree(ours.heatmap, reference_map(model, images[i:i + 1], target, "layer3.2", method))


def _oriented_reference(model, image, layer):
    """The package's Eigen-CAM projection, before its ReLU, in our sign convention (channel weights sum >= 0)."""
    kept = []
    handle = model.get_submodule(layer).register_forward_hook(lambda _m, _i, out: kept.append(out.detach()))
    try:
        with torch.no_grad():
            model(image)
    finally:
        handle.remove()
    activations = kept[0].numpy()
    projection = get_2d_projection(activations)[0]
    flat = activations[0].reshape(activations.shape[1], -1)
    # Our convention: the map correlates positively with the summed activation (projection . row sums >= 0).
    centred_sum = flat.sum(0) - flat.sum(0).mean()
    if float((projection.ravel() * centred_sum).sum()) < 0:
        projection = -projection
    relu = np.maximum(projection, 0)
    return F.interpolate(torch.from_numpy(relu)[None, None], size=image.shape[-2:], mode="bilinear")[0, 0].numpy()


@pytest.mark.parametrize("layer", ["layer4.1", "layer3.1", "layer2.1"])
def test_eigencam_matches_the_package_up_to_the_stated_sign(resnet18, photo, layer):
    ours = cam.explain(resnet18, photo, None, layer, "eigencam")
    assert_agree(ours.heatmap, _oriented_reference(resnet18, photo, layer))
    # The package's own output is either the same map or the ReLU of the opposite sign.
    theirs = reference_map(resnet18, photo, 0, layer, "eigencam")
    flipped = _oriented_reference(resnet18, photo, layer)
    same = np.corrcoef(theirs.ravel(), flipped.ravel())[0, 1] > 0.99 if theirs.max() > 0 else flipped.max() == 0
    if same:
        assert_agree(ours.heatmap, theirs)
    # Eigen-CAM is class-agnostic: another class gives the same map.
    assert np.array_equal(ours.heatmap, cam.explain(resnet18, photo, 5, layer, "eigencam").heatmap)


def test_eigencam_sign_is_positive_where_the_layer_is_most_active(trained):
    model, images = trained
    explanation = cam.explain(model, images[:1], 0, "layer3.2", "eigencam")
    kept = []
    handle = model.layer3[2].register_forward_hook(lambda _m, _i, out: kept.append(out.detach()))
    try:
        with torch.no_grad():
            model(images[:1])
    finally:
        handle.remove()
    summed = kept[0][0].sum(0)
    assert explanation.layer_map.shape == tuple(summed.shape)
    assert np.corrcoef(explanation.layer_map.ravel(), summed.numpy().ravel())[0, 1] > 0


def _layer2_2_output_and_gradient(model, image, target: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Block layer2.2's output on ``image`` and the gradient of logit ``target`` with respect to it, by hand."""
    kept = []
    handle = model.layer2[2].register_forward_hook(lambda _m, _i, out: kept.append(out))
    try:
        logits = model(image)
        (grad,) = torch.autograd.grad(logits[0, target], kept[0])
    finally:
        handle.remove()
    return kept[0].detach(), grad.detach()


def test_hirescam_is_gradient_times_activation_summed(trained):
    """HiResCAM by hand: sum_c(dy/dA * A), ReLU, at the layer's resolution."""
    model, images = trained
    act, grad = _layer2_2_output_and_gradient(model, images[:1], 2)
    expected = torch.relu((grad * act).sum(1))[0].numpy()
    explanation = cam.explain(model, images[:1], 2, "layer2.2", "hirescam")
    assert np.abs(explanation.layer_map - expected).max() < 1e-5
    assert all(p.grad is None for p in model.parameters())


def test_gradcampp_is_the_papers_weighting_by_hand(trained):
    """Grad-CAM++ by hand (Chattopadhyay et al. 2018, eq. 19 with exp's derivatives): alpha = G^2 / (2 G^2 +
    sum_hw(A) G^3), channel weight sum_hw(ReLU(G) alpha), map ReLU(sum_c w_c A_c); a Pearson check alone would
    not see the factor 2."""
    model, images = trained
    act, grad = _layer2_2_output_and_gradient(model, images[:1], 2)
    grad_sq = grad * grad
    alpha = grad_sq / (2 * grad_sq + act.sum(dim=(2, 3), keepdim=True) * grad_sq * grad + 1e-6)
    alpha = torch.where(grad != 0, alpha, torch.zeros_like(alpha))
    weights = (torch.relu(grad) * alpha).sum(dim=(2, 3), keepdim=True)
    expected = torch.relu((weights * act).sum(1))[0].numpy()
    explanation = cam.explain(model, images[:1], 2, "layer2.2", "gradcampp")
    assert expected.max() > 0
    assert np.abs(explanation.layer_map - expected).max() < 1e-5 * max(1.0, float(expected.max()))


def test_scorecam_progress_counts_the_forward_passes(trained):
    model, images = trained
    calls: list[tuple[int, int]] = []
    explanation = cam.explain(model, images[:1], 1, "layer3.2", "scorecam", batch_size=8,
                              progress=lambda done, total: calls.append((done, total)))
    kept = []
    handle = model.layer3[2].register_forward_hook(lambda _m, _i, out: kept.append(out.detach()))
    try:
        with torch.no_grad():
            model(images[:1])
    finally:
        handle.remove()
    flat = kept[0][0].flatten(1)
    varying = int(((flat.amax(1) - flat.amin(1)) > 0).sum())
    constant = 32 - varying
    total = cam.scorecam_passes(32, constant) - 1  # the masked passes (the first forward is not a mask)
    assert calls[-1] == (total, total)
    assert [d for d, _ in calls] == sorted({d for d, _ in calls})
    assert len(calls) == -(-varying // 8) + (1 if constant else 0)
    assert explanation.heatmap.shape == (32, 32)


def test_methods_without_gradients_run_under_no_grad(trained):
    """Gradient-free methods record no graph at all; gradient methods record one only from the layer on (the
    backward stops there), so the stem runs without one and the head with one."""
    model, images = trained
    seen: list[tuple[bool, bool]] = []
    at_entry: list[bool] = []

    class Spy(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            if x.device.type != "meta":  # the cost estimate's pass runs on meta tensors
                at_entry.append(torch.is_grad_enabled())
            return self.inner(x)

    spy = Spy(model).eval()
    head = spy.inner.fc.register_forward_pre_hook(
        lambda _m, args: seen.append((at_entry[-1], torch.is_grad_enabled())) if at_entry else None)
    try:
        for method, expected in (("eigencam", (False, False)), ("scorecam", (False, False)),
                                 ("gradcampp", (False, True)), ("gradcam", (False, True))):
            seen.clear()
            at_entry.clear()
            cam.explain(spy, images[:1], 0, "inner.layer3.2", method)
            assert seen and set(seen) == {expected}, method
    finally:
        head.remove()
    assert torch.is_grad_enabled()


def test_every_method_leaves_no_state_behind(photo):
    model = resnet_core.build("resnet18", seed=1, width=16)
    model.train()
    model.layer1[0].conv1.weight.requires_grad_(False)
    sentinel = torch.full_like(model.fc.weight, 3.0)
    model.fc.weight.grad = sentinel
    running = model.bn1.running_mean.clone()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for method in cam.METHODS:
        explanation = cam.explain(model, photo, 2, "layer3.1", method)
        assert np.isfinite(explanation.heatmap).all()
    assert count_hooks(model) == 0
    assert model.training and all(m.training for m in model.modules())
    assert model.fc.weight.grad is sentinel and torch.equal(sentinel, torch.full_like(sentinel, 3.0))
    assert all(p.grad is None for n, p in model.named_parameters() if n != "fc.weight")
    assert model.layer1[0].conv1.weight.requires_grad is False
    assert torch.equal(model.bn1.running_mean, running)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_frozen_model_still_explained(trained):
    """Every parameter frozen (requires_grad False): the gradient methods still get dy/dA."""
    model, images = trained
    frozen = resnet_core.build("resnet20", seed=0, width=8).eval()
    frozen.load_state_dict(model.state_dict())
    frozen.requires_grad_(False)
    for method in ("gradcampp", "xgradcam", "hirescam", "layercam"):
        a = cam.explain(frozen, images[:1], 3, "layer3.2", method).heatmap
        b = cam.explain(model, images[:1], 3, "layer3.2", method).heatmap
        assert np.abs(a - b).max() < 1e-5
    assert not any(p.requires_grad for p in frozen.parameters())


def test_scorecam_is_costed_and_scaled_to_the_budget(monkeypatch):
    from resnet_core.settings import ENV_MEMORY_BUDGET

    model = resnet_core.build("resnet18", seed=0, width=16).eval()  # 128 layer4 channels
    image = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(2))
    estimate = cam.REGISTRY["scorecam"].estimate(model, (3, 128, 128), batch_size=64)
    assert estimate.task == "forward" and "(batch 64)" in estimate.what
    small = cam.REGISTRY["scorecam"].estimate(model, (3, 128, 128), batch_size=4)
    assert small.total < estimate.total
    unscaled = cam.explain(model, image, 1, "layer4.1", "scorecam", batch_size=64)
    assert not unscaled.notes
    monkeypatch.setenv(ENV_MEMORY_BUDGET, str((small.total + estimate.total) // 2))
    scaled = cam.explain(model, image, 1, "layer4.1", "scorecam", batch_size=64)
    assert scaled.notes and "images per batch (from 64)" in scaled.notes[0]
    assert np.abs(scaled.heatmap - unscaled.heatmap).max() < 1e-5  # the batch changes the time, not the map


def test_occlusion_is_captums_and_counts_its_passes(trained):
    from captum.attr import Occlusion

    model, images = trained
    image = images[:1]
    calls: list[int] = []

    class Spy(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            if x.device.type != "meta":
                calls.append(x.shape[0])
                assert not torch.is_grad_enabled()
            return self.inner(x)

    explanation = cam.explain(Spy(model).eval(), image, 3, method="occlusion")
    assert sum(calls) == cam.occlusion_passes(32, 32) == 227  # 15 x 15 windows of 4 px, stride 2, and the image
    reference = Occlusion(lambda x: model(x)[:, 3]).attribute(image, sliding_window_shapes=(3, 4, 4),
                                                             strides=(3, 2, 2), baselines=0.0)
    expected = reference.sum(1).clamp(min=0)[0].detach().numpy()
    assert np.abs(explanation.raw - expected).max() < 1e-5 and explanation.layer is None


@pytest.mark.parametrize("method", ["occlusion", "integrated_gradients"])
def test_the_top_class_is_the_plain_images_for_methods_that_alter_it(trained, method):
    """target=None means the image's top-1 class, also for the copies these methods run (not each copy's own)."""
    model, images = trained
    image = images[1:2]
    with torch.no_grad():
        top = int(model(image).argmax())
    default = cam.explain(model, image, None, method=method)
    assert default.class_index == top
    assert np.abs(default.raw - cam.explain(model, image, top, method=method).raw).max() < 1e-6
