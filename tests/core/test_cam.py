"""Grad-CAM and friends: exact against a hand computation, instrument rules, overlays, exports."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

import resnet_core
from resnet_core import cam
from resnet_core.hooks import count_hooks
from resnet_core.targets import ClassTarget


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return resnet_core.build("resnet20", seed=0, width=4).eval()


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def manual_gradcam(model, image, class_index, layer):
    """Grad-CAM from its definition, independent of Captum: ReLU(sum_c mean_hw(dy_c/dA) * A)."""
    module = dict(model.named_modules())[layer]
    kept = []
    handle = module.register_forward_hook(lambda _m, _i, out: kept.append(out))
    try:
        logits = model(image)
        grads = torch.autograd.grad(logits[0, class_index], kept[0])[0]
    finally:
        handle.remove()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    return torch.relu((weights * kept[0]).sum(1))[0].detach()


@pytest.mark.parametrize("layer", ["layer3.2", "layer2.0", "layer3.0.tap_branch", "layer1.1.tap_sum", "layer2"])
def test_gradcam_equals_the_direct_computation(model, image, layer):
    explanation = cam.explain(model, image, 3, layer)
    expected = manual_gradcam(model, image, 3, layer)
    assert explanation.layer_map.shape == tuple(expected.shape)
    assert np.abs(explanation.layer_map - expected.numpy()).max() < 1e-5
    # Upsampled bilinearly to the input and normalised by its maximum.
    upsampled = torch.nn.functional.interpolate(expected[None, None], size=(32, 32), mode="bilinear")[0, 0]
    assert explanation.raw.shape == (32, 32)
    assert np.abs(explanation.raw - upsampled.numpy()).max() < 1e-5
    assert np.isclose(explanation.heatmap.max(), 1.0) and explanation.heatmap.min() >= 0
    assert np.abs(explanation.heatmap - explanation.raw / explanation.raw.max()).max() < 1e-6
    assert explanation.class_index == 3 and explanation.layer == layer


@pytest.mark.parametrize("layer", ["layer3.2", "layer2.0.tap_branch"])
def test_gradcam_equals_captums_layer_gradcam(model, image, layer):
    """Our pass records a graph only from the layer on; Captum's records all of it. The maps are the same."""
    from captum.attr import LayerAttribution, LayerGradCam

    explanation = cam.explain(model, image, 5, layer)
    module = model.get_submodule(layer)
    theirs = LayerGradCam(lambda x: model(x)[:, 5], module).attribute(image.clone(), relu_attributions=True)
    assert np.abs(explanation.layer_map - theirs[0, 0].detach().numpy()).max() < 1e-5
    upsampled = LayerAttribution.interpolate(theirs, (32, 32), interpolate_mode="bilinear")[0, 0].detach()
    assert np.abs(explanation.raw - upsampled.numpy()).max() < 1e-5
    assert explanation.raw.max() > 0


def test_default_target_is_the_top_class_and_names_come_along(model, image):
    with torch.no_grad():
        top = int(model(image).argmax())
    names = [f"shape {i}" for i in range(10)]
    explanation = cam.explain(model, image, None, class_names=names)
    assert explanation.class_index == top and explanation.class_name == f"shape {top}"
    assert explanation.layer == "layer3.2"  # the last block by default


def test_instrument_rules_hold(image):
    model = resnet_core.build("resnet20", seed=0, width=4)
    model.train()  # a model left in training mode must come back in training mode
    model.layer1[0].conv1.weight.requires_grad_(False)
    sentinel = torch.full_like(model.fc.weight, 7.0)
    model.fc.weight.grad = sentinel
    for method in cam.METHODS:
        cam.explain(model, image, 1, "layer2.1", method)
    assert count_hooks(model) == 0
    assert model.training and all(m.training for m in model.modules())
    assert model.fc.weight.grad is sentinel and torch.equal(model.fc.weight.grad, torch.full_like(sentinel, 7.0))
    assert all(p.grad is None for n, p in model.named_parameters() if n != "fc.weight")
    assert model.layer1[0].conv1.weight.requires_grad is False
    # Explaining in training mode would update BatchNorm statistics: the maps are computed in eval mode.
    assert torch.equal(model.bn1.running_mean, torch.zeros_like(model.bn1.running_mean))


