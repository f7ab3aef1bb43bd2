"""resnet_core: every ResNet and its plain twin, instruments, Grad-CAM and a training engine."""

from .blocks import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck, ResidualBlock, Tap
from .describe import block_comparison, block_table, count_macs, describe, stage_table, twin_comparison
from .models import ARCHITECTURES, ResNet, build, count_params, display_name, iter_blocks, list_models
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
    "block_comparison",
    "block_table",
    "build",
    "count_hooks",
    "count_macs",
    "count_params",
    "describe",
    "display_name",
    "iter_blocks",
    "list_models",
    "model_lock",
    "preserved_state",
    "stage_table",
    "twin_comparison",
]
