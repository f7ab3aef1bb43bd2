"""LRP through zennit's EpsilonPlusFlat composite with our canonizers: relevance is conserved at every depth and on
the plain twins, equals zennit's own on torchvision's net with the same weights, and a layout it cannot canonize
is refused in one sentence before anything runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import resnet_core
from resnet_core import cam
from resnet_core.hooks import count_hooks
from resnet_core.models import ARCHITECTURES

pytest.importorskip("zennit")

# Plain twins conserve relevance where their random weights still carry the input to the logit; deeper, a random
# plain net routes its logit through cancellations that z+ cannot follow (measured in the closing note of issue 26).
PLAIN_CONSERVING = ("resnet18", "resnet34", "resnet20", "resnet32", "resnet44", "resnet18_cifar", "resnet34_cifar")


def _with_trained_statistics(model: nn.Module, seed: int = 0) -> nn.Module:
    """Batch norms with running statistics and affine parameters away from their initial values, so that merging
    them into the convolutions changes the weights (at initialisation it is nearly the identity)."""
    g = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            c = module.num_features
            module.running_mean.copy_(0.3 * torch.randn(c, generator=g))
            module.running_var.copy_(0.5 + torch.rand(c, generator=g))
            module.weight.data.copy_(0.5 + torch.rand(c, generator=g))
            module.bias.data.copy_(0.2 * torch.randn(c, generator=g))
    return model.eval()


def _calibrated(model: nn.Module, side: int) -> nn.Module:
    """Batch-norm statistics measured as training measures them (two batches in train mode, a cumulative average),
    so the merged convolutions carry the biases a trained net has; eval mode after. (At initialisation the batch
    norms are near identities, and ResNet-1202's logits overflow.)"""
    g = torch.Generator().manual_seed(7)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(8, 3, side, side, generator=g))
    return model.eval()


def _conserved(model: nn.Module, image: torch.Tensor) -> tuple[float, float]:
    relevance = cam.lrp_relevance(model, image)
    with torch.no_grad():
        logit = float(model(image).max())
    return float(relevance.sum()), logit


@pytest.mark.parametrize("arch", [*ARCHITECTURES, *(f"plain:{a}" for a in PLAIN_CONSERVING)])
def test_input_relevance_sums_to_the_explained_logit_at_every_depth(arch):
    residual = not arch.startswith("plain:")
    arch = arch.removeprefix("plain:")
    side = 64 if ARCHITECTURES[arch].stem == "imagenet" else 32
    model = _calibrated(resnet_core.build(arch, seed=0, residual=residual), side)
    image = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(1))
    total, logit = _conserved(model, image)
    assert abs(logit) > 1e-2
    assert total == pytest.approx(logit, rel=0.05), (arch, residual, total, logit)


@pytest.mark.parametrize("arch, side, options", [
    ("resnet20", 32, {"preact": True}), ("resnet56", 32, {"preact": True}), ("resnet18", 64, {"preact": True}),
    ("resnet20", 32, {"shortcut": "B"}), ("resnet20", 32, {"shortcut": "C"}),
    ("resnet50", 64, {"shortcut": "C"}), ("resnet50", 64, {"stride_on": "1x1"}),
    ("resnet20", 32, {"preact": True, "residual": False}), ("resnet50", 64, {"preact": True, "residual": False})])
def test_relevance_is_conserved_through_every_block_layout(arch, side, options):
    """Post- and pre-activation blocks, option-A padding, B and C projections, the stride on either convolution."""
    model = _calibrated(resnet_core.build(arch, seed=0, **options), side)
    g = torch.Generator().manual_seed(2)
    ratios = [total / logit for total, logit in
              (_conserved(model, torch.randn(1, 3, side, side, generator=g)) for _ in range(5))]
    # The median of five images: on random weights a rare input routes its logit through cancellations that z+
    # cannot follow (pre-activation nets carry negative values between blocks); trained nets conserve throughout.
    assert float(np.median(ratios)) == pytest.approx(1.0, abs=0.05), (arch, options, ratios)


