"""The methods behind ``explain``: a registry, name -> method object with one interface.

Adding a method is adding one class here (a subclass of ``CamMethod`` decorated with ``@register``, above the
``LAYER_METHODS`` line) and its test; ``explain``, ``METHODS`` and the Grad-CAM page pick it up from the registry.
Each method declares its memory cost beside its code: the classmethod ``cost(model, *, batch, image_size, ...)``
summed from ``costs.net_cost``'s parts (the input, a no-grad forward, a forward kept for backward), so a new
method is costed without touching ``costs``; ``explain`` asks ``estimate`` (which calls ``cost``) before it runs.

The layer-activation methods (Grad-CAM++, XGrad-CAM, HiResCAM, LayerCAM, Score-CAM, Eigen-CAM) are written here
on one pass through the model (``_layer_pass``): the layer's output A (N, C, h, w) and, for the gradient methods,
dy/dA from ``torch.autograd.grad`` (no parameter ``.grad``). Each is checked against the ``grad-cam`` package
(pytorch-grad-cam) in tests/core/test_cam_methods.py: Pearson correlation >= 0.99 of the maps, all-zero where its
map is all-zero. As in that package, a map is ReLU(map at the layer), bilinearly upsampled to the input.
"""

from __future__ import annotations

import abc
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..costs import (
    MemoryEstimate,
    Variant,
    estimate_forward,
    halvings,
    net_axes,
    net_cost,
    require_within_budget,
    scale_to_budget,
)
from ..hooks import taps
from ..models import InputSize
from ..targets import ClassTarget, TopClassTarget
from .core import (
    CamError,
    TargetModel,
)

Progress = Callable[[int, int], None]  # (forward passes done, forward passes in all)
SCORECAM_BATCH = 32  # masked images per forward pass (the grad-cam package's default is 16)

# name -> label, in registration order (the page's method list)
METHODS: dict[str, str] = {}
REGISTRY: dict[str, CamMethod] = {}


