"""The methods behind ``explain``: a registry, name -> method object with one interface.

Adding a method is adding one class here (a subclass of ``CamMethod`` decorated with ``@register``, above the
``LAYER_METHODS`` line) and its test; ``explain``, ``METHODS`` and the Grad-CAM page pick it up from the registry.
A method is costed by ``describe.estimate_memory`` under its ``cost_task`` (by default its own name), so a new
method either names the existing task whose cost it shares or gets a row there.
"""

from __future__ import annotations

import abc
import warnings
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from ..costs import MemoryEstimate, estimate_memory, require_within_budget, scale_to_budget
from ..hooks import preserved_state
from ..targets import Target, as_target
from .core import (
    CamError,
    Explanation,
    _check_image,
    _gradcam_raw,
    _normalise,
    _TargetModel,
    resolve_layer,
    stage_last_blocks,
)

# name -> label, in registration order (the page's method list)
METHODS: dict[str, str] = {}
REGISTRY: dict[str, CamMethod] = {}


class CamMethod(abc.ABC):
    """One saliency method: a name, a label, whether it explains at a layer, and ``attribute``."""

    name: ClassVar[str]
    label: ClassVar[str]
    uses_layer: ClassVar[bool] = True
    cost_task: ClassVar[str | None] = None  # the ``estimate_memory`` task that costs it; None: its own name

    def fit_budget(self, estimate: MemoryEstimate) -> MemoryEstimate:
        """Over the memory budget: raise BudgetError (the default), or scale the request down and say so."""
        return require_within_budget(estimate)

    @abc.abstractmethod
    def attribute(self, wrapped: _TargetModel, image: torch.Tensor, layer: nn.Module | None, *,
                  cost: MemoryEstimate, ig_steps: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(map (N, H, W) at input resolution, non-negative where it means evidence for the target;
        the map at the layer's own resolution (N, h, w) or None). Runs under the model's lock, eval mode."""


def register(cls: type[CamMethod]) -> type[CamMethod]:
    """Class decorator: put one instance of ``cls`` in the registry under ``cls.name``."""
    REGISTRY[cls.name] = cls()
    METHODS[cls.name] = cls.label
    return cls


@register
class GradCam(CamMethod):
    """Captum's ``LayerGradCam`` at any named layer (block, stage or tap point): channel weights are the
    spatially mean-pooled gradients of the target at that layer, the map is ReLU(sum of weight x activation),
    bilinearly upsampled to the input (Selvaraju et al. 2017)."""

    name, label = "gradcam", "Grad-CAM"

    def attribute(self, wrapped: _TargetModel, image: torch.Tensor, layer: nn.Module | None, *,
                  cost: MemoryEstimate, ig_steps: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        layer_maps, raw = _gradcam_raw(wrapped, image, layer)
        return raw, layer_maps


@register
class GuidedGradCam(CamMethod):
    """Captum's ``GuidedGradCam``: guided backpropagation times the upsampled Grad-CAM map (pixel-sharp)."""

    name, label = "guided_gradcam", "Guided Grad-CAM"

    def attribute(self, wrapped: _TargetModel, image: torch.Tensor, layer: nn.Module | None, *,
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

    def fit_budget(self, estimate: MemoryEstimate) -> MemoryEstimate:
        return scale_to_budget(estimate, "ig_chunk")

    def attribute(self, wrapped: _TargetModel, image: torch.Tensor, layer: nn.Module | None, *,
                  cost: MemoryEstimate, ig_steps: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        from captum.attr import IntegratedGradients as CaptumIntegratedGradients

        with torch.no_grad():
            wrapped(image)  # IG only sees scaled inputs: record the plain input's logits first
        attr = CaptumIntegratedGradients(wrapped).attribute(
            image.requires_grad_(True), baselines=torch.zeros_like(image), n_steps=ig_steps,
            internal_batch_size=cost.request["ig_chunk"])
        # Positive evidence only, summed over channels: the pixels that raise the target's score.
        return attr.detach().sum(dim=1).clamp(min=0), None


LAYER_METHODS = tuple(name for name, method in REGISTRY.items() if method.uses_layer)


def explain(model: nn.Module, image: torch.Tensor, target: int | Target | None = None, layer: str | None = None,
            method: str = "gradcam", *, class_names: Sequence[str] | None = None, ig_steps: int = 16
            ) -> Explanation:
    """Explain ``target`` (class index, Target, or None for the top-1 class) for one image (1, 3, H, W).

    ``method`` is a name from ``METHODS``; ``layer`` is any name from ``layer_choices(model)`` (default: the
    last block). Returns an Explanation whose maps have the image's H x W. The model is used under its lock and
    left exactly as it was.
    """
    runner = REGISTRY.get(method)
    if runner is None:
        raise CamError(f"Unknown method '{method}'; choose one of {', '.join(METHODS)}.")
    _check_image(image)
    if image.shape[0] != 1:
        raise CamError("explain() takes one image (1, C, H, W); use pointing_game for batches.")
    goal = as_target(target)
    layer_name, module = resolve_layer(model, layer) if runner.uses_layer else (None, None)
    # Costed before anything runs.
    cost = runner.fit_budget(estimate_memory(model, runner.cost_task or method, image_size=tuple(image.shape[1:]),
                                             ig_steps=ig_steps))
    image = image.detach().clone()
    wrapped = _TargetModel(model, goal)
    with preserved_state(model, train=False):
        try:
            raw, layer_maps = runner.attribute(wrapped, image, module, cost=cost, ig_steps=ig_steps)
        except CamError:
            raise
        except ValueError as exc:  # e.g. a class index outside the model's classes, raised by the target
            raise CamError(str(exc)) from None
    layer_map = layer_maps[0].cpu().numpy().astype(np.float32) if layer_maps is not None else None
    logits = wrapped.first_logits
    index = int(goal.class_indices(logits)[0]) if hasattr(goal, "class_indices") else -1
    score = float(goal(logits)[0])
    heat, empty = _normalise(raw)
    names = list(class_names) if class_names is not None else None
    return Explanation(
        heatmap=heat[0].cpu().numpy().astype(np.float32), raw=raw[0].float().cpu().numpy(), method=method,
        layer=layer_name, class_index=index, score=score, layer_map=layer_map,
        no_positive_evidence=bool(empty[0]),
        class_name=names[index] if names is not None and 0 <= index < len(names) else "",
        notes=[cost.note] if cost.note else [],
    )


def explain_layers(model: nn.Module, image: torch.Tensor, target: int | Target | None = None,
                   layers: Sequence[str] | None = None, method: str = "gradcam",
                   class_names: Sequence[str] | None = None) -> list[Explanation]:
    """The same explanation at several layers (default: the last block of each stage), shallow to deep."""
    return [explain(model, image, target, name, method, class_names=class_names)
            for name in (layers or stage_last_blocks(model))]