def test_all_zero_map_is_no_positive_evidence_not_nan(model, image):
    # A class whose logit does not depend on the features: zero fc row, so every gradient is zero.
    dead = resnet_core.build("resnet20", seed=0, width=4).eval()
    with torch.no_grad():
        dead.fc.weight[5].zero_()
    explanation = cam.explain(dead, image, 5)
    assert explanation.no_positive_evidence
    assert not np.isnan(explanation.heatmap).any() and explanation.heatmap.max() == 0
    assert explanation.message.startswith("No positive evidence")
    # Negative-only evidence is also "no positive evidence" after the ReLU.
    with torch.no_grad():
        dead.fc.weight[5] = -dead.fc.weight[5].abs() - 1
        dead.fc.bias[5] = 0
    assert cam.explain(dead, torch.ones(1, 3, 32, 32), 5, "layer3.2.tap_out").heatmap.max() in (0.0, 1.0)


@pytest.mark.parametrize("method", ["guided_gradcam", "integrated_gradients"])
def test_other_methods_share_the_call_shape(model, image, method):
    explanation = cam.explain(model, image, ClassTarget(2), "layer3.2", method)
    assert explanation.heatmap.shape == (32, 32) and explanation.method == method
    assert explanation.class_index == 2 and 0 <= explanation.heatmap.min() and explanation.heatmap.max() == 1.0
    assert explanation.layer_map is None


def test_integrated_gradients_completeness(model, image):
    """IG attributions sum to f(x) - f(baseline) (Sundararajan et al.): evidence the method runs for real."""
    from captum.attr import IntegratedGradients

    forward = cam.TargetModel(model, ClassTarget(4))
    attr = IntegratedGradients(forward).attribute(image, baselines=torch.zeros_like(image), n_steps=64)
    with torch.no_grad():
        gap = float(forward(image) - forward(torch.zeros_like(image)))
    assert abs(float(attr.sum()) - gap) < 0.05 * max(1.0, abs(gap))


@pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU")
def test_guided_gradcam_is_guided_backprop_times_gradcam(model, image):
    from captum.attr import GuidedBackprop

    guided = cam.explain(model, image, 4, "layer3.2", "guided_gradcam")
    gradcam = cam.explain(model, image, 4, "layer3.2", "gradcam")
    backprop = GuidedBackprop(cam.TargetModel(model, ClassTarget(4))).attribute(image.clone().requires_grad_())
    expected = (backprop.detach() * torch.from_numpy(gradcam.raw)).abs().sum(1)[0].numpy()
    assert np.abs(guided.raw - expected).max() < 1e-5 * max(1.0, float(expected.max()))


def test_layer_choices_cover_blocks_and_taps(model):
    choices = cam.layer_choices(model)
    assert choices[:3] == ["conv1", "bn1", "relu"]
    for name in ("layer1", "layer2.0", "layer3.2", "layer2.0.tap_shortcut", "layer3.2.tap_out"):
        assert name in choices
    assert cam.stage_last_blocks(model) == ["layer1.2", "layer2.2", "layer3.2"]
    plain = resnet_core.build("resnet20", residual=False, width=4)
    assert "layer2.0.tap_shortcut" not in cam.layer_choices(plain)
    with torch.device("meta"):
        assert cam.stage_last_blocks(resnet_core.build("resnet50")) == ["layer1.2", "layer2.3", "layer3.5", "layer4.2"]


def test_every_kind_of_layer_choice_explains(model, image):
    # One layer of each kind (stem module, stage, block, each tap point): the whole list is ~60 layers.
    kinds: dict[str, str] = {}
    for layer in cam.layer_choices(model):
        if "tap_" in layer:
            kind = layer.rsplit(".", 1)[-1]
        else:
            kind = "block" if "." in layer else "stage" if layer.startswith("layer") else layer
        kinds.setdefault(kind, layer)
    assert {"conv1", "stage", "block", "tap_branch_in", "tap_shortcut", "tap_sum", "tap_out"} <= set(kinds)
    for layer in kinds.values():
        explanation = cam.explain(model, image, 0, layer)
        assert explanation.heatmap.shape == (32, 32), layer
    assert count_hooks(model) == 0


