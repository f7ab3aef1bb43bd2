"""What every CAM method shares: the error, the Explanation, layer choices, the target wrapper and Grad-CAM."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..blocks import TAP_NAMES
from ..hooks import preserved_state
from ..models import iter_blocks, stage_of
from ..models import stage_last_blocks as models_stage_last_blocks
from ..targets import Target

NO_EVIDENCE = ("No positive evidence: the map is zero everywhere, so no region of the image raises this class's "
               "score at this layer; try another class or layer.")


class CamError(ValueError):
    """A user-facing problem with an explanation request; ``str(error)`` is one sentence."""


@dataclass
class Explanation:
    """One saliency map for one image.

    ``heatmap``: float32 (H, W) in [0, 1], the map normalised by its maximum (all zeros when there is no
    positive evidence, never NaN). ``raw``: float32 (H, W), the same map before normalisation, at input
    resolution. ``layer_map``: Grad-CAM at the layer's own resolution (h, w), before upsampling (None for
    input-space methods).
    """

    heatmap: np.ndarray
    raw: np.ndarray
    method: str
    layer: str | None
    class_index: int
    score: float
    layer_map: np.ndarray | None = None
    no_positive_evidence: bool = False
    class_name: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def message(self) -> str | None:
        return NO_EVIDENCE if self.no_positive_evidence else None

    @property
    def peak(self) -> tuple[int, int]:
        """(row, column) of the map's maximum (the pointing-game guess)."""
        row, col = np.unravel_index(int(np.argmax(self.raw)), self.raw.shape)
        return int(row), int(col)


# -------------------------------------------------------------------------------------------------- layers
def layer_choices(model: nn.Module) -> list[str]:
    """Every layer Grad-CAM can address: stem, each stage, each block and each of its tap points."""
    names = dict(model.named_modules())
    choices = [n for n in ("conv1", "bn1", "relu", "maxpool") if n in names and not isinstance(names[n], nn.Identity)]
    blocks = iter_blocks(model)
    stages: list[str] = []
    for block_name, block in blocks:
        stage = stage_of(block_name)
        if stage not in stages:
            stages.append(stage)
            choices.append(stage)
        choices.append(block_name)
        choices += [f"{block_name}.{tap}" for tap in TAP_NAMES if hasattr(block, tap)]
    return choices


def stage_last_blocks(model: nn.Module) -> list[str]:
    """The last block of each stage, e.g. ["layer1.1", "layer2.1", "layer3.1", "layer4.1"] (the models'
    layout rule, re-exported here where the CAM code has always offered it)."""
    return models_stage_last_blocks(model)


def default_layer(model: nn.Module) -> str:
    """The classic Grad-CAM layer: the output of the last block (the last convolutional features)."""
    blocks = stage_last_blocks(model)
    if not blocks:
        raise CamError("This model has no residual blocks to explain.")
    return blocks[-1]


def resolve_layer(model: nn.Module, layer: str | None) -> tuple[str, nn.Module]:
    name = layer or default_layer(model)
    try:
        module = model.get_submodule(name) if name else None  # a walk down the dotted path, not of the whole tree
    except AttributeError:
        module = None
    if module is None:
        raise CamError(f"This model has no layer named '{name}'; choose one of the listed layers "
                       f"(e.g. {default_layer(model)}).")
    return name, module


# ---------------------------------------------------------------------------------------------- prediction
def predict(model: nn.Module, image: torch.Tensor, class_names: Sequence[str] | None = None,
            k: int = 5) -> pd.DataFrame:
    """Top-``k`` classes for one image (1, 3, H, W): rank, index, class, probability, logit."""
    _check_image(image)
    with preserved_state(model, train=False), torch.no_grad():
        logits = model(image)[0].float()
    probs = logits.softmax(0)
    top = probs.topk(min(k, probs.numel()))
    names = list(class_names) if class_names is not None else [f"class {i}" for i in range(probs.numel())]
    return pd.DataFrame({
        "rank": range(1, top.indices.numel() + 1),
        "index": top.indices.tolist(),
        "class": [names[i] for i in top.indices.tolist()],
        "probability": top.values.tolist(),
        "logit": logits[top.indices].tolist(),
    })


def _check_image(image: torch.Tensor) -> None:
    if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[1] < 1:
        raise CamError("The image must be a (N, C, H, W) tensor; preprocess it with resnet_core.images.preprocess.")
    if not torch.isfinite(image).all():
        raise CamError("The image tensor contains NaN or infinite values; reload the image.")


class TargetModel(nn.Module):
    """``model`` followed by the target: (N, C, H, W) -> (N,) scalars (what Captum differentiates)."""

    def __init__(self, model: nn.Module, target: Target) -> None:
        super().__init__()
        self.model, self.target = model, target
        self.first_logits: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        if self.first_logits is None:  # the plain input's logits: class and score without an extra forward
            self.first_logits = logits.detach()
        return self.target(logits)


def _normalise(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample max normalisation of non-negative (N, H, W) maps. An all-zero map stays zero (no 0/0)."""
    raw = torch.nan_to_num(raw.float(), nan=0.0, posinf=0.0, neginf=0.0)
    peak = raw.flatten(1).amax(dim=1)
    positive = peak > 0
    safe = torch.where(positive, peak, torch.ones_like(peak))
    return raw / safe[:, None, None], ~positive
