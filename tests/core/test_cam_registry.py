"""The CAM method registry: every method behind explain() is one class; adding one is adding a class, its memory
cost included (declared on the class, never in costs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from resnet_core import build, cam, costs
from resnet_core.cam import CamMethod
from resnet_core.costs import net_cost, suggestions_for
from resnet_core.hooks import count_hooks
from resnet_core.settings import ENV_MEMORY_BUDGET, BudgetError


def _model_and_image():
    model = build("resnet20", seed=0, width=4).eval()
    image = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    return model, image


def test_registry_holds_the_page_methods_in_order():
    assert list(cam.METHODS) == ["gradcam", "guided_gradcam", "integrated_gradients", "gradcampp", "xgradcam",
                                 "hirescam", "layercam", "eigencam", "scorecam", "occlusion", "eigengradcam",
                                 "gradcamelementwise", "fem", "kpcacam", "shapleycam", "finercam", "ablationcam",
                                 "fullgrad", "lrp"]
    assert list(cam.REGISTRY) == list(cam.METHODS)
    assert all(isinstance(m, CamMethod) and cam.METHODS[n] == m.label for n, m in cam.REGISTRY.items())
    assert cam.LAYER_METHODS == ("gradcam", "guided_gradcam", "gradcampp", "xgradcam", "hirescam", "layercam",
                                 "eigencam", "scorecam", "eigengradcam", "gradcamelementwise", "fem", "kpcacam",
                                 "shapleycam", "finercam", "ablationcam")
    # Gradient-free methods are run under no_grad by explain().
    assert [n for n, m in cam.REGISTRY.items() if not m.needs_gradient] == [
        "eigencam", "scorecam", "occlusion", "fem", "kpcacam", "ablationcam"]
    # Every method that ignores the layer says what it explains from instead.
    assert all(m.instead for m in cam.REGISTRY.values() if not m.uses_layer)


@pytest.fixture
def gradient_x_input():
    @cam.register
    class GradientTimesInput(CamMethod):
        """Positive part of gradient x input, summed over channels (a method added in one class)."""

        name, label = "gradient_x_input", "Gradient x input"
        uses_layer = False

        @classmethod
        def cost(cls, model, *, batch=1, image_size=None, options=None, builds=None):
            # One forward kept for backward, the backward to the input, and the input's gradient.
            net = net_cost(model, batch=batch, image_size=image_size, options=options, builds=builds)
            parts = {**net.inputs(), **net.forward_backward(), "input gradient": net.bytes(net.profile.input_numel)}
            return net.estimate("gradient_x_input", f"Gradient x input on {net.net} at {net.px} px", parts, cls.cost)

        def attribute(self, wrapped, image, layer, *, cost, ig_steps):
            x = image.requires_grad_(True)
            (grad,) = torch.autograd.grad(wrapped(x).sum(), x)
            return (grad * x).detach().sum(dim=1).clamp(min=0), None

    yield GradientTimesInput
    del cam.REGISTRY["gradient_x_input"], cam.METHODS["gradient_x_input"]


def test_a_new_method_is_one_class(gradient_x_input):
    model, image = _model_and_image()
    explanation = cam.explain(model, image, 3, method="gradient_x_input")
    x = image.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x)[0, 3], x)
    expected = (grad * x).detach().sum(dim=1).clamp(min=0)[0]
    assert explanation.method == "gradient_x_input" and explanation.layer is None
    assert explanation.class_index == 3 and explanation.heatmap.shape == (32, 32)
    assert torch.allclose(torch.from_numpy(explanation.raw), expected, atol=1e-6)
    assert explanation.heatmap.max() == pytest.approx(1.0)
    assert count_hooks(model) == 0 and all(p.grad is None for p in model.parameters())
    assert "gradient_x_input" in cam.METHODS


def test_unknown_method_names_the_registered_ones():
    model, image = _model_and_image()
    with pytest.raises(cam.CamError, match="gradcam, guided_gradcam, integrated_gradients, gradcampp"):
        cam.explain(model, image, 3, method="lime")


def test_a_new_methods_own_cost_is_asked_for_without_touching_costs(gradient_x_input, monkeypatch):
    """The cost the class declares is what explain() checks, and what a suggestion replays at another size."""
    model = build("resnet20", seed=0, width=4).eval()
    estimate = cam.REGISTRY["gradient_x_input"].estimate(model, (3, 512, 512))
    net = net_cost(model, image_size=(3, 512, 512))
    assert estimate.parts["input gradient"] == 3 * 512 * 512 * 4
    assert estimate.total == net.bytes(net.profile.input_numel) * 2 + sum(net.forward_backward().values())
    monkeypatch.setenv(ENV_MEMORY_BUDGET, "100MB")
    image = torch.zeros(1, 3, 512, 512)
    with pytest.raises(BudgetError) as info:  # refused before anything runs
        cam.explain(model, image, 3, method="gradient_x_input")
    error = info.value
    assert str(error).startswith("Gradient x input on ResNet-20 (width 4) at 512 px needs about ")
    assert error.suggestions == suggestions_for(estimate, 100 * 10**6)
    first = error.suggestion
    side = first.changes["image_size"]
    assert first.cost == gradient_x_input.cost(model, image_size=side).total <= 100 * 10**6
    assert "gradient_x_input" not in Path(costs.__file__).read_text()  # costed without a line in costs.py
    assert count_hooks(model) == 0


def test_every_registered_method_declares_its_cost():
    model, image = _model_and_image()
    for name, method in cam.REGISTRY.items():
        estimate = method.estimate(model, tuple(image.shape[1:]))
        assert estimate.total > 0 and estimate.recipe is not None, name
        assert estimate.again() == estimate, name  # the estimate carries how to make it again


def test_a_method_without_a_declared_cost_cannot_be_registered():
    with pytest.raises(TypeError, match="cost"):
        @cam.register
        class Uncosted(CamMethod):
            name, label = "uncosted", "Uncosted"

            def attribute(self, wrapped, image, layer, *, cost, ig_steps):
                return image.sum(dim=1), None

    assert "uncosted" not in cam.REGISTRY and "uncosted" not in cam.METHODS