def test_side_by_side_stage_maps(model, image):
    maps = cam.explain_layers(model, image, 1)
    assert [m.layer for m in maps] == ["layer1.2", "layer2.2", "layer3.2"]
    assert [m.layer_map.shape for m in maps] == [(32, 32), (16, 16), (8, 8)]


def test_bad_requests_are_one_sentence(model, image):
    with pytest.raises(cam.CamError, match="no layer named 'layer9'"):
        cam.explain(model, image, 0, "layer9")
    with pytest.raises(cam.CamError, match="Unknown method"):
        cam.explain(model, image, 0, None, "lime")
    with pytest.raises(cam.CamError, match="outside this model's 10 classes"):
        cam.explain(model, image, 12)
    with pytest.raises(cam.CamError, match="NaN"):
        cam.explain(model, torch.full((1, 3, 32, 32), float("nan")))
    with pytest.raises(cam.CamError, match="spatial"):
        cam.explain(model, image, 0, "fc")


def test_predict_top5(model, image):
    table = cam.predict(model, image, [f"c{i}" for i in range(10)], k=5)
    with torch.no_grad():
        probs = model(image).softmax(1)[0]
    assert table["rank"].tolist() == [1, 2, 3, 4, 5]
    assert table["index"].tolist() == probs.argsort(descending=True)[:5].tolist()
    assert np.allclose(table["probability"], probs.sort(descending=True).values[:5].numpy(), atol=1e-6)
    assert table["class"][0] == f"c{table['index'][0]}"


def test_overlay_blends_colormap_and_image():
    heat = np.zeros((4, 4), np.float32)
    heat[0, 0] = 1.0
    base = np.full((4, 4, 3), 200, np.uint8)
    lut = cam.colormap_lut("Jet")
    assert lut.shape == (256, 3) and tuple(lut[0]) != tuple(lut[255])
    half = cam.overlay(base, heat, "Jet", 0.5)
    assert np.array_equal(half[0, 0], np.round(0.5 * 200 + 0.5 * lut[255]).astype(np.uint8))
    assert np.array_equal(half[3, 3], np.round(0.5 * 200 + 0.5 * lut[0]).astype(np.uint8))
    assert np.array_equal(cam.overlay(base, heat, "Jet", 0.0), base)
    assert np.array_equal(cam.overlay(Image.fromarray(base), heat, "Viridis", 1.0)[0, 0], cam.colormap_lut("Viridis")[255])
    with pytest.raises(cam.CamError, match="Opacity"):
        cam.overlay(base, heat, "Jet", 1.5)
    with pytest.raises(cam.CamError, match="model's view"):
        cam.overlay(np.zeros((8, 8, 3), np.uint8), heat)
    with pytest.raises(cam.CamError, match="Unknown colormap"):
        cam.colormap_lut("NoSuchMap")


def test_downloads_round_trip(model, image):
    explanation = cam.explain(model, image, 0)
    png = Image.open(io.BytesIO(cam.heatmap_png(explanation)))
    assert png.size == (32, 32)
    assert np.abs(np.asarray(png, dtype=np.float64) / 65535 - explanation.heatmap).max() < 1e-4
    raw = np.load(io.BytesIO(cam.heatmap_npy(explanation)), allow_pickle=False)
    assert raw.dtype == np.float32 and np.array_equal(raw, explanation.raw)
    rgb = cam.overlay(np.zeros((32, 32, 3), np.uint8), explanation.heatmap)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(cam.image_png(rgb)))), rgb)


def test_explaining_a_torchvision_resnet50_at_224():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = resnet_core.build("resnet50").eval()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    explanation = cam.explain(model, x, 281, "layer4.2")
    assert explanation.layer_map.shape == (7, 7) and explanation.heatmap.shape == (224, 224)
    assert np.abs(explanation.layer_map - manual_gradcam(model, x, 281, "layer4.2").numpy()).max() < 1e-5


