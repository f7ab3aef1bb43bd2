"""Layer-wise relevance propagation (Bach et al. 2015) through zennit's EpsilonPlusFlat composite, with canonizers
for ResNet Explorer's own blocks.

zennit's ``ResNetCanonizer`` matches only torchvision's block classes; on ours it would run without canonizing
(the residual add then hands the full relevance to both branches and input relevance grows with depth). So:

* ``ResidualSumCanonizer`` makes every residual add a zennit ``Sum`` module (the ``Norm`` rule then splits the
  relevance between shortcut and branch in proportion to what each contributed). It covers the basic, bottleneck
  and both pre-activation blocks, whose adds all go through ``ResidualBlock._merge``; the option-A padding
  shortcut (subsample, then zero channels) needs nothing more: its padded channels contribute zero and receive
  zero relevance, the subsampled ones receive theirs by the gradient.
* ``batch_norm_pairs`` names every batch norm that directly follows a convolution (the post-activation blocks'
  three, the projection shortcut's, the stem's; the pre-activation blocks' inner ones) for zennit's
  ``NamedMergeBatchNorm``. A pre-activation block's first batch norm follows a sum, not a convolution, and cannot
  be merged: zennit's rule for any batch norm it finds (``Pass``) hands its relevance through unchanged.

``lrp_relevance`` works on a private copy of the model (merging batch norms rewrites weights), and refuses in one
sentence a net whose layout it cannot canonize.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ..blocks import BasicBlock, Bottleneck, PadShortcut, PreActBasicBlock, PreActBottleneck, ResidualBlock
from ..costs import MemoryEstimate, net_cost
from ..hooks import preserved_state
from ..models import InputSize, ResNet
from ..targets import Target, as_target
from .core import CamError, TargetModel, _check_image
from .methods import CamMethod, register

# (convolution, the batch norm right after it) in each of our block classes
_CONV_BN: dict[type[ResidualBlock], tuple[tuple[str, str], ...]] = {
    BasicBlock: (("conv1", "bn1"), ("conv2", "bn2")),
    Bottleneck: (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")),
    PreActBasicBlock: (("conv1", "bn2"),),
    PreActBottleneck: (("conv1", "bn2"), ("conv2", "bn3")),
}
# The layers a canonized net may hold: zennit has a rule for each (or the gradient is right for it).
_KNOWN_LAYERS = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.Linear, nn.Identity,
                 PadShortcut)


def batch_norm_pairs(model: nn.Module) -> list[tuple[tuple[str], str]]:
    """((convolution name,), batch norm name) for every batch norm of our ``ResNet`` that directly follows a
    convolution: the name map of zennit's ``NamedMergeBatchNorm``."""
    pairs: list[tuple[tuple[str], str]] = []
    if not model.preact:
        pairs.append(((_convolution(model, "conv1"),), "bn1"))
    for name, module in model.named_modules():
        if isinstance(module, ResidualBlock):
            pairs += [((f"{name}.{conv}",), f"{name}.{bn}") for conv, bn in _CONV_BN[type(module)]]
            shortcut = module.downsample if module.residual else None
            if isinstance(shortcut, nn.Sequential) and len(shortcut) == 2 \
                    and isinstance(shortcut[1], nn.BatchNorm2d):
                pairs.append(((f"{name}.downsample.0",), f"{name}.downsample.1"))
    return pairs


def _convolution(model: nn.Module, name: str) -> str:
    """``name``, or the one convolution inside it where the stem's convolution is wrapped (e.g. by the trust
    scores' shifted-input copy)."""
    module = model.get_submodule(name)
    if isinstance(module, nn.Conv2d):
        return name
    inner = [f"{name}.{sub}" for sub, m in module.named_modules() if isinstance(m, nn.Conv2d)]
    if len(inner) != 1:
        raise CamError(f"LRP cannot canonize this net's {name}: it is not one convolution; choose another method.")
    return inner[0]


def check_canonizable(model: nn.Module) -> str:
    """"ours" or "torchvision" (whose canonizer zennit ships); otherwise CamError, in one sentence, naming what
    stands in the way (relevance would not be conserved through it)."""
    from torchvision.models.resnet import ResNet as TorchvisionResNet

    if isinstance(model, ResNet):
        kind = "ours"
        odd = [type(m).__name__ for m in model.modules()
               if isinstance(m, ResidualBlock) and type(m) not in _CONV_BN]
        if odd:
            raise CamError(f"LRP cannot canonize a {odd[0]} block (it knows the basic, bottleneck and "
                           "pre-activation blocks), so relevance would not be conserved; choose another method.")
    elif isinstance(model, TorchvisionResNet):
        kind = "torchvision"
    else:
        raise CamError(f"LRP canonizes only ResNets (ResNet Explorer's and torchvision's), not a "
                       f"{type(model).__name__}, so relevance would not be conserved; choose another method.")
    for module in model.modules():
        if not any(True for _ in module.children()) and not isinstance(module, _KNOWN_LAYERS):
            raise CamError(f"LRP has no rule for the {type(module).__name__} layer in this net, so relevance "
                           "would not be conserved; choose another method.")
    return kind


