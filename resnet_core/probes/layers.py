"""Layer addressing and the state every instrument shares: names, named sets, the lock and restored state."""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pandas as pd
import torch
from torch import nn

from ..blocks import PadShortcut, ResidualBlock, Tap
from ..card import card_of
from ..costs import MemoryEstimate, require_within_budget
from ..hooks import preserved_state
from ..models import block_position, display_name, iter_blocks, stage_of
from ..targets import Target, as_target, scalar_objective

LayerSpec = str | Sequence[str]
NAMED_SETS = ("blocks", "stages", "taps")

# How batch norm normalises during an instrument's forward pass. "batch": each channel by the batch's own mean
# and variance, as in training (running statistics untouched: snapshotted and written back); "running": by the
# stored running statistics, as the model predicts (at initialisation mean 0 and variance 1, so batch norm does
# nothing and a deep random net's signal can grow without bound).
BN_MODES = {"batch": "Batch statistics", "running": "Running statistics"}
BN_MODE_SENTENCES = {
    "batch": "batch norm normalises each channel by this batch's own mean and variance, as in training (the "
             "running statistics are left untouched)",
    "running": "batch norm uses its stored running statistics, as the model predicts (inference); at "
               "initialisation they are mean 0 and variance 1, so it does nothing and a deep net's signal is not "
               "rescaled",
}


class BatchStatsError(ValueError):
    """Batch statistics asked for on a batch of one image: batch norm's statistics would be meaningless."""


def default_bn_mode(trained: bool) -> str:
    """"running" for trained weights (they were trained to be used so), "batch" for a random initialisation,
    whose running statistics (mean 0, variance 1) normalise nothing."""
    return "running" if trained else "batch"


def bn_train_flag(mode: str) -> bool:
    """The ``train=`` flag an instrument takes for a batch-norm mode of ``BN_MODES``."""
    if mode not in BN_MODES:
        raise ValueError(f"The batch-norm mode must be one of {', '.join(BN_MODES)}, not {mode!r}.")
    return mode == "batch"


def require_batch_for_stats(model: nn.Module, inputs: torch.Tensor, train: bool | None) -> None:
    """Raise BatchStatsError when batch norm would run on batch statistics (``train``, or the model's own flags
    when None) over fewer than two images: torch answers a batch of one with "Expected more than 1 value per
    channel" where a map is 1x1, and elsewhere the statistics of one image are meaningless."""
    runs_training = train if train is not None else any(m.training for m in model.modules())
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if runs_training and has_bn and isinstance(inputs, torch.Tensor) and inputs.dim() >= 1 and inputs.shape[0] < 2:
        raise BatchStatsError(
            "Batch statistics need a batch of at least two images: with one image, batch norm would normalise "
            "each channel by that image's own mean and variance, which means nothing. Use a batch of two or "
            "more, or running statistics.")

# ------------------------------------------------------------------------------------------ layer addressing


def _is_preact(model: nn.Module) -> bool:
    return bool(getattr(model, "preact", False))


def _stem_name(model: nn.Module) -> str:
    return "maxpool" if hasattr(model, "maxpool") else "conv1"


def resolve_layers(model: nn.Module, layers: LayerSpec) -> list[str]:
    """Qualified module names for ``layers`` (a named set, a glob pattern, one name, or a list of names).

    Raises ValueError with one readable sentence when a name or pattern matches nothing.
    """
    modules = dict(model.named_modules())
    if isinstance(layers, str):
        if layers == "blocks":
            names = [name for name, _ in iter_blocks(model)]
        elif layers == "stages":
            names = [_stem_name(model)] + [n for n in modules if "." not in n and stage_of(n) not in ("stem", "head")]
        elif layers == "taps":
            names = [_stem_name(model)] + [n for n, m in modules.items() if isinstance(m, Tap)]
        elif any(ch in layers for ch in "*?["):
            names = [n for n in modules if n and fnmatch.fnmatchcase(n, layers)]
            if not names:
                raise ValueError(f"No layer of this model matches the pattern {layers!r}; names look like "
                                 f"'layer1.0.tap_out' or 'layer2.*.conv1'.")
        else:
            names = [layers]
    else:
        names = list(layers)
    unknown = [n for n in names if n not in modules or n == ""]
    if unknown:
        raise ValueError(f"This model has no layer named {unknown[0]!r}; use a qualified name such as "
                         f"'layer1.0.tap_out', a pattern such as 'layer*.tap_sum', or one of {NAMED_SETS}.")
    if not names:
        raise ValueError("No layers were given to record.")
    return list(dict.fromkeys(names))