# ----------------------------------------------------------------------------- proving the maps are right
@pytest.fixture(scope="module")
def shapes_model() -> torch.nn.Module:
    """The embedded demo ResNet-20 (trained on Shapes by ``make demo-models``): the model every view of the
    localisation check explains, loaded as a user's checkpoint is."""
    from resnet_core.weights.demo import DEMO_CHECK_MODEL, load_demo_model

    return load_demo_model(DEMO_CHECK_MODEL)


def test_pointing_tolerance_follows_the_paper():
    assert cam.pointing_tolerance(224) == 15 and cam.pointing_tolerance(32) == 2 and cam.pointing_tolerance(8) == 1


def test_pointing_game_on_held_out_shapes_beats_chance(shapes_model):
    from resnet_core.data import SHAPES_CLASSES, shapes_split

    assert shapes_model.class_names == list(SHAPES_CLASSES)
    test = shapes_split("test", 200, image_size=32)
    prep = shapes_model.preprocessing
    x = (test.images - torch.tensor(prep.mean).view(1, 3, 1, 1)) / torch.tensor(prep.std).view(1, 3, 1, 1)
    result = cam.pointing_game(shapes_model, x, test.labels, test.masks)
    assert result.layer == "layer3.2" and result.tolerance == 2
    assert result.accuracy >= 0.6  # the net learned the shapes (10 classes: chance 0.1)
    # Measured on the demo ResNet-20: 81.5% against a chance of 45.8% (its objects fill much of a 32 px image).
    assert result.hit_rate >= 0.75, result.summary()
    assert result.chance < 0.6 and result.hit_rate - result.chance >= 0.3
    strict = cam.pointing_game(shapes_model, x, test.labels, test.masks, tolerance=0)
    assert strict.chance == pytest.approx(float(test.masks.float().mean()), abs=1e-6)
    assert strict.hit_rate > 2 * strict.chance  # even with no tolerance the peak is on the object far above chance
    assert count_hooks(shapes_model) == 0


def test_randomisation_cascade_destroys_the_map(shapes_model):
    x, test = cam.shapes_check_images(shapes_model)
    n = cam.SHAPES_CASCADE_IMAGES  # the check's cascade images: the first of its sample
    before = {k: v.clone() for k, v in shapes_model.state_dict().items()}
    cascade = cam.randomization_cascade(shapes_model, x[:n], test.labels[:n], keep_maps=2)
    assert cascade["step"].tolist() == ["trained", "fc", "layer3", "layer2", "layer1", "stem"]
    correlation = dict(zip(cascade["step"], cascade["rank_correlation"], strict=True))
    assert correlation["trained"] == pytest.approx(1.0)
    # Measured on the demo ResNet-20 (demo_models/checks.json): fc 0.43, layer3 0.30, layer2 0.16, layer1 0.14,
    # stem 0.09; on another 32 held-out images stem was 0.16, so the bound leaves room for the sample.
    assert correlation["layer3"] < 0.5, cascade[["step", "rank_correlation"]]  # fc and last stage randomised
    assert abs(correlation["stem"]) < 0.2, cascade[["step", "rank_correlation"]]  # everything randomised
    assert all(len(maps) == 2 and maps[0].shape == (32, 32) for maps in cascade["maps"])
    # Randomising happened on a private copy: the (possibly shared) model is untouched.
    after = shapes_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_localisation_check_report(shapes_model):
    report = cam.localisation_check(shapes_model, n=64, cascade_images=8, examples=4)
    assert len(report.pointing.table) == 64 and len(report.examples) == 4
    assert all(e.shape == (32, 32, 3) and e.dtype == np.uint8 for e in report.examples)
    assert all(label.endswith(("hit", "miss")) for label in report.example_labels)
    with pytest.raises(cam.CamError, match="trained on the Shapes set"):
        cam.localisation_check(resnet_core.build("resnet20", width=4))


def _hooks_while_locked(model, call) -> tuple[int, object]:
    """Run ``call`` in a thread while this thread holds the model's lock; hooks seen meanwhile, and its result."""
    import threading
    import time

    from resnet_core.hooks import model_lock

    result: list[object] = []
    seen = 0
    with model_lock(model):
        thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
        thread.start()
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:  # the call must wait for the lock before touching the model
            seen = max(seen, count_hooks(model))
            time.sleep(0.005)
    thread.join(timeout=60)
    assert not thread.is_alive()
    return seen, result[0]


