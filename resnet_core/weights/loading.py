"""``load_model``: the model for a weights id, in eval mode, its card filled; and what a model expects.

Checkpoints may be a bare state_dict, ``{"state_dict": ...}``, ``{"model": ...}`` (``module.`` prefixes from
DataParallel/DDP stripped), or the project's own format (``{"format": "resnet-explorer/1", "arch", "options",
"state_dict", "classes", "preprocessing", ...}``). Without a config the architecture is inferred from the
tensors' names and shapes (:mod:`.checkpoints`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..card import card_of
from ..costs import estimate_memory, require_within_budget
from ..images import Preprocessing
from ..models import build, display_name
from .checkpoints import checkpoint_file, load_checkpoint_file, load_state_dict_checked
from .demo import load_demo_model
from .ids import parse_weights_id, weights_label
from .torchvision_hub import TORCHVISION_OPTIONS, load_torchvision_state_dict, torchvision_member

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


# --------------------------------------------------------------------------------- what a model expects
def preprocessing_for(model: nn.Module) -> Preprocessing:
    """``model.preprocessing`` when weights/checkpoint set it; else ImageNet 224 or CIFAR 32 by the stem."""
    prep = card_of(model).preprocessing
    if isinstance(prep, Preprocessing):
        return prep
    if isinstance(prep, Mapping):
        return Preprocessing.from_dict(prep)
    return Preprocessing.CIFAR if getattr(model, "stem_kind", "imagenet") == "cifar" else Preprocessing.IMAGENET


def _num_classes(model: nn.Module) -> int:
    fc = getattr(model, "fc", None)
    return int(fc.out_features) if isinstance(fc, nn.Linear) else 0


def class_names_for(model: nn.Module) -> list[str]:
    """Class names: from the weights/checkpoint if set, else ImageNet / CIFAR-10 names by class count."""
    names = card_of(model).class_names
    count = _num_classes(model)
    if names is not None and (count == 0 or len(names) == count):
        return list(names)
    if count == 1000:
        from torchvision.models._meta import _IMAGENET_CATEGORIES

        return list(_IMAGENET_CATEGORIES)
    if count == 10 and getattr(model, "stem_kind", "") == "cifar":
        return list(CIFAR10_CLASSES)
    return [f"class {i}" for i in range(count)]



def load_model(arch: str, options: Mapping[str, Any] | None = None, weights: str = "random", *,
               download: bool = True, progress: bool = True, meta: bool = False) -> nn.Module:
    """The model for a sidebar choice, in eval mode, its ``card`` (``ModelCard``) filled: label, weights id
    and label, class names, preprocessing and notes.

    ``random``: ``build(arch, seed=0, **options)``. ``tv:<member>``: torchvision's architecture (the options
    that torchvision weights cannot have are overridden, and said so in ``weights_notes``). ``ckpt:<path>``:
    the checkpoint's own architecture, which overrides ``arch`` and ``options``. ``demo:<key>``: the embedded
    Shapes model's checkpoint, read from the package by the same code (its architecture overrides too).

    ``meta=True``: the random-init net on the meta device, without weights or cost (shapes and counts only).
    """
    options = dict(options or {})
    kind, value = parse_weights_id(weights)
    if meta:
        if kind != "random":
            raise ValueError("Only random weights can be built on the meta device (it holds no values).")
        with torch.device("meta"):
            model = build(arch, seed=0, **options)
        model.card.weights_id, model.card.weights_label = weights, weights_label(weights)
        return model.eval()
    if kind in ("random", "tv"):  # costed on the meta device first: BudgetError before any weight exists
        require_within_budget(estimate_memory(arch, "build", options=options if kind == "random" else {}))
    if kind == "random":
        model = build(arch, seed=0, **options)
    elif kind == "tv":
        member = torchvision_member(arch, value)
        ignored = [f"{k}={options[k]!r}" for k, v in TORCHVISION_OPTIONS.items() if k in options and options[k] != v]
        ignored += [f"{k}={options[k]!r}" for k in ("width", "num_classes", "in_channels", "zero_init_residual")
                    if k in options and options[k] not in (None, False)]
        model = build(arch, seed=0)
        load_state_dict_checked(model, load_torchvision_state_dict(arch, value, download=download,
                                                                   progress=progress), display_name(arch))
        transform = member.transforms()
        model.card.class_names = list(member.meta["categories"])
        model.card.trained_on = "imagenet"
        model.card.preprocessing = Preprocessing(int(transform.resize_size[0]), int(transform.crop_size[0]),
                                                 tuple(transform.mean), tuple(transform.std))
        model.card.notes = ([f"torchvision weights need the standard {display_name(arch)}: ignored "
                             f"{', '.join(ignored)}"] if ignored else [])
    elif kind == "demo":
        model = load_demo_model(value)
    else:
        # Only the runs and uploads folders: a weights id can come from a link (local callers that trust
        # their paths, like the CLI, use load_checkpoint_file).
        model = load_checkpoint_file(checkpoint_file(value))
    model.card.weights_id, model.card.weights_label = weights, weights_label(weights)
    return model.eval()

