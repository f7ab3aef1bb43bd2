"""The lesion study (Veit et al. 2016, "Residual Networks Behave Like Ensembles of Relatively Shallow
Networks"): remove blocks from a trained net at test time and measure what is left.

* A residual block loses its branch and keeps its shortcut: y = ReLU(shortcut(x)) for post-activation blocks,
  y = shortcut(x) for pre-activation ones. In a downsampling block the shortcut (the option-A zero-padded
  subsampling or the 1x1 projection) carries the signal alone, so the shapes still agree.
* A plain block has no shortcut: it becomes the identity where its input and output shapes agree, and is not
  removable where they do not (the first block of a stage that halves the size and doubles the channels).

::

    study = lesion_study(model, images, labels)      # one row per block
    curve = lesion_curve(model, images, labels, max_removed=4, samples=8, seed=0)

The model is never changed: it is copied once under its lock, and the blocks of the private copy are replaced
through forward taps (``resnet_core.hooks``) that come off in ``finally``. Each removal costs one forward pass
of the batch (plus the shortcut of the removed block).
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .blocks import PadShortcut, PreActBasicBlock, PreActBottleneck, ResidualBlock
from .costs import (
    MemoryEstimate,
    Recipe,
    batch_and_size_axes,
    estimate_forward,
    in_chunks,
    layer_profile,
)
from .hooks import model_lock, taps
from .models import InputSize, ResNet, conv_layout, iter_blocks

Progress = Callable[[int, int], None]
MAX_SAMPLES = 1000

__all__ = ["LesionError", "BlockInfo", "block_table", "estimate", "lesion_curve", "lesion_study"]


class LesionError(ValueError):
    """A lesion request that cannot be made as asked; ``str(error)`` is one sentence."""


@dataclass(frozen=True)
class BlockInfo:
    """One block of a net as the lesion study sees it."""

    name: str
    stage: str
    residual: bool
    downsampling: bool  # the block changes the spatial size or the channel count
    shortcut: str  # "identity", "zero-pad", "projection" or "none" (plain)
    removable: bool


def _convs(block: nn.Module) -> list[nn.Conv2d]:
    return [m for name, m in block.named_modules() if isinstance(m, nn.Conv2d) and not name.startswith("downsample")]


def _info(name: str, block: ResidualBlock) -> BlockInfo:
    convs = _convs(block)
    changes = (convs[0].in_channels != convs[-1].out_channels) or any(
        max(c.stride) > 1 for c in convs)
    if not block.residual:
        kind = "none"
    elif block.downsample is None:
        kind = "identity"
    elif isinstance(block.downsample, PadShortcut):
        kind = "zero-pad"
    else:
        kind = "projection"
    return BlockInfo(name, name.split(".")[0], bool(block.residual), changes, kind,
                     removable=bool(block.residual) or not changes)


def block_table(model: nn.Module) -> pd.DataFrame:
    """Every block of ``model`` in forward order: block, stage, residual, downsampling, shortcut, removable."""
    return pd.DataFrame([vars(_info(name, block)) for name, block in iter_blocks(model)],
                        columns=["name", "stage", "residual", "downsampling", "shortcut", "removable"]
                        ).rename(columns={"name": "block"})


def _without_branch(block: ResidualBlock) -> Callable[[nn.Module, tuple[Any, ...], Any], torch.Tensor]:
    """A forward hook that replaces ``block``'s output by what is left without its residual branch."""
    preact = isinstance(block, PreActBasicBlock | PreActBottleneck)

    def hook(_module: nn.Module, args: tuple[Any, ...], _output: Any) -> torch.Tensor:
        x = args[0]
        if not block.residual:
            return x  # a plain block of equal shapes: the identity
        if preact:
            _, source = block._preact(x)  # a projection reads the pre-activated input, as in the block
            return block.downsample(source) if block.downsample is not None else source
        shortcut = block.downsample(x) if block.downsample is not None else x
        return block.relu_out(shortcut)

    return hook


def estimate(model: nn.Module, inputs_shape: tuple[int, ...] | torch.Size) -> MemoryEstimate:
    """Memory a lesion study of ``model`` on a batch of ``inputs_shape`` needs, scaled to fit the budget.

    A no-grad forward of the batch (in chunks when the whole batch does not fit: ``request["batch"]`` is the
    chunk), the private copy of the model and the full model's predictions. Raises ``BudgetError`` when even
    one image does not fit.
    """
    images = int(inputs_shape[0])
    # The chunk is what the forward alone allows; the rest of the study is added on top and checked as a whole.
    return in_chunks(model, inputs_shape, lambda batch, size: _study_cost(model, batch=batch, image_size=size,
                                                                          images=images))


