"""resnet_core: every ResNet and its plain twin, instruments, Grad-CAM and a training engine."""

from .blocks import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck, ResidualBlock, Tap
from .cam import (
    explain,
    explain_layers,
    layer_choices,
    localisation_check,
    pointing_game,
    randomization_cascade,
)
from .card import ModelCard
from .describe import (
    block_comparison,
    block_table,
    count_macs,
    describe,
    list_models,
    stage_table,
    twin_comparison,
)
from .errors import WeightsError
from .hooks import count_hooks, model_lock, preserved_state
from .images import ImageError, Preprocessing, decode_image, preprocess, sample_images
from .models import ARCHITECTURES, ResNet, build, count_params, display_name, iter_blocks
from .probes import (
    activation_profile,
    activation_stats,
    depth_sweep,
    gradient_norms,
    path_gradients,
    record_activations,
)

__all__ = [
    "ARCHITECTURES",
    "BasicBlock",
    "Bottleneck",
    "ImageError",
    "ModelCard",
    "PreActBasicBlock",
    "PreActBottleneck",
    "Preprocessing",
    "ResNet",
    "ResidualBlock",
    "Tap",
    "WeightsError",
    "activation_profile",
    "activation_stats",
    "block_comparison",
    "block_table",
    "build",
    "class_names_for",
    "count_hooks",
    "count_macs",
    "count_params",
    "decode_image",
    "depth_sweep",
    "describe",
    "display_name",
    "explain",
    "explain_layers",
    "gradient_norms",
    "iter_blocks",
    "layer_choices",
    "list_models",
    "load_model",
    "localisation_check",
    "model_lock",
    "path_gradients",
    "pointing_game",
    "preprocess",
    "preprocessing_for",
    "preserved_state",
    "randomization_cascade",
    "record_activations",
    "sample_images",
    "stage_table",
    "twin_comparison",
]

_FROM_WEIGHTS = ("class_names_for", "load_model", "preprocessing_for")


def __getattr__(name: str):
    """Weights' names load on first use (PEP 562): importing them here would put ``resnet_core.weights`` in
    sys.modules before ``python -m resnet_core.weights`` runs it (runpy's RuntimeWarning)."""
    if name in _FROM_WEIGHTS:
        from . import weights

        return getattr(weights, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
