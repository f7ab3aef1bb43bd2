"""Weights ids: the strings that name a model's weights (also in the app's URL as ``weights=``).

``"random"``
    the seeded random initialisation of ``build(name, seed=0)``;
``"tv:<ENUM MEMBER>"``
    torchvision's ImageNet weights, e.g. ``"tv:IMAGENET1K_V2"`` (:mod:`.torchvision_hub`);
``"ckpt:<path>"`` (relative to the runs folder, as the app writes it, or absolute inside it)
    a checkpoint file, always read with ``torch.load(weights_only=True)`` so a pickle cannot run code;
``"demo:<key>"``
    an embedded demo model trained on the Shapes set (``demo:resnet20``, ``demo:plain20``; :mod:`.demo`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import WeightsError
from ..errors import clip as _clip
from .checkpoints import checkpoint_title, resolve_checkpoint_path
from .demo import demo_ids, demo_model
from .torchvision_hub import torchvision_weights_enum


def parse_weights_id(weights: str) -> tuple[str, str]:
    """``"random"`` -> ("random", ""), ``"tv:IMAGENET1K_V2"`` -> ("tv", "IMAGENET1K_V2"), ``"ckpt:/p"`` -> ("ckpt", "/p"),
    ``"demo:resnet20"`` -> ("demo", "resnet20") (an unknown demo key is a WeightsError naming the choices)."""
    if weights == "random":
        return "random", ""
    kind, sep, value = weights.partition(":")
    if sep and kind in ("tv", "ckpt") and value:
        return kind, value
    if sep and kind == "demo" and value:
        return kind, demo_model(value).key
    raise WeightsError(f"'{_clip(weights)}' is not a weights choice; use 'random', 'tv:<torchvision weights name>', "
                       "'demo:resnet20' or 'ckpt:<path to a checkpoint file>'.")



def weights_choices(arch: str, options: Mapping[str, Any] | None = None) -> list[str]:
    """Weights ids offered for ``arch``: "random", every torchvision enum member (V1, V2 ...), then the
    embedded Shapes demos trained as ``arch`` (only those matching ``options``' residual/plain choice and
    width when ``options`` is given)."""
    enum = torchvision_weights_enum(arch)
    tv = [f"tv:{member.name}" for member in enum] if enum is not None else []
    return ["random", *tv, *demo_ids(arch, None if options is None else dict(options))]



def weights_label(weights: str) -> str:
    """Short human label for a weights id."""
    kind, value = parse_weights_id(weights)
    if kind == "random":
        return "random init (seed 0)"
    if kind == "tv":
        return f"torchvision {value}"
    if kind == "demo":
        from .demo import demo_model

        return demo_model(value).weights_label
    try:
        return checkpoint_title(resolve_checkpoint_path(value))
    except WeightsError:
        return f"checkpoint {Path(value).name}"

