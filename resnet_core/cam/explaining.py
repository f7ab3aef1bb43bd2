"""``explain``: one call for every method in the registry, costed before it runs.

The registry is filled by ``methods`` (the first ten), ``more_methods`` (the grad-cam package's other eight) and
``relevance`` (layer-wise relevance propagation), imported here, in that order (the page's), before
``LAYER_METHODS`` is read off it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..hooks import preserved_state, taps
from ..targets import Target, as_target
from . import methods, more_methods, relevance
from .core import (
    CamError,
    Explanation,
    TargetModel,
    _check_image,
    _normalise,
    resolve_layer,
    stage_last_blocks,
)
from .methods import METHODS, REGISTRY, SCORECAM_BATCH, Progress

REGISTERING_MODULES = (methods, more_methods, relevance)  # every module whose classes fill the registry, in order

LAYER_METHODS = tuple(name for name, method in REGISTRY.items() if method.uses_layer)


def explain(model: nn.Module, image: torch.Tensor, target: int | Target | None = None, layer: str | None = None,
            method: str = "gradcam", *, class_names: Sequence[str] | None = None, ig_steps: int = 16,
            batch_size: int = SCORECAM_BATCH, progress: Progress | None = None) -> Explanation:
    """Explain ``target`` (class index, Target, or None for the top-1 class) for one image (1, 3, H, W).

    ``method`` is a name from ``METHODS``; ``layer`` is any name from ``layer_choices(model)`` (default: the
    last block). ``batch_size``: masked images per forward pass (Score-CAM); ``progress(done, total)`` is called
    after each batch of forward passes by the methods that run many (Score-CAM). Gradient-free methods run under
    ``torch.no_grad()``. Returns an Explanation whose maps have the image's H x W. The model is used under its
    lock and left exactly as it was.
    """
    runner = REGISTRY.get(method)
    if runner is None:
        raise CamError(f"Unknown method '{method}'; choose one of {', '.join(METHODS)}.")
    _check_image(image)
    if image.shape[0] != 1:
        raise CamError("explain() takes one image (1, C, H, W); use cam_batch or pointing_game for batches.")
    goal = as_target(target)
    layer_name, module = resolve_layer(model, layer) if runner.uses_layer else (None, None)
    # Costed before anything runs.
    cost = runner.fit_budget(runner.estimate(model, tuple(image.shape[1:]), ig_steps=ig_steps,
                                             batch_size=max(1, int(batch_size))))
    image = image.detach().clone()
    wrapped = TargetModel(model, goal)
    extra = {"progress": progress} if runner.reports_progress else {}
    with preserved_state(model, train=False), torch.set_grad_enabled(runner.needs_gradient):
        try:
            raw, layer_maps = runner.attribute(wrapped, image, module, cost=cost, ig_steps=ig_steps, **extra)
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
    notes = [cost.note] if cost.note else []
    if not runner.uses_layer and layer is not None:
        notes.append(f"{runner.label} does not explain at a layer ({runner.instead}); the layer setting "
                     f"({layer}) is not used.")
    return Explanation(
        heatmap=heat[0].cpu().numpy().astype(np.float32), raw=raw[0].float().cpu().numpy(), method=method,
        layer=layer_name, class_index=index, score=score, layer_map=layer_map,
        no_positive_evidence=bool(empty[0]),
        class_name=names[index] if names is not None and 0 <= index < len(names) else "",
        notes=notes,
    )


def explain_layers(model: nn.Module, image: torch.Tensor, target: int | Target | None = None,
                   layers: Sequence[str] | None = None, method: str = "gradcam",
                   class_names: Sequence[str] | None = None) -> list[Explanation]:
    """The same explanation at several layers (default: the last block of each stage), shallow to deep."""
    return [explain(model, image, target, name, method, class_names=class_names)
            for name in (layers or stage_last_blocks(model))]


def layer_channels(model: nn.Module, layer: str | None = None, image_size: tuple[int, ...] = (3, 64, 64)) -> int:
    """The channel count of ``layer``'s output (Score-CAM runs one forward pass per channel), found on meta
    stand-ins for the weights: nothing of the model's size is allocated and its state is untouched."""
    _, module = resolve_layer(model, layer)
    stand_ins = {k: torch.empty_like(v, device="meta") for k, v in [*model.named_parameters(), *model.named_buffers()]}
    with taps(model, train=False) as tapped, torch.no_grad():
        kept = tapped.record(module)
        torch.func.functional_call(model, stand_ins, (torch.zeros((1, *image_size), device="meta"),))
    output = next(iter(kept.values()), None)
    if output is None or output.dim() != 4:
        raise CamError("This layer has no spatial (N, C, h, w) output; choose a block or a tap point.")
    return int(output.shape[1])