@pytest.mark.parametrize("key", ["resnet20", "plain20"])
def test_relevance_is_conserved_on_the_trained_demo_nets(key):
    """Trained weights and batch-norm statistics (merged into the convolutions, biases and all): the Shapes demo
    ResNet-20 and its plain twin, on held-out Shapes images."""
    from resnet_core.data import shapes_split
    from resnet_core.weights.demo import load_demo_model

    model = load_demo_model(key)
    images = (shapes_split("test", 4, image_size=32).images - 0.5) / 0.25
    for i in range(images.shape[0]):
        total, logit = _conserved(model, images[i:i + 1])
        assert total == pytest.approx(logit, rel=0.01), (key, i, total, logit)


def test_the_option_a_padding_shortcut_is_in_the_nets_checked():
    model = resnet_core.build("resnet20", seed=0, width=4)
    assert any(type(m).__name__ == "PadShortcut" for m in model.modules())


def test_without_our_canonizer_zennits_own_does_not_conserve_relevance_on_our_net():
    """Why the canonizers exist: zennit's ResNetCanonizer matches only torchvision's blocks, so on ours each
    residual add hands its full relevance to both inputs."""
    from zennit.composites import EpsilonPlusFlat
    from zennit.torchvision import ResNetCanonizer

    model = _with_trained_statistics(resnet_core.build("resnet20", seed=0, width=4))
    image = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    x = image.clone().requires_grad_(True)
    with torch.enable_grad(), EpsilonPlusFlat(zero_params="bias", canonizers=[ResNetCanonizer()]).context(model) as m:
        logits = m(x)
        c = int(logits.argmax())
        start = torch.zeros_like(logits)
        start[0, c] = logits[0, c].detach()
        (relevance,) = torch.autograd.grad(logits, x, grad_outputs=start)
    model.zero_grad(set_to_none=True)
    assert abs(float(relevance.sum()) - float(logits[0, c].detach())) > 0.5 * abs(float(logits[0, c].detach()))
    ours, logit = _conserved(model, image)
    assert ours == pytest.approx(logit, rel=0.05)


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_equal_to_zennit_on_torchvisions_net_with_the_same_weights(arch):
    import torchvision
    from zennit.composites import EpsilonPlusFlat
    from zennit.torchvision import ResNetCanonizer

    ours = _with_trained_statistics(resnet_core.build(arch, seed=0))
    theirs = getattr(torchvision.models, arch)(weights=None).eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    image = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        target = int(ours(image).argmax())
    x = image.clone().requires_grad_(True)
    composite = EpsilonPlusFlat(zero_params="bias", canonizers=[ResNetCanonizer()])
    with torch.enable_grad(), composite.context(theirs) as modified:
        logits = modified(x)
        start = torch.zeros_like(logits)
        start[0, target] = logits[0, target].detach()
        (reference,) = torch.autograd.grad(logits, x, grad_outputs=start)
    relevance = cam.lrp_relevance(ours, image, target)
    assert relevance.shape == reference.shape
    scale = float(reference.abs().max())
    assert float((relevance - reference).abs().max()) <= 1e-4 * scale
    # The same numbers on torchvision's own class, through zennit's canonizer (our check picks it).
    assert torch.allclose(cam.lrp_relevance(theirs, image, target), reference, atol=1e-6 * scale)


def test_lrp_through_explain_leaves_the_model_as_it_was():
    model = _with_trained_statistics(resnet_core.build("resnet20", seed=0, width=4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    image = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    explanation = cam.explain(model, image, 3, "layer3.2", "lrp")
    relevance = cam.lrp_relevance(model, image, 3)
    assert explanation.method == "lrp" and explanation.layer is None and explanation.class_index == 3
    assert np.allclose(explanation.raw, relevance.sum(dim=1).clamp(min=0)[0].numpy(), atol=1e-6)
    assert any("does not explain at a layer" in n for n in explanation.notes)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert count_hooks(model) == 0 and all(p.grad is None for p in model.parameters())
    assert all(not hasattr(m, "canonizer_sum") for m in model.modules())


def test_a_layout_it_cannot_canonize_is_refused_in_one_sentence():
    model = resnet_core.build("resnet20", seed=0, width=4).eval()
    model.layer2[0].relu1 = nn.GELU()
    image = torch.randn(1, 3, 32, 32)
    with pytest.raises(cam.CamError, match=r"^LRP has no rule for the GELU layer in this net, so relevance would "
                                           r"not be conserved; choose another method\.$"):
        cam.explain(model, image, 0, None, "lrp")
    with pytest.raises(cam.CamError, match="LRP canonizes only ResNets"):
        cam.lrp_relevance(nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten()), image)
