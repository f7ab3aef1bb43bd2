"""Instruments: per-layer activation statistics and maps, gradient norms, and the exact split of every block's
input gradient between the shortcut and the residual branch.

Every instrument is a context manager (or a function built on one) that

* takes the model's lock (``state.preserved_state``), so a model shared by several app sessions is never seen
  half-instrumented;
* attaches forward hooks only (gradients come from ``torch.autograd.grad``, never module backward hooks) and
  removes them in ``finally``, also when the forward raises;
* puts train/eval flags, ``requires_grad`` and ``.grad`` back as they were, and, when it ran batch-norm in
  train mode, the running statistics too.

Batch norm during an instrument runs on the batch's statistics (``train=True``) or on the running statistics
(``train=False``); ``BN_MODES`` names the two, ``default_bn_mode`` picks batch statistics for a random
initialisation (whose running statistics, mean 0 and variance 1, normalise nothing) and running statistics for
trained weights. Batch statistics need at least two images: a batch of one raises ``BatchStatsError`` (a
ValueError) with one sentence, before anything runs.

Layers are addressed by qualified module name (``"layer2.0.tap_sum"``), by a glob pattern
(``"layer3.*.tap_out"``), by a list of names, or by a named set:

``"blocks"``  every residual (or plain) block; its output is the block output.
``"stages"``  the stem output (``maxpool``, an identity in CIFAR nets) and each stage ``layer1`` ... ``layerN``.
``"taps"``    the stem output and every tap point of every block (``tap_branch_in``, ``tap_branch``,
              ``tap_shortcut_in``, ``tap_shortcut``, ``tap_sum``, ``tap_out``); see ``blocks.py``.

The package: ``layers`` (addressing, the shared state helpers), ``activations`` (statistics, histograms, feature
maps), ``gradients`` (norms, the shortcut / branch split), ``sweeps`` (the depth sweep, the Shapes batch). Every
name is importable from ``resnet_core.probes`` as before.

Results are tidy pandas DataFrames: one row per layer (or block), with its depth index (forward order), stage
and block, ready for ``resnet_core.plots.instruments``.
"""

from .activations import (
    CHANNEL_RULE,
    DEFAULT_BINS,
    DEFAULT_HIST_RANGE,
    KEEP_MODES,
    MAX_HIST_VALUES,
    ActivationRecording,
    FeatureMaps,
    activation_profile,
    activation_stats,
    compare_activations,
    estimate_activations,
    record_activations,
    spread_summary,
)
from .gradients import (
    PATH_COLUMNS,
    block_input_grad_norms,
    compare_path_gradients,
    estimate_block_gradients,
    estimate_gradient_norms,
    estimate_path_gradients,
    first_last_ratio,
    gradient_norms,
    path_gradients,
    split_summary,
)
from .layers import (
    BN_MODE_SENTENCES,
    BN_MODES,
    NAMED_SETS,
    BatchStatsError,
    LayerSpec,
    bn_train_flag,
    default_bn_mode,
    instrumented,
    require_batch_for_stats,
    resolve_layers,
)
from .sweeps import (
    CIFAR_DEPTHS,
    IMAGENET_DEPTHS,
    SWEEP_SETTINGS,
    depth_sweep,
    estimate_depth_sweep,
    image_batch,
    shapes_batch,
    sweep_arch,
    sweep_summary,
)

__all__ = [
    "estimate_activations",
    "estimate_block_gradients",
    "estimate_depth_sweep",
    "estimate_gradient_norms",
    "estimate_path_gradients",
    "BN_MODES",
    "BN_MODE_SENTENCES",
    "BatchStatsError",
    "bn_train_flag",
    "default_bn_mode",
    "require_batch_for_stats",
    "CHANNEL_RULE",
    "CIFAR_DEPTHS",
    "DEFAULT_BINS",
    "DEFAULT_HIST_RANGE",
    "IMAGENET_DEPTHS",
    "KEEP_MODES",
    "MAX_HIST_VALUES",
    "NAMED_SETS",
    "PATH_COLUMNS",
    "SWEEP_SETTINGS",
    "ActivationRecording",
    "FeatureMaps",
    "LayerSpec",
    "activation_profile",
    "activation_stats",
    "block_input_grad_norms",
    "compare_activations",
    "compare_path_gradients",
    "depth_sweep",
    "first_last_ratio",
    "gradient_norms",
    "image_batch",
    "instrumented",
    "path_gradients",
    "record_activations",
    "resolve_layers",
    "shapes_batch",
    "split_summary",
    "spread_summary",
    "sweep_arch",
    "sweep_summary",
]