def _post_relu(model: nn.Module, name: str, module: nn.Module) -> bool:
    """True where the module's output is (structurally) a ReLU output, i.e. non-negative with exact zeros."""
    preact = _is_preact(model)
    if isinstance(module, nn.ReLU):
        return True
    if isinstance(module, ResidualBlock):
        return not preact
    if "." not in name and stage_of(name) not in ("stem", "head"):  # a stage ends with a block
        return not preact
    if name == "maxpool":
        return not preact
    if name == "avgpool":
        return True  # the average of ReLU outputs (relu or relu_final) is non-negative
    if isinstance(module, Tap):
        block_name, _, tap = name.rpartition(".")
        block = model.get_submodule(block_name)
        if tap == "tap_out":
            return not preact
        if tap == "tap_branch_in":
            return True  # the block input (after the previous ReLU) or, pre-activation, relu1's output
        if tap in ("tap_shortcut_in", "tap_shortcut"):
            source_post = (not preact) or block.has_projection
            if tap == "tap_shortcut":
                return source_post and (block.downsample is None or isinstance(block.downsample, PadShortcut))
            return source_post
    return False


def _layer_info(model: nn.Module, name: str, module: nn.Module) -> dict[str, Any]:
    """Stage, block and tap of a qualified module name."""
    parts = name.split(".")
    stage, index = block_position(name)
    block = f"{stage}.{index}" if index is not None else ""
    tap = parts[-1] if isinstance(module, Tap) else ""
    if isinstance(module, ResidualBlock):
        kind = "block"
    elif stage not in ("stem", "head") and len(parts) == 1:
        kind = "stage"
    elif isinstance(module, Tap):
        kind = "tap"
    else:
        kind = type(module).__name__
    label = f"{block} {tap.removeprefix('tap_')}" if tap else ("stem" if name == _stem_name(model) else name)
    return {"layer": name, "label": label, "stage": stage, "block": block, "tap": tap, "kind": kind}


def _block_index(model: nn.Module) -> dict[str, int]:
    return {name: i for i, (name, _) in enumerate(iter_blocks(model))}

# ------------------------------------------------------------------------------------------ state helpers


@contextlib.contextmanager
def instrumented(model: nn.Module, *, train: bool | None = None, grads: bool | None = None) -> Iterator[nn.Module]:
    """Hold the model's lock with everything restored afterwards (see ``state.preserved_state``).

    ``train`` switches train/eval for the duration (None keeps the model's flags); whenever some module runs
    in train mode batch-norm running statistics would be updated, so buffers are snapshotted and written back. ``grads`` sets ``requires_grad`` of every parameter.
    """
    with preserved_state(model, train=train, grads=grads, restore_buffers=True):
        yield model


def _device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _within_budget(cost: Callable[..., MemoryEstimate], model: nn.Module, inputs: torch.Tensor) -> None:
    """Raise BudgetError before anything is allocated when the instrument's ``cost`` (its estimate function,
    e.g. ``estimate_path_gradients``) on ``inputs`` exceeds the memory budget."""
    if isinstance(inputs, torch.Tensor) and inputs.dim() == 4:
        require_within_budget(cost(model, batch=inputs.shape[0], image_size=tuple(inputs.shape[1:])))


def _objective(model: nn.Module, inputs: torch.Tensor, target: int | Target | None) -> torch.Tensor:
    return scalar_objective(as_target(target), model(inputs))

def _net_label(model: nn.Module) -> str:
    name = card_of(model).arch
    residual = bool(getattr(model, "residual", True))
    if name is None:
        return "residual net" if residual else "plain net"
    return display_name(name, residual)


def _tag(frame: pd.DataFrame, model: nn.Module, label: str | None) -> pd.DataFrame:
    frame = frame.copy()
    frame.insert(0, "residual", bool(getattr(model, "residual", True)))
    frame.insert(0, "net", label or _net_label(model))
    return frame


