"""The CAM method registry: every method behind explain() is one class; adding one is adding a class."""

from __future__ import annotations

import pytest
import torch

from resnet_core import build, cam
from resnet_core.cam.methods import CamMethod
from resnet_core.hooks import count_hooks


def _model_and_image():
    model = build("resnet20", seed=0, width=4).eval()
    image = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    return model, image


def test_registry_holds_the_page_methods_in_order():
    assert list(cam.METHODS) == ["gradcam", "guided_gradcam", "integrated_gradients", "gradcampp", "xgradcam",
                                 "hirescam", "layercam", "eigencam", "scorecam", "occlusion"]
    assert list(cam.REGISTRY) == list(cam.METHODS)
    assert all(isinstance(m, CamMethod) and cam.METHODS[n] == m.label for n, m in cam.REGISTRY.items())
    assert cam.LAYER_METHODS == ("gradcam", "guided_gradcam", "gradcampp", "xgradcam", "hirescam", "layercam",
                                 "eigencam", "scorecam")
    # Gradient-free methods are run under no_grad by explain().
    assert [n for n, m in cam.REGISTRY.items() if not m.needs_gradient] == ["eigencam", "scorecam", "occlusion"]


@pytest.fixture
def gradient_x_input():
    @cam.register
    class GradientTimesInput(CamMethod):
        """Positive part of gradient x input, summed over channels (a method added in one class)."""

        name, label = "gradient_x_input", "Gradient x input"
        uses_layer = False
        cost_task = "guided_gradcam"  # one forward and one backward to the input, like guided Grad-CAM

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
