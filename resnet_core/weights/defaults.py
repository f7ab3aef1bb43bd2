"""The best weights a page can open with right now: offline, instant, never a download or a network probe."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import clip as _clip
from ..models import ARCHITECTURES
from .demo import DEMO_MODELS, PHOTO_WEIGHTS_HINT, demo_ids
from .torchvision_hub import cached_torchvision_weights

# What each page wants from its model: "explain" (Grad-CAM: the most capable trained weights there are) or
# "init" (Activations, Gradient flow, Architecture: they study the net at initialisation, so random weights).
PURPOSES = ("explain", "init")


def best_weights(arch: str, options: dict[str, Any] | None = None, purpose: str = "explain") -> str:
    """The best weights id this net can have right now, offline, for ``purpose`` (see ``PURPOSES``).

    ``"init"``: ``"random"`` (the page studies initialisation). ``"explain"``: torchvision's ImageNet weights
    when they are cached on disk and fit the net, else the embedded Shapes demo of the same net, else
    ``"random"``. Never downloads and never probes the network.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {', '.join(PURPOSES)}, not {_clip(repr(purpose), 40)}.")
    if purpose == "init":
        return "random"
    return cached_torchvision_weights(arch, options) or next(iter(demo_ids(arch, options or {})), "random")


@dataclass(frozen=True)
class BestModel:
    """A page's starting model when the user has chosen nothing: architecture, build options, weights id, and
    ``note``: a sentence to show beside it (empty when there is nothing to add)."""

    arch: str
    options: dict[str, Any] = field(default_factory=dict)
    weights: str = "random"
    note: str = ""


def best_model(purpose: str = "explain", default_arch: str = "resnet20") -> BestModel:
    """The model a page should open with when nothing is chosen yet (no link, no click), offline and instant.

    ``"explain"``: the first architecture (in the registry's order, smallest ImageNet net first) whose
    torchvision weights are cached on disk; otherwise the embedded ResNet-20 trained on Shapes, with
    ``PHOTO_WEIGHTS_HINT``. ``"init"``: ``default_arch`` with random weights.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {', '.join(PURPOSES)}, not {_clip(repr(purpose), 40)}.")
    if purpose == "init":
        return BestModel(default_arch, {"residual": True}, "random")
    for arch in ARCHITECTURES:
        weights = cached_torchvision_weights(arch)
        if weights is not None:
            return BestModel(arch, {"residual": True}, weights)
    demo = DEMO_MODELS["resnet20"]
    return BestModel(demo.arch, demo.options, demo.weights_id, PHOTO_WEIGHTS_HINT)


