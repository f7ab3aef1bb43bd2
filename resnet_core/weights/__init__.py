"""The weights wing: where a model's weights come from, and the one call that loads them.

Its face (this module) is the address of:

- weights ids and their labels (``random``, ``tv:<member>``, ``ckpt:<path>``, ``demo:<key>``): :mod:`.ids`;
- torchvision's ImageNet weights, torch.hub's cache and the hash-checked download: :mod:`.torchvision_hub`;
- which weights fit which net, and the sidebar's width factors: :mod:`.compatibility`;
- the best weights a page can open with, offline: :mod:`.defaults`;
- :func:`load_model` and what a loaded model expects (preprocessing, class names): :mod:`.loading`.

Two rooms have addresses of their own, with their own ``__all__``: :mod:`resnet_core.weights.checkpoints`
(reading and writing checkpoint files, the key conventions of foreign files) and
:mod:`resnet_core.weights.demo` (the embedded Shapes demo models and their recorded numbers). Callers import
from these three addresses, never from the rooms behind them. Inside the wing the rooms import downward:
checkpoints -> demo, torchvision_hub -> ids -> compatibility, defaults -> loading.
"""

from . import checkpoints, demo
from .compatibility import (
    WIDTH_FACTORS,
    CheckpointConfig,
    base_width,
    build_options,
    checkpoint_config,
    effective_weights,
    weights_fit,
    width_factor,
    width_for,
)
from .defaults import PURPOSES, BestModel, best_model, best_weights
from .ids import parse_weights_id, weights_choices, weights_label
from .loading import CIFAR10_CLASSES, class_names_for, load_model, preprocessing_for
from .torchvision_hub import (
    HUB_FOLDER,
    TORCHVISION_OPTIONS,
    OfflineWeightsError,
    cached_torchvision_weights,
    download_file,
    download_torchvision_weights,
    hub_checkpoint_path,
    load_torchvision_state_dict,
    torchvision_weights_enum,
)

__all__ = [
    "CIFAR10_CLASSES", "HUB_FOLDER", "PURPOSES", "TORCHVISION_OPTIONS", "WIDTH_FACTORS", "BestModel",
    "CheckpointConfig", "OfflineWeightsError", "base_width", "best_model", "best_weights", "build_options",
    "cached_torchvision_weights", "checkpoint_config", "checkpoints", "class_names_for", "demo",
    "download_file", "download_torchvision_weights", "effective_weights", "hub_checkpoint_path", "load_model",
    "load_torchvision_state_dict", "parse_weights_id", "preprocessing_for", "torchvision_weights_enum",
    "weights_choices", "weights_fit", "weights_label", "width_factor", "width_for",
]