def _study_cost(model: nn.Module, *, batch: int, image_size: InputSize, images: int) -> MemoryEstimate:
    """A lesion study of ``images`` images run ``batch`` at a time, neither scaled nor checked: the recipe of
    ``estimate``'s result, so a smaller chunk or input can be costed for a suggestion."""
    forward = estimate_forward(model, batch=batch, image_size=image_size, builds=False)
    parts = dict(forward.parts)
    parts["private copy of the model"] = sum(t.numel() * t.element_size()
                                             for t in itertools.chain(model.parameters(), model.buffers()))
    parts["predictions"] = 8 * images
    # The input of every stage is kept from the full pass (a lesion in stage s starts there).
    profile = layer_profile(model, image_size)
    stage_starts = [i for i, (name, _) in enumerate(iter_blocks(model)) if name.endswith(".0")]
    parts["stage inputs kept"] = 4 * images * sum(profile.block_inputs[i] for i in stage_starts
                                                  if i < len(profile.block_inputs))
    what = forward.what.replace("A forward pass of", "A lesion study of", 1)
    request = {"model": model, "batch": forward.request["batch"], "image_size": image_size, "images": images}
    return MemoryEstimate("forward", what, parts, request, recipe=Recipe(_study_cost, batch_and_size_axes, 2))