def _canonizers(model: nn.Module, kind: str) -> list[Any]:
    from zennit.canonizers import AttributeCanonizer, NamedMergeBatchNorm
    from zennit.layer import Sum

    if kind == "torchvision":
        from zennit.torchvision import ResNetCanonizer

        return [ResNetCanonizer()]

    def merge_with_sum(self: ResidualBlock, branch: torch.Tensor, x: torch.Tensor, fast: bool = False,
                       block_input: torch.Tensor | None = None) -> torch.Tensor:
        """``ResidualBlock._merge`` with the add as a ``Sum`` module: relevance splits between the two inputs."""
        branch = self.tap_branch(branch)
        shortcut = self._shortcut(x)
        return self.tap_sum(self.canonizer_sum(torch.stack([shortcut, branch], dim=-1)))

    def residual_sum(_name: str, module: nn.Module) -> dict[str, Any] | None:
        if isinstance(module, ResidualBlock) and module.residual:
            return {"_merge": merge_with_sum.__get__(module), "canonizer_sum": Sum()}
        return None

    return [NamedMergeBatchNorm(batch_norm_pairs(model)), AttributeCanonizer(residual_sum)]


def lrp_relevance(model: nn.Module, image: torch.Tensor, target: int | Target | None = None) -> torch.Tensor:
    """Input relevance (N, C, H, W) of the target class's logit by LRP (zennit's EpsilonPlusFlat: flat rule at
    the first convolution, z+ at the others, epsilon at the classifier; residual adds split by the Norm rule).

    The relevance starts as the class's logit at the output; what reaches the input sums to that logit, less what
    the classifier's bias takes (the epsilon rule's known leak) and what a batch norm's bias takes under z+. Runs
    on a private copy of ``model``, under its lock; the model is left exactly as it was.
    """
    from zennit.composites import EpsilonPlusFlat

    _check_image(image)
    goal = as_target(target)
    if not hasattr(goal, "class_indices"):
        raise CamError("LRP explains a class: pass a class index (or None for the top-1 class).")
    kind = check_canonizable(model)
    with preserved_state(model, train=False):
        private = copy.deepcopy(model).eval()
    for parameter in private.parameters():
        parameter.requires_grad_(False)
    composite = EpsilonPlusFlat(zero_params="bias", canonizers=_canonizers(private, kind))
    x = image.detach().clone().requires_grad_(True)
    with torch.enable_grad(), composite.context(private) as modified:
        logits = modified(x)
        classes = goal.class_indices(logits.detach()).long()
        if not ((classes >= 0) & (classes < logits.shape[1])).all():
            raise CamError(f"Class index {int(classes.max())} is outside this model's {logits.shape[1]} classes.")
        start = torch.zeros_like(logits).scatter(1, classes[:, None], logits.detach().gather(1, classes[:, None]))
        (relevance,) = torch.autograd.grad(logits, x, grad_outputs=start)
    return relevance.detach()


@register
class Lrp(CamMethod):
    """LRP through zennit's EpsilonPlusFlat composite with our canonizers (``lrp_relevance``); the map is the
    positive input relevance summed over colour channels. A whole-net method: it ignores the layer."""

    name, label = "lrp", "LRP (EpsilonPlusFlat)"
    uses_layer = False
    instead = "it propagates the logit's relevance back to the input pixels"

    @classmethod
    def cost(cls, model: nn.Module | str, *, batch: int = 1, image_size: InputSize | None = None,
             options: dict[str, Any] | None = None, builds: bool | None = None) -> MemoryEstimate:
        """A private copy of the weights (merging batch norms rewrites them), a forward kept for a backward to the
        input, and the relevance at the input."""
        net = net_cost(model, batch=batch, image_size=image_size, options=options, builds=builds)
        parts = {**net.inputs(), "private copy of the weights": net.model_bytes, **net.forward_backward(),
                 "input relevance": net.bytes(2 * net.profile.input_numel)}
        return net.estimate("lrp", f"LRP on {net.net} at {net.px} px", parts, cls.cost)

    def attribute(self, wrapped: TargetModel, image: torch.Tensor, layer: nn.Module | None, *,
                  cost: MemoryEstimate, ig_steps: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        with torch.no_grad():
            wrapped(image)  # the plain logits: class and score, as every method reports them
        relevance = lrp_relevance(wrapped.model, image, wrapped.target)
        return relevance.sum(dim=1).clamp(min=0), None
