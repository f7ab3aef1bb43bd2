"""resnet_core: every ResNet and its plain twin, instruments, Grad-CAM and a training engine."""

from .blocks import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck, ResidualBlock, Tap
from .describe import block_comparison, block_table, count_macs, describe, stage_table, twin_comparison
from .models import ARCHITECTURES, ResNet, build, count_params, display_name, iter_blocks, list_models
from .probes import (
    activation_profile,
    activation_stats,
    depth_sweep,
    gradient_norms,
    path_gradients,
    record_activations,
)
from .state import count_hooks, model_lock, preserved_state

__all__ = [
    "ARCHITECTURES",
    "BasicBlock",
    "Bottleneck",
    "PreActBasicBlock",
    "PreActBottleneck",
    "ResNet",
    "ResidualBlock",
    "Tap",
    "activation_profile",
    "activation_stats",
    "block_comparison",
    "block_table",
    "build",
    "count_hooks",
    "count_macs",
    "count_params",
    "depth_sweep",
    "describe",
    "display_name",
    "gradient_norms",
    "iter_blocks",
    "list_models",
    "model_lock",
    "path_gradients",
    "preserved_state",
    "record_activations",
    "stage_table",
    "twin_comparison",
]