class _Lesioner:
    """A private eval-mode copy, a fixed batch, and the full model's loss, accuracy and predictions."""

    def __init__(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        if not isinstance(inputs, torch.Tensor) or inputs.dim() != 4 or inputs.shape[0] < 1:
            raise LesionError("The inputs must be one batch of images, shaped (N, C, H, W) with N >= 1; "
                              "pass a stacked batch.")
        if (not isinstance(targets, torch.Tensor) or targets.dim() != 1 or targets.shape[0] != inputs.shape[0]
                or targets.is_floating_point()):
            raise LesionError(f"The targets must be one integer class index per image ({inputs.shape[0]} here); "
                              "pass a 1-D tensor of labels as long as the batch.")
        blocks = iter_blocks(model)
        if not blocks:
            raise LesionError("This model has no residual or plain blocks to remove; pass a ResNet or its "
                              "plain twin.")
        self.chunk = int(estimate(model, inputs.shape).request["batch"])
        with model_lock(model):  # a consistent snapshot of a model other sessions may be using
            self.copy = copy.deepcopy(model)
        self.copy.eval()
        for p in self.copy.parameters():
            p.requires_grad_(False)
        device = next(self.copy.parameters()).device
        self.inputs, self.targets = conv_layout(inputs.to(device)), targets.to(device, torch.int64)
        classes = getattr(getattr(self.copy, "fc", None), "out_features", None)
        if classes is not None and (int(self.targets.min()) < 0 or int(self.targets.max()) >= classes):
            raise LesionError(f"The labels must be class indices from 0 to {classes - 1} for this net; pass "
                              "labels of the data the net was trained on.")
        self.blocks = dict(iter_blocks(self.copy))
        self.info = [_info(name, block) for name, block in self.blocks.items()]
        # Stage-by-stage forwards only where the net is ours and its forward is the standard one.
        self.staged = isinstance(self.copy, ResNet) and type(self.copy).forward is ResNet.forward
        stage_index = {id(stage): i for i, stage in enumerate(self.copy.stages())} if self.staged else {}
        self.stage_of = {name: self._stage(name, stage_index) for name in self.blocks}
        self.stage_inputs: list[list[torch.Tensor]] = []
        self.full_loss, self.full_accuracy, self.full_pred = self._run(())

    def _stage(self, name: str, stage_index: dict[int, int]) -> int:
        parent = self.copy.get_submodule(name.rsplit(".", 1)[0]) if "." in name else None
        return stage_index.get(id(parent), 0)

    def _forward(self, index: int, x: torch.Tensor, first_stage: int) -> torch.Tensor:
        """Logits of chunk ``index``. On a ResNet the input of every stage is kept from the full pass, so a pass
        with blocks removed from stage s onwards starts at stage s (the stages before it are unchanged)."""
        if not self.staged:
            return self.copy(x)
        if first_stage == 0 or index >= len(self.stage_inputs):
            kept = []
            h = self.copy.forward_stem(x)
            for stage in self.copy.stages():
                kept.append(h)
                h = stage(h)
            if index >= len(self.stage_inputs):
                self.stage_inputs.append(kept)
        else:
            h = self.stage_inputs[index][first_stage]
            for stage in self.copy.stages()[first_stage:]:
                h = stage(h)
        return self.copy.forward_head(self.copy.forward_final(h))

    def _run(self, removed: Sequence[str]) -> tuple[float, float, torch.Tensor]:
        loss_sum, correct, preds = 0.0, 0, []
        stages = [self.stage_of[name] for name in removed]
        first_stage = min(stages) if stages else 0
        with taps(self.copy, train=False) as tapped, torch.no_grad():
            for name in removed:
                tapped.forward(name, _without_branch(self.blocks[name]))
            for index, start in enumerate(range(0, self.inputs.shape[0], self.chunk)):
                y = self.targets[start:start + self.chunk]
                logits = self._forward(index, self.inputs[start:start + self.chunk], first_stage).float()
                loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
                pred = logits.argmax(1)
                correct += int((pred == y).sum())
                preds.append(pred)
        n = self.inputs.shape[0]
        return loss_sum / n, correct / n, torch.cat(preds)

    def measure(self, removed: Sequence[str]) -> dict[str, float]:
        loss, accuracy, pred = self._run(removed)
        return {"loss": loss, "accuracy": accuracy, "agreement": float((pred == self.full_pred).float().mean()),
                "loss_increase": loss - self.full_loss, "accuracy_drop": self.full_accuracy - accuracy}


def lesion_study(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *,
                 on_progress: Progress | None = None) -> pd.DataFrame:
    """Each block removed in turn (one at a time), measured on a fixed batch in eval mode.

    One row per block in forward order. Columns: block, stage, residual, downsampling, shortcut, removable,
    loss, accuracy, agreement (share of images whose predicted class is the full model's), loss_increase,
    accuracy_drop (both against the full model), full_loss, full_accuracy. A block that is not removable has
    NaN measurements. ``on_progress(done, total)`` after every forward pass (the first is the full model).
    """
    lesioner = _Lesioner(model, inputs, targets)
    total = 1 + sum(info.removable for info in lesioner.info)
    done = 1
    if on_progress is not None:
        on_progress(done, total)
    rows = []
    nan = float("nan")
    for info in lesioner.info:
        row: dict[str, Any] = {"block": info.name, "stage": info.stage, "residual": info.residual,
                               "downsampling": info.downsampling, "shortcut": info.shortcut,
                               "removable": info.removable}
        if info.removable:
            row.update(lesioner.measure([info.name]))
            done += 1
            if on_progress is not None:
                on_progress(done, total)
        else:
            row.update({"loss": nan, "accuracy": nan, "agreement": nan, "loss_increase": nan,
                        "accuracy_drop": nan})
        row.update({"full_loss": lesioner.full_loss, "full_accuracy": lesioner.full_accuracy})
        rows.append(row)
    return pd.DataFrame(rows)


def lesion_curve(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, max_removed: int = 5,
                 samples: int = 8, seed: int = 0, on_progress: Progress | None = None) -> pd.DataFrame:
    """k random removable blocks removed together, for k = 1 ... ``max_removed`` (Veit et al., Fig. 5).

    For each k, ``samples`` sets of k blocks drawn from a local generator seeded with ``seed`` (every set once,
    when there are no more than ``samples`` of them). One row per set: removed (k), sample, blocks (names,
    comma-separated), loss, accuracy, agreement, loss_increase, accuracy_drop, full_loss, full_accuracy.
    ``max_removed`` above the number of removable blocks stops at that number.
    """
    if not isinstance(max_removed, int) or max_removed < 1:
        raise LesionError(f"max_removed must be a whole number of at least 1, got {max_removed!r}.")
    if not isinstance(samples, int) or not 1 <= samples <= MAX_SAMPLES:
        raise LesionError(f"samples must be a whole number from 1 to {MAX_SAMPLES}, got {samples!r}.")
    lesioner = _Lesioner(model, inputs, targets)
    removable = [info.name for info in lesioner.info if info.removable]
    if not removable:
        raise LesionError("No block of this net can be removed (every block changes the shape); pass a "
                          "residual net or a plain net with blocks of equal input and output shapes.")
    generator = torch.Generator().manual_seed(int(seed))
    plan: list[tuple[int, int, list[str]]] = []
    for k in range(1, min(max_removed, len(removable)) + 1):
        if math.comb(len(removable), k) <= samples:
            sets = [list(c) for c in itertools.combinations(removable, k)]
        else:
            sets = [[removable[i] for i in sorted(torch.randperm(len(removable), generator=generator)[:k].tolist())]
                    for _ in range(samples)]
        plan.extend((k, index, chosen) for index, chosen in enumerate(sets))
    rows = []
    for k, index, chosen in plan:
        rows.append({"removed": k, "sample": index, "blocks": ", ".join(chosen), **lesioner.measure(chosen),
                     "full_loss": lesioner.full_loss, "full_accuracy": lesioner.full_accuracy})
        if on_progress is not None:
            on_progress(len(rows), len(plan))
    return pd.DataFrame(rows)


if __name__ == "__main__":  # python -m resnet_core.lesion: the command line, which lives in probe_cli (the top floor)
    from resnet_core.probe_cli import lesion_main

    raise SystemExit(lesion_main())
