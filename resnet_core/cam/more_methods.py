"""The grad-cam package's other eight methods, on our own passes: AblationCAM, Eigen-Grad-CAM, FullGrad, KPCA-CAM,
ShapleyCAM, FinerCAM, Grad-CAM element-wise and FEM.

Each agrees with pytorch-grad-cam 1.5.7 (Pearson >= 0.99 of the maps, up to sign for the principal-component
methods; tests/core/test_cam_more_methods.py), leaves no parameter gradient behind (``torch.autograd.grad`` only)
and declares its memory cost beside its code, as every method in ``methods`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..costs import MemoryEstimate, estimate_forward, net_cost
from ..hooks import taps
from ..models import InputSize
from ..targets import Target
from .core import CamError, TargetModel
from .methods import (
    SCORECAM_BATCH,
    CamMethod,
    GradCam,
    Progress,
    _ActivationCam,
    _layer_pass,
    _MaskedForwards,
    _score_classes,
    _to_input,
    principal_projection,
    register,
)

KPCA_MAX_POSITIONS = 4096  # KPCA-CAM's kernel is positions x positions: 4096^2 floats are 64 MiB
FINER_RIVALS = 3  # FinerCAM compares with the three classes nearest in logit (the package's default)
ABLATION_FAR_BELOW = 1e7  # how far below the minimum a channel is set where activations go negative (the package)


@register
class EigenGradCam(_ActivationCam):
    """Eigen-Grad-CAM: the first principal component of G * A (the gradient-weighted activations), as Eigen-CAM
    takes it of A; class-discriminative through G. Oriented as Eigen-CAM (channel weights summing to >= 0)."""

    name, label = "eigengradcam", "Eigen-Grad-CAM"

    def layer_map(self, activations: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        return principal_projection(grads * activations)


@register
class GradCamElementWise(_ActivationCam):
    """Grad-CAM element-wise: sum_c ReLU(G * A), the positive part taken per element before the channel sum
    (HiResCAM sums first), so that evidence against the class at one place cannot cancel evidence for it."""

    name, label = "gradcamelementwise", "Grad-CAM element-wise"

    def layer_map(self, activations: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        return F.relu(grads * activations).sum(dim=1)


@register
class Fem(_ActivationCam):
    """FEM, the feature explanation method (Fuad et al. 2020): a channel's weight is the share of its positions
    whose activation exceeds its mean by two standard deviations (population); the map is sum_c weight * A.
    Gradient-free and class-agnostic (no_grad)."""

    name, label = "fem", "FEM"
    needs_gradient = False
    deviations: ClassVar[float] = 2.0

    @classmethod
    def cost(cls, model: nn.Module | str, **request: Any) -> MemoryEstimate:
        return estimate_forward(model, **request)

    def layer_map(self, activations: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        a = activations.float()
        means = a.mean(dim=(2, 3), keepdim=True)
        stds = a.std(dim=(2, 3), keepdim=True, correction=0)
        weights = (a > means + self.deviations * stds).float().mean(dim=(2, 3), keepdim=True)
        return (weights * a).sum(dim=1)


@register
class KpcaCam(_ActivationCam):
    """KPCA-CAM (Karmani et al. 2024): Eigen-CAM with kernel PCA. The layer's positions (centred over positions)
    are compared by the sigmoid kernel tanh(x.y / C + 1) (scikit-learn's defaults, as the package uses them); the
    map is the first component of the centred kernel matrix, sqrt(lambda) * v. Gradient-free (no_grad).

    The kernel has one row per position: layers with more than ``KPCA_MAX_POSITIONS`` positions are refused in one
    sentence before it is built. Sign: a component's sign is arbitrary; ours is oriented so that the map
    correlates positively with the positions' summed activation.
    """

    name, label = "kpcacam", "KPCA-CAM"
    needs_gradient = False

    @classmethod
    def cost(cls, model: nn.Module | str, *, batch: int = 1, image_size: InputSize | None = None,
             options: dict[str, Any] | None = None, builds: bool | None = None) -> MemoryEstimate:
        """A no-grad forward, and the kernel matrix at its largest (three float64 copies: kernel, centred,
        eigenvectors), for a layer with as many positions as the input has pixels, or the refusal's limit."""
        net = net_cost(model, batch=batch, image_size=image_size, options=options, builds=builds)
        positions = min(KPCA_MAX_POSITIONS, net.px * net.px)
        parts = {**net.inputs(), **net.no_grad_forward(), "kernel matrices": 3 * 8 * positions ** 2}
        return net.estimate("kpcacam", f"KPCA-CAM on {net.net} at {net.px} px", parts, cls.cost)

    def layer_map(self, activations: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        n, c, h, w = activations.shape
        if h * w > KPCA_MAX_POSITIONS:
            raise CamError(f"KPCA-CAM compares every pair of the layer's {h}x{w} positions, more than "
                           f"{KPCA_MAX_POSITIONS}; choose a deeper layer or a smaller image.")
        flat = torch.nan_to_num(activations.double()).reshape(n, c, h * w).transpose(1, 2)  # (N, hw, C)
        centred = flat - flat.mean(dim=1, keepdim=True)
        maps = []
        for x in centred:
            kernel = torch.tanh(x @ x.T / c + 1.0)
            kernel = kernel - kernel.mean(dim=0, keepdim=True) - kernel.mean(dim=1, keepdim=True) + kernel.mean()
            values, vectors = torch.linalg.eigh(kernel)
            projection = vectors[:, -1] * values[-1].clamp(min=0).sqrt()
            summed = x.sum(dim=1)
            if torch.dot(projection, summed - summed.mean()) < 0:
                projection = -projection
            maps.append(projection.reshape(h, w))
        return torch.stack(maps).float()


@register
class ShapleyCam(_ActivationCam):
    """ShapleyCAM (Cai et al. 2025): Grad-CAM's channel weights from a second-order Shapley estimate,
    mean_hw(G - H A / 2), with H A the Hessian-vector product of the target at the layer (a double backward that
    stops at the layer). For a ReLU net whose head after the layer is piecewise linear, H A is zero and ShapleyCAM
    equals Grad-CAM: measured, not assumed."""

    name, label = "shapleycam", "ShapleyCAM"

    def forward_passes(self, *, channels: int, height: int, width: int, ig_steps: int = 16) -> int:
        return 5  # a forward, a backward and a second backward through the layer's graph

    @classmethod
    def cost(cls, model: nn.Module | str, *, batch: int = 1, image_size: InputSize | None = None,
             options: dict[str, Any] | None = None, builds: bool | None = None) -> MemoryEstimate:
        """Grad-CAM's pass with the backward's own graph kept (a second backward follows): twice its working set."""
        net = net_cost(model, batch=batch, image_size=image_size, options=options, builds=builds)
        once = net.forward_backward()
        parts = {**net.inputs(), **{k: 2 * v for k, v in once.items()}}
        return net.estimate("shapleycam", f"ShapleyCAM on {net.net} at {net.px} px", parts, cls.cost)

    def layer_map(self, activations: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        return GradCam.layer_map(self, activations, grads)  # the weights when H A is zero

    def attribute(self, wrapped: TargetModel, image: torch.Tensor, layer: nn.Module | None, *,
                  cost: MemoryEstimate, ig_steps: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        activations, grads = _layer_pass(wrapped, image, layer, gradients=True, create_graph=True)
        hvp = None
        if grads.requires_grad:  # otherwise the gradient does not depend on A: H A is zero
            (hvp,) = torch.autograd.grad(grads, activations, grad_outputs=activations.detach(), allow_unused=True)
        weights = grads.detach() if hvp is None else grads.detach() - 0.5 * hvp.detach()
        layer_maps = (weights.mean(dim=(2, 3), keepdim=True) * activations.detach()).sum(dim=1)
        layer_maps, raw = _to_input(layer_maps, image)
        return raw, layer_maps


@dataclass(frozen=True)
class _RivalsTarget:
    """FinerCAM's target: the class's logit against its ``rivals`` nearest classes in logit, each difference
    weighted by the rival's probability: sum_k p_k (y_c - alpha y_k) / sum_k p_k. The probabilities stay in the
    graph, as in the package's ``FinerWeightedTarget``."""

    base: Target
    rivals: int = FINER_RIVALS
    alpha: float = 1.0

    def class_indices(self, logits: torch.Tensor) -> torch.Tensor:
        return self.base.class_indices(logits)

    def rival_indices(self, logits: torch.Tensor) -> torch.Tensor:
        main = self.class_indices(logits)
        distance = (logits.detach() - logits.detach().gather(1, main[:, None])).abs()
        distance.scatter_(1, main[:, None], -1.0)  # the class itself first, whatever ties there are
        return distance.argsort(dim=1, stable=True)[:, 1:1 + min(self.rivals, logits.shape[1] - 1)]

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        main = logits.gather(1, self.class_indices(logits)[:, None])
        rivals = self.rival_indices(logits)
        weights = logits.softmax(dim=1).gather(1, rivals)
        return (weights * (main - self.alpha * logits.gather(1, rivals))).sum(dim=1) / (weights.sum(dim=1) + 1e-9)


@register
class FinerCam(_ActivationCam):
    """FinerCAM (Zhang et al. 2025): Grad-CAM of the class against its three nearest rivals in logit (weighted by
    their probabilities), so the map shows what tells the class apart from the classes it is confused with.
    A model with one class has no rival: its map is Grad-CAM's."""

    name, label = "finercam", "FinerCAM"

    def layer_map(self, activations: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        return GradCam.layer_map(self, activations, grads)

    def attribute(self, wrapped: TargetModel, image: torch.Tensor, layer: nn.Module | None, *,
                  cost: MemoryEstimate, ig_steps: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not hasattr(wrapped.target, "class_indices"):
            raise CamError("FinerCAM explains a class: pass a class index (or None for the top-1 class).")
        goal = wrapped.target
        wrapped.target = _RivalsTarget(goal)
        try:
            return super().attribute(wrapped, image, layer, cost=cost, ig_steps=ig_steps)
        finally:
            wrapped.target = goal


@register
class AblationCam(_MaskedForwards):
    """Ablation-CAM (Desai & Ramaswamy 2020), as the package computes it: channel k's weight is the relative fall
    of the target's logit when channel k of the layer is ablated, (y - y_k) / y; the map is sum_k weight * A_k.
    Ablated means zero for a layer of non-negative activations (a block's output) and far below the minimum
    otherwise (the package's choice). Gradient-free: one forward per channel, ``batch`` channels at a time (scaled
    to the memory budget), with ``progress(done, total)``. The image goes through the layers before the ablated
    one once per batch, not once per channel (the package runs them for every copy)."""

    name, label = "ablationcam", "Ablation-CAM"
    reports_progress = True

    def forward_passes(self, *, channels: int, height: int, width: int, ig_steps: int = 16) -> int:
        return 1 + channels

    def attribute(self, wrapped: TargetModel, image: torch.Tensor, layer: nn.Module | None, *,
                  cost: MemoryEstimate, ig_steps: int, progress: Progress | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
        activations, _ = _layer_pass(wrapped, image, layer, gradients=False)
        classes = _score_classes(wrapped)
        batch = max(1, int(cost.request.get("batch") or SCORECAM_BATCH))
        n, c = activations.shape[:2]
        total, done = n * c, 0
        weights = torch.empty(n, c, dtype=torch.float32, device=activations.device)
        for i in range(n):
            original = wrapped.first_logits[i, int(classes[i])].float()
            lowest = activations[i].min()
            value = 0.0 if lowest == 0 else float(lowest) - ABLATION_FAR_BELOW
            scores = torch.empty(c, dtype=torch.float32, device=activations.device)
            for start in range(0, c, batch):
                chunk = torch.arange(start, min(c, start + batch), device=activations.device)
                ablated = activations[i:i + 1].repeat(chunk.numel(), 1, 1, 1)
                ablated[torch.arange(chunk.numel()), chunk] = value
                scores[chunk] = _forward_with(wrapped.model, image[i:i + 1], layer, ablated)[:, int(classes[i])].float()
                done += chunk.numel()
                if progress is not None:
                    progress(done, total)
            weights[i] = (original - scores) / original
        layer_maps = (weights[:, :, None, None] * activations.float()).sum(dim=1)
        layer_maps, raw = _to_input(layer_maps, image)
        return raw, layer_maps


def _forward_with(model: nn.Module, image: torch.Tensor, layer: nn.Module, output: torch.Tensor) -> torch.Tensor:
    """The model's logits on one image with ``layer``'s output replaced by ``output`` (k copies): the layers after
    it run on k copies (a ResNet's residual adds broadcast the single copy before the layer)."""
    def replace(_module: nn.Module, _args: object, _output: object) -> torch.Tensor:
        return output

    with taps(model, hold=False) as tapped:
        tapped.forward(layer, replace)
        logits = model(image)
    if logits.shape[0] != output.shape[0]:
        with taps(model, hold=False) as tapped:  # a net that mixes the copies with the input otherwise
            tapped.forward(layer, replace)
            logits = model(image.expand(output.shape[0], *image.shape[1:]))
    return logits


@register
class FullGrad(CamMethod):
    """FullGrad (Srinivas & Fleuret 2019), as the package computes it: |input gradient x input| plus, for every
    convolution and batch norm with a bias (a batch norm's effective bias b - mean w / sqrt(var + eps)),
    |bias x gradient at its output|; each channel min-max scaled, upsampled and summed. A whole-net method: it
    ignores the layer, and says so."""

    name, label = "fullgrad", "FullGrad"
    uses_layer = False
    instead = "it sums the input gradient and the gradient at every bias in the net"

    @classmethod
    def cost(cls, model: nn.Module | str, *, batch: int = 1, image_size: InputSize | None = None,
             options: dict[str, Any] | None = None, builds: bool | None = None) -> MemoryEstimate:
        """A forward kept for a backward to the input, and a gradient at every biased layer's output (at most
        every layer's output once more)."""
        net = net_cost(model, batch=batch, image_size=image_size, options=options, builds=builds)
        parts = {**net.inputs(), **net.forward_backward(), "input gradients": net.bytes(2 * net.profile.input_numel),
                 "bias gradients": net.bytes(net.profile.kept)}
        return net.estimate("fullgrad", f"FullGrad on {net.net} at {net.px} px", parts, cls.cost)

    def attribute(self, wrapped: TargetModel, image: torch.Tensor, layer: nn.Module | None, *,
                  cost: MemoryEstimate, ig_steps: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        biased = [m for m in wrapped.model.modules()
                  if type(m) in (nn.Conv2d, nn.BatchNorm2d) and m.bias is not None]
        outputs: list[tuple[nn.Module, torch.Tensor]] = []  # every call, in order (a reused module counts each)

        def keep(module: nn.Module, _args: object, output: object) -> None:
            outputs.append((module, output))

        image = image.requires_grad_(True)
        with taps(wrapped.model, hold=False) as tapped:
            for module in biased:
                tapped.forward(module, keep)
            scores = wrapped(image)
        grads = torch.autograd.grad(scores.sum(), [image, *(output for _, output in outputs)])
        size = tuple(image.shape[-2:])
        with torch.no_grad():
            total = _scaled_per_channel((grads[0] * image).abs()).sum(dim=1)
            for (module, _), grad in zip(outputs, grads[1:], strict=True):
                bias = _effective_bias(module).to(grad.dtype)
                summed = _scaled_per_channel((bias[None, :, None, None] * grad).abs()).sum(dim=1)
                # Upsampling is linear: the channels are summed first and upsampled once.
                total = total + F.interpolate(summed[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
        return total.float(), None


def _effective_bias(module: nn.Module) -> torch.Tensor:
    """A convolution's bias, or the constant a batch norm in eval mode adds: b - mean * w / sqrt(var + eps)."""
    if isinstance(module, nn.BatchNorm2d):
        return (module.bias - module.running_mean * module.weight / torch.sqrt(module.running_var + module.eps)
                ).detach()
    return module.bias.detach()


def _scaled_per_channel(maps: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w), each (sample, channel) map min-max scaled to [0, 1] (the package's ``scale_cam_image``)."""
    flat = maps.flatten(2)
    flat = flat - flat.amin(dim=2, keepdim=True)
    flat = flat / (1e-7 + flat.amax(dim=2, keepdim=True))
    return flat.reshape(maps.shape)