class CamMethod(abc.ABC):
    """One saliency method: a name, a label, whether it explains at a layer, and ``attribute``."""

    name: ClassVar[str]
    label: ClassVar[str]
    uses_layer: ClassVar[bool] = True
    needs_gradient: ClassVar[bool] = True  # False: ``explain`` runs it under torch.no_grad()
    reports_progress: ClassVar[bool] = False  # True: ``attribute`` takes ``progress=`` (many forward passes)
    own_batching: ClassVar[bool] = False  # True: it batches its own passes; batches of images go one at a time
    instead: ClassVar[str] = ""  # what a method that ignores the layer explains from, in words

    @classmethod
    @abc.abstractmethod
    def cost(cls, model: nn.Module | str, *, batch: int = 1, image_size: InputSize | None = None,
             **request: Any) -> MemoryEstimate:
        """The memory this method needs on ``model`` for ``batch`` images of ``image_size`` (arguments as
        ``costs.net_cost``, plus the method's own); the estimate is made again by this same function when a
        smaller variant is costed (``costs.suggestions_for``, ``costs.scale_to_budget``)."""

    def estimate(self, model: nn.Module, image_size: tuple[int, ...], *, ig_steps: int = 16,
                 batch_size: int = SCORECAM_BATCH) -> MemoryEstimate:
        """The memory ``explain`` needs for one image of ``image_size`` (C, H, W) (``cost`` for one image)."""
        return self.cost(model, image_size=image_size)

    def forward_passes(self, *, channels: int, height: int, width: int, ig_steps: int = 16) -> int:
        """About how many forward passes' worth of work one explanation takes (a backward counts as two), for a
        layer of ``channels`` channels and an input of ``height`` x ``width``: what a time estimate multiplies."""
        return 3 if self.needs_gradient else 1

    def fit_budget(self, estimate: MemoryEstimate) -> MemoryEstimate:
        """Over the memory budget: raise BudgetError (the default), or scale the request down and say so."""
        return require_within_budget(estimate)

    @abc.abstractmethod
    def attribute(self, wrapped: TargetModel, image: torch.Tensor, layer: nn.Module | None, *,
                  cost: MemoryEstimate, ig_steps: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(map (N, H, W) at input resolution, non-negative where it means evidence for the target;
        the map at the layer's own resolution (N, h, w) or None). Runs under the model's lock, eval mode."""


def register(cls: type[CamMethod]) -> type[CamMethod]:
    """Class decorator: put one instance of ``cls`` in the registry under ``cls.name``."""
    REGISTRY[cls.name] = cls()
    METHODS[cls.name] = cls.label
    return cls


# ------------------------------------------------------------------ methods on the layer's activations
def _layer_pass(wrapped: TargetModel, images: torch.Tensor, layer: nn.Module, *, gradients: bool,
                create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One forward pass recording the layer's output A (N, C, h, w) and, with ``gradients``, dy/dA.

    ``create_graph``: dy/dA keeps its own graph and A is returned as the leaf it was differentiated at, so a
    second derivative can follow (ShapleyCAM's Hessian-vector product).

    The recorded output is handed on as a fresh leaf (``detach().requires_grad_()``): the backward pass stops at
    the layer, works when every parameter is frozen, and touches no parameter's ``.grad``; the forward records
    a graph only from the layer on. The caller holds the
    model's lock and state (``explain`` or ``cam_batch``); the tap comes off in ``finally``.
    """
    kept: list[torch.Tensor] = []

    def keep(_module: nn.Module, _args: object, output: object) -> torch.Tensor | None:
        if kept or not isinstance(output, torch.Tensor):
            return None  # only the first call (a module reused later in the forward keeps its output)
        if gradients:
            torch.set_grad_enabled(True)  # the graph starts here; the caller's no_grad() restores the mode after
        leaf = output.detach().requires_grad_(gradients)
        kept.append(leaf)
        return leaf

    with taps(wrapped.model, hold=False) as tapped:
        tapped.forward(layer, keep)
        if gradients:
            # Nothing before the layer is differentiated, so nothing before it is recorded: the forward runs
            # without a graph until the tap turns recording on. (Recording every conv's graph costs a few per
            # cent of the pass, which is what Captum's LayerGradCam pays.)
            with torch.no_grad():
                scores = wrapped(images)
            if not kept:
                raise CamError("The chosen layer did not run in the forward pass; choose a block or a tap point.")
            # samples are independent: one backward
            (grads,) = torch.autograd.grad(scores.sum(), kept[0], create_graph=create_graph)
        else:
            with torch.no_grad():
                wrapped(images)
            grads = None
    if not kept:
        raise CamError("The chosen layer did not run in the forward pass; choose a block or a tap point.")
    activations = kept[0] if create_graph else kept[0].detach()
    if activations.dim() != 4:
        raise CamError("This method needs a layer with a spatial (N, C, h, w) output; choose a block or a tap "
                       "point.")
    return activations, grads


def _to_input(layer_maps: torch.Tensor, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(ReLU of the layer-resolution maps (N, h, w), the same bilinearly upsampled to the input (N, H, W))."""
    layer_maps = F.relu(torch.nan_to_num(layer_maps.float()))
    upsampled = F.interpolate(layer_maps[:, None], size=tuple(images.shape[-2:]), mode="bilinear",
                              align_corners=False)[:, 0]
    return layer_maps, upsampled


class _ActivationCam(CamMethod):
    """A map built from the layer's activations A and gradients G: ``layer_map(A, G)`` -> (N, h, w)."""

    @classmethod
    def cost(cls, model: nn.Module | str, **request: Any) -> MemoryEstimate:
        return GradCam.cost(model, **request)  # one forward and a backward that stops at the layer, like Grad-CAM

    @abc.abstractmethod
    def layer_map(self, activations: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        """The map at the layer's resolution (N, h, w), before the ReLU."""

    def attribute(self, wrapped: TargetModel, image: torch.Tensor, layer: nn.Module | None, *,
                  cost: MemoryEstimate, ig_steps: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        activations, grads = _layer_pass(wrapped, image, layer, gradients=self.needs_gradient)
        layer_maps, raw = _to_input(self.layer_map(activations, grads), image)
        return raw, layer_maps


@register
class GradCam(_ActivationCam):
    """Grad-CAM (Selvaraju et al. 2017) at any named layer (block, stage or tap point): channel weights are the
    spatially mean-pooled gradients of the target at that layer, the map is ReLU(sum of weight x activation),
    bilinearly upsampled to the input. Written on the tapped pass (the same numbers as Captum's
    ``LayerGradCam``, checked in tests) because that pass records no graph before the layer: Captum's costs a
    few per cent more than a bare forward and backward, this one does not."""

    name, label = "gradcam", "Grad-CAM"

    @classmethod
    def cost(cls, model: nn.Module | str, *, batch: int = 1, image_size: InputSize | None = None,
             options: dict[str, Any] | None = None, builds: bool | None = None) -> MemoryEstimate:
        """One forward with the graph from the layer on kept for a backward that stops at the layer. Costed
        for the shallowest layer, where that graph is nearly the whole net: an upper bound for deeper layers (at
        the last block, the default, the pass needs about a sixth of it; tests/core/test_budget.py measures both)."""
        net = net_cost(model, batch=batch, image_size=image_size, options=options, builds=builds)
        return net.estimate("gradcam", f"Grad-CAM on {net.net} at {net.px} px",
                            {**net.inputs(), **net.forward_backward()}, cls.cost)

    def layer_map(self, activations: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        return (grads.mean(dim=(2, 3), keepdim=True) * activations).sum(dim=1)


@register
class GuidedGradCam(CamMethod):
    """Captum's ``GuidedGradCam``: guided backpropagation times the upsampled Grad-CAM map (pixel-sharp)."""

    name, label = "guided_gradcam", "Guided Grad-CAM"

    @classmethod
    def cost(cls, model: nn.Module | str, *, batch: int = 1, image_size: InputSize | None = None,
             options: dict[str, Any] | None = None, builds: bool | None = None) -> MemoryEstimate:
        """Grad-CAM's forward and backward, carried on to the input: the input's gradient and its guided copy."""
        net = net_cost(model, batch=batch, image_size=image_size, options=options, builds=builds)
        parts = {**net.inputs(), **net.forward_backward(), "input gradients": net.bytes(2 * net.profile.input_numel)}
        return net.estimate("guided_gradcam", f"Guided Grad-CAM on {net.net} at {net.px} px", parts, cls.cost)

    def attribute(self, wrapped: TargetModel, image: torch.Tensor, layer: nn.Module | None, *,
                  cost: MemoryEstimate, ig_steps: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        from captum.attr import GuidedGradCam as CaptumGuidedGradCam

        with warnings.catch_warnings():
            # Captum announces that it hooks the ReLUs (and removes the hooks): expected, not news.
            warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
            attr = CaptumGuidedGradCam(wrapped, layer).attribute(image.requires_grad_(True),
                                                                 interpolate_mode="bilinear")
        # A pixel-resolution map: the magnitude of the guided, CAM-weighted gradient over channels.
        return attr.detach().abs().sum(dim=1), None


@register
class IntegratedGradients(CamMethod):
    """Captum's ``IntegratedGradients`` on the input pixels from a black-mean baseline (Sundararajan et al.
    2017); the layer is ignored. Over the memory budget it takes fewer steps at a time (and says so)."""

    name, label = "integrated_gradients", "Integrated gradients (input)"
    uses_layer = False
    instead = "it integrates the gradient at the input pixels"
    own_batching = True

    @classmethod
    def cost(cls, model: nn.Module | str, *, batch: int = 1, image_size: InputSize | None = None,
             options: dict[str, Any] | None = None, builds: bool | None = None, ig_steps: int = 16,
             ig_chunk: int | None = None) -> MemoryEstimate:
        """``ig_steps`` scaled copies of the input, ``ig_chunk`` of them (default all) through a forward kept
        for backward and a backward at a time; ``request["ig_chunk"]`` is the chunk ``attribute`` runs."""
        chunk = max(1, min(int(ig_steps), int(ig_chunk or ig_steps)))
        net = net_cost(model, batch=batch, image_size=image_size, options=options, builds=builds,
                       ig_steps=ig_steps, ig_chunk=chunk)
        parts = {**net.inputs(), "scaled inputs": net.bytes(2 * net.profile.input_numel * int(ig_steps)),
                 **net.forward_backward(copies=chunk)}
        what = f"Integrated gradients on {net.net} at {net.px} px ({ig_steps} steps, {chunk} at a time)"
        return net.estimate("integrated_gradients", what, parts, cls.cost, axes=_fewer_steps_first)

    def estimate(self, model: nn.Module, image_size: tuple[int, ...], *, ig_steps: int = 16,
                 batch_size: int = SCORECAM_BATCH) -> MemoryEstimate:
        return self.cost(model, image_size=image_size, ig_steps=ig_steps)

    def fit_budget(self, estimate: MemoryEstimate) -> MemoryEstimate:
        return scale_to_budget(estimate, "ig_chunk", unit="images at a time")

    def forward_passes(self, *, channels: int, height: int, width: int, ig_steps: int = 16) -> int:
        return 1 + 3 * ig_steps

    def attribute(self, wrapped: TargetModel, image: torch.Tensor, layer: nn.Module | None, *,
                  cost: MemoryEstimate, ig_steps: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        from captum.attr import IntegratedGradients as CaptumIntegratedGradients

        with torch.no_grad():
            wrapped(image)  # IG only sees scaled inputs: record the plain input's logits first
        _fix_top_class(wrapped)
        attr = CaptumIntegratedGradients(wrapped).attribute(
            image.requires_grad_(True), baselines=torch.zeros_like(image), n_steps=ig_steps,
            internal_batch_size=cost.request["ig_chunk"])
        # Positive evidence only, summed over channels: the pixels that raise the target's score.
        return attr.detach().sum(dim=1).clamp(min=0), None


def _fewer_steps_first(request: dict[str, Any]) -> list[list[Variant]]:
    """Integrated gradients' suggestions: fewer integration steps (each costed with all of them at once), then
    the axes of any net (``costs.net_axes``)."""
    steps = [({"ig_steps": n}, f"{n} integration steps", {"ig_steps": n, "ig_chunk": None})
             for n in halvings(request["ig_steps"], 2)]
    return [steps, *net_axes(request)]


def _fix_top_class(wrapped: TargetModel) -> None:
    """For methods that run the model on altered copies of one image: "the top-1 class" means the plain image's
    (each copy's own top-1 would change the question), so it is fixed from the logits already recorded."""
    if isinstance(wrapped.target, TopClassTarget) and wrapped.first_logits is not None \
            and wrapped.first_logits.shape[0] == 1:
        wrapped.target = ClassTarget(int(wrapped.first_logits[0].argmax()))


# ------------------------------------------------------ the Grad-CAM family's other weightings of A and G
@register
class GradCamPlusPlus(_ActivationCam):
    """Grad-CAM++ (Chattopadhyay et al. 2018, eq. 19 with the exponential's derivatives, as pytorch-grad-cam):
    channel weight sum_hw(ReLU(G) * alpha), alpha = G^2 / (2 G^2 + sum_hw(A) G^3), zero where G is zero."""

    name, label = "gradcampp", "Grad-CAM++"

    def layer_map(self, activations: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        g2 = grads.pow(2)
        alpha = g2 / (2 * g2 + activations.sum(dim=(2, 3), keepdim=True) * g2 * grads + 1e-6)
        alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
        weights = (F.relu(grads) * alpha).sum(dim=(2, 3), keepdim=True)
        return (weights * activations).sum(dim=1)


@register
class XGradCam(_ActivationCam):
    """XGrad-CAM (Fu et al. 2020): channel weight sum_hw(G * A) / sum_hw(A), the axiom-derived weighting."""

    name, label = "xgradcam", "XGrad-CAM"

    def layer_map(self, activations: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        weights = (grads * activations).sum(dim=(2, 3), keepdim=True) / (
            activations.sum(dim=(2, 3), keepdim=True) + 1e-7)
        return (weights * activations).sum(dim=1)


@register
class HiResCam(_ActivationCam):
    """HiResCAM (Draelos & Carin 2020): sum_c(G * A), element-wise, without averaging the gradient over space
    (provably the locations the score depends on, for a model whose head is global pooling + linear)."""

    name, label = "hirescam", "HiResCAM"

    def layer_map(self, activations: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        return (grads * activations).sum(dim=1)


@register
class LayerCam(_ActivationCam):
    """LayerCAM (Jiang et al. 2021): sum_c(ReLU(G) * A), a per-location weight (works at shallow layers too)."""

    name, label = "layercam", "LayerCAM"

    def layer_map(self, activations: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        return (F.relu(grads) * activations).sum(dim=1)


@register
class EigenCam(_ActivationCam):
    """Eigen-CAM (Muhammad & Yeasin 2020): the layer's activations projected on their first principal component
    (positions x channels, centred over positions). Class-agnostic and gradient-free (no_grad).

    Sign convention: an SVD's sign is arbitrary (numpy and torch return opposite signs for the same matrix), so
    the component is oriented so that its channel weights sum to >= 0. Then the map correlates positively with
    the layer's summed activation (projection . row sums = sigma^2 * sum(v)): high where the channels together
    are more active than average. The grad-cam package keeps numpy's sign; its map equals ours or is the ReLU of
    the opposite sign.
    """

    name, label = "eigencam", "Eigen-CAM"
    needs_gradient = False

    @classmethod
    def cost(cls, model: nn.Module | str, **request: Any) -> MemoryEstimate:
        return estimate_forward(model, **request)  # gradient-free: one no-grad forward

    def layer_map(self, activations: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        return principal_projection(activations)


def principal_projection(maps: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) -> (N, h, w): the maps projected on their first principal component (positions x channels,
    centred over positions), oriented so that the component's channel weights sum to >= 0 (see ``EigenCam``)."""
    n, c, h, w = maps.shape
    flat = torch.nan_to_num(maps.float()).reshape(n, c, h * w).transpose(1, 2)  # (N, hw, C)
    centred = flat - flat.mean(dim=1, keepdim=True)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    first = vh[:, 0, :]  # (N, C)
    sign = torch.where(first.sum(dim=1) < 0, -1.0, 1.0)
    projection = torch.einsum("npc,nc->np", centred, first * sign[:, None])
    return projection.reshape(n, h, w)


def _score_classes(wrapped: TargetModel) -> torch.Tensor:
    """The class each image is explained for, fixed from the plain input's logits (a masked copy's own top-1
    would otherwise change the question)."""
    target = wrapped.target
    if not hasattr(target, "class_indices") or wrapped.first_logits is None:
        raise CamError("Score-CAM explains a class: pass a class index (or None for the top-1 class).")
    return target.class_indices(wrapped.first_logits).long()


def scorecam_passes(channels: int, constant: int = 0) -> int:
    """Forward passes Score-CAM runs for a layer with ``channels`` channels, ``constant`` of them constant maps
    (those all mask the image to zero and are scored once): one for the activations, then one per mask."""
    return 1 + (channels - constant) + (1 if constant else 0)


class _MaskedForwards(CamMethod):
    """Gradient-free methods that score many masked copies of the image: no-grad forwards of ``batch_size``
    copies at a time (the estimate's input row covers the copies), the batch scaled to the memory budget."""

    needs_gradient = False
    own_batching = True

    @classmethod
    def cost(cls, model: nn.Module | str, **request: Any) -> MemoryEstimate:
        return estimate_forward(model, **request)  # no-grad forwards of ``batch`` masked copies at a time

    def estimate(self, model: nn.Module, image_size: tuple[int, ...], *, ig_steps: int = 16,
                 batch_size: int = SCORECAM_BATCH) -> MemoryEstimate:
        return self.cost(model, image_size=image_size, batch=batch_size)

    def fit_budget(self, estimate: MemoryEstimate) -> MemoryEstimate:
        return scale_to_budget(estimate, "batch")


@register
class ScoreCam(_MaskedForwards):
    """Score-CAM (Wang et al. 2020), as pytorch-grad-cam computes it: each channel of A, upsampled (bilinear,
    corners aligned) and min-max scaled to [0, 1], masks the input; the masked images' target logits, softmaxed
    over channels, weight the channels. Gradient-free (no_grad); one forward pass per channel, ``batch`` masked
    images at a time (``cost.request["batch"]``, scaled to the memory budget), with ``progress(done, total)``.
    Channels whose mask is all zero (a constant map) give the same all-zero image: it is scored once.
    """

    name, label = "scorecam", "Score-CAM"
    reports_progress = True

    def forward_passes(self, *, channels: int, height: int, width: int, ig_steps: int = 16) -> int:
        return scorecam_passes(channels)

    def attribute(self, wrapped: TargetModel, image: torch.Tensor, layer: nn.Module | None, *,
                  cost: MemoryEstimate, ig_steps: int, progress: Progress | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
        activations, _ = _layer_pass(wrapped, image, layer, gradients=False)
        classes = _score_classes(wrapped)
        batch = max(1, int(cost.request.get("batch") or SCORECAM_BATCH))
        n, c = activations.shape[:2]
        size = tuple(image.shape[-2:])
        with torch.no_grad():
            # Which channels give a non-zero mask: min-max scaling of a constant map gives zero everywhere.
            flat = activations.flatten(2)
            varies = (flat.amax(dim=2) - flat.amin(dim=2)) > 0
            masks_needed = [int(varies[i].sum()) for i in range(n)]
            constant = [c - m for m in masks_needed]
            total = sum(scorecam_passes(c, k) - 1 for k in constant)
            done = 0
            weights = torch.empty(n, c, dtype=torch.float32, device=activations.device)
            for i in range(n):
                scores = torch.empty(c, dtype=torch.float32, device=activations.device)
                channels = varies[i].nonzero()[:, 0]
                for start in range(0, channels.numel(), batch):
                    chunk = channels[start:start + batch]
                    masks = F.interpolate(activations[i, chunk][:, None], size=size, mode="bilinear",
                                          align_corners=True)
                    low = masks.flatten(1).amin(1)[:, None, None, None]
                    high = masks.flatten(1).amax(1)[:, None, None, None]
                    masks = (masks - low) / (high - low + 1e-8)
                    logits = wrapped.model(image[i:i + 1] * masks)
                    scores[chunk] = logits[:, int(classes[i])].float()
                    done += chunk.numel()
                    if progress is not None:
                        progress(done, total)
                if constant[i]:
                    scores[~varies[i]] = wrapped.model(torch.zeros_like(image[i:i + 1]))[0, int(classes[i])].float()
                    done += 1
                    if progress is not None:
                        progress(done, total)
                weights[i] = scores.softmax(dim=0)
            layer_maps = (weights[:, :, None, None] * activations.float()).sum(dim=1)
        layer_maps, raw = _to_input(layer_maps, image)
        return raw, layer_maps


@register
class Occlusion(_MaskedForwards):
    """Captum's ``Occlusion`` (Zeiler & Fergus 2014): a square of zeros (the data set's mean colour in the
    normalised image) slides over the image; a pixel's attribution is the mean fall of the target's score over
    the windows that cover it (positive part: where hiding the pixels lowers the score). Gradient-free, no layer;
    the window is an eighth of each side (at least 2 px), the stride half the window, ``batch`` windows per
    forward pass (scaled to the memory budget)."""

    name, label = "occlusion", "Occlusion"
    uses_layer = False
    instead = "it hides windows of the input"

    def forward_passes(self, *, channels: int, height: int, width: int, ig_steps: int = 16) -> int:
        return occlusion_passes(height, width)

    def attribute(self, wrapped: TargetModel, image: torch.Tensor, layer: nn.Module | None, *,
                  cost: MemoryEstimate, ig_steps: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        from captum.attr import Occlusion as CaptumOcclusion

        with torch.no_grad():
            wrapped(image)  # the plain image's logits: its class and score
        _fix_top_class(wrapped)
        channels, height, width = image.shape[1:]
        (window_h, stride_h), (window_w, stride_w) = occlusion_window(height), occlusion_window(width)
        window, strides = (channels, window_h, window_w), (channels, stride_h, stride_w)
        with torch.no_grad():
            attr = CaptumOcclusion(wrapped).attribute(image, sliding_window_shapes=window, strides=strides,
                                                      baselines=0.0,
                                                      perturbations_per_eval=int(cost.request.get("batch") or 1))
        return attr.detach().sum(dim=1).clamp(min=0), None


def occlusion_window(side: int) -> tuple[int, int]:
    """``Occlusion``'s window and stride along one side of ``side`` pixels: an eighth of it (at least 2), half a
    window apart."""
    window = max(2, side // 8)
    return window, max(1, window // 2)


def occlusion_passes(height: int, width: int) -> int:
    """Forward passes ``Occlusion`` runs on an image of ``height`` x ``width``: one per window, plus the plain
    image twice (once for its class, once inside Captum)."""
    count = 1
    for side in (height, width):
        window, stride = occlusion_window(side)
        count *= (side - window) // stride + 1
    return count + 2