def test_direct_gradcam_hooks_only_under_the_model_lock():
    model = resnet_core.build("resnet20", width=4).eval()
    image = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    seen, heat = _hooks_while_locked(model, lambda: cam.direct_gradcam(model, image, 3, "layer3.2"))
    assert seen == 0 and count_hooks(model) == 0
    assert heat.shape == (8, 8) and torch.isfinite(heat).all()


def test_describe_hooks_only_under_the_model_lock():
    from resnet_core import describe

    model = resnet_core.build("resnet20", width=4)
    seen, table = _hooks_while_locked(model, lambda: describe(model, 32))
    assert seen == 0 and count_hooks(model) == 0
    assert table["params"].sum() == resnet_core.count_params(model)


def test_direct_gradcam_weights_channels_by_the_mean_gradient_as_pytorch_grad_cam_does():
    """Against pytorch-grad-cam's GradCAM (an independent implementation: gradient mean over h, w per channel).

    At layer1.2 of a CIFAR net the map already has the input's 32x32 size, so pytorch-grad-cam's resize is the
    identity and its min-max scaling is the only step to repeat; a fresh model, since it leaves .grad behind.
    """
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    net = resnet_core.build("resnet20", seed=2, width=4).eval()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    ours = cam.direct_gradcam(net, x, 7, "layer1.2").numpy().astype(np.float64)
    with GradCAM(model=net, target_layers=[net.layer1[2]]) as reference:
        theirs = reference(input_tensor=x.clone(), targets=[ClassifierOutputTarget(7)])[0].astype(np.float64)
    assert ours.shape == theirs.shape == (32, 32) and ours.max() > 0
    assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] > 0.99
    scaled = (ours - ours.min()) / (ours - ours.min()).max()
    assert np.abs(scaled - theirs).max() < 1e-4
    # And by hand at a coarser layer: channel weights are the spatial mean of d logit / d activation.
    module, kept = net.layer3[2], []
    handle = module.register_forward_hook(lambda _m, _i, out: kept.append(out))
    try:
        grads = torch.autograd.grad(net(x)[0, 7], kept[0])[0]
    finally:
        handle.remove()
    by_hand = torch.relu((grads.mean(dim=(2, 3), keepdim=True) * kept[0].detach()).sum(1))[0]
    assert torch.allclose(cam.direct_gradcam(net, x, 7, "layer3.2"), by_hand, atol=1e-6)


def test_the_demo_models_recorded_check_is_what_the_library_measures(shapes_model):
    """``demo_models/checks.json`` (which the README quotes) holds what ``cam.localisation_numbers`` measures on the
    demo ResNet-20 now: a page, the lesson and the notebook that call it show the same numbers."""
    from resnet_core.weights.demo import DEMO_CHECK_MODEL, demo_checks

    recorded, measured = demo_checks(), cam.localisation_numbers(shapes_model)
    assert recorded["model"] == f"demo:{DEMO_CHECK_MODEL}"
    assert {k: recorded[k] for k in ("images", "layer", "tolerance_px", "cascade_images")} == {
        "images": cam.SHAPES_CHECK_IMAGES, "layer": measured["layer"], "tolerance_px": measured["tolerance_px"],
        "cascade_images": cam.SHAPES_CASCADE_IMAGES}
    # Another CPU's kernels may round a map differently: one image's hit, or a correlation's last digits.
    assert measured["hit_rate"] == pytest.approx(recorded["hit_rate"], abs=1 / recorded["images"] + 1e-9)
    assert measured["chance"] == pytest.approx(recorded["chance"], abs=1e-3)
    assert measured["accuracy"] == pytest.approx(recorded["accuracy"], abs=1 / recorded["images"] + 1e-9)
    assert list(measured["cascade"]) == list(recorded["cascade"])
    assert measured["cascade"] == pytest.approx(recorded["cascade"], abs=0.02)
