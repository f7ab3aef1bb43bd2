"""Instruments: per-layer activation statistics and maps, gradient norms, and the exact split of every block's
input gradient between the shortcut and the residual branch.

Every instrument is a context manager (or a function built on one) that

* takes the model's lock (``state.preserved_state``), so a model shared by several app sessions is never seen
  half-instrumented;
* attaches forward hooks only (gradients come from ``torch.autograd.grad``, never module backward hooks) and
  removes them in ``finally``, also when the forward raises;
* puts train/eval flags, ``requires_grad`` and ``.grad`` back as they were, and, when it ran batch-norm in
  train mode, the running statistics too.

Layers are addressed by qualified module name (``"layer2.0.tap_sum"``), by a glob pattern
(``"layer3.*.tap_out"``), by a list of names, or by a named set:

``"blocks"``  every residual (or plain) block; its output is the block output.
``"stages"``  the stem output (``maxpool``, an identity in CIFAR nets) and each stage ``layer1`` ... ``layerN``.
``"taps"``    the stem output and every tap point of every block (``tap_branch_in``, ``tap_branch``,
              ``tap_shortcut_in``, ``tap_shortcut``, ``tap_sum``, ``tap_out``); see ``blocks.py``.

Results are tidy pandas DataFrames: one row per layer (or block), with its depth index (forward order), stage
and block, ready for ``resnet_core.plots.instruments``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .blocks import PadShortcut, ResidualBlock, Tap
from .describe import estimate_memory, require_within_budget, scale_to_budget, shortcut_kind
from .hooks import preserved_state, taps
from .models import build, display_name, get_spec, iter_blocks
from .targets import LossTarget, Target, TopClassTarget, as_target, scalar_objective

LayerSpec = str | Sequence[str]
NAMED_SETS = ("blocks", "stages", "taps")
KEEP_MODES = ("stats", "maps", "both")

DEFAULT_BINS = 48
DEFAULT_HIST_RANGE = 6.0
MAX_HIST_VALUES = 2**16
CHANNEL_RULE = "the {k} channels with the highest mean activation over the kept samples, highest first"

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
            names = [_stem_name(model)] + [n for n in modules if n.startswith("layer") and "." not in n]
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
    if name.startswith("layer") and "." not in name:  # a stage ends with a block
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
    if parts[0].startswith("layer"):
        stage = parts[0]
    elif parts[0] in ("conv1", "bn1", "relu", "maxpool"):
        stage = "stem"
    else:
        stage = "head"
    block = ".".join(parts[:2]) if stage.startswith("layer") and len(parts) >= 2 else ""
    tap = parts[-1] if isinstance(module, Tap) else ""
    if isinstance(module, ResidualBlock):
        kind = "block"
    elif stage.startswith("layer") and len(parts) == 1:
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


# ------------------------------------------------------------------------------------------ activations


@dataclass
class FeatureMaps:
    """Bounded feature maps of one layer.

    ``maps``: float32 (S, K, h, w) on CPU: the first S samples, K channels chosen by ``rule`` (original indices
    in ``channels``, their mean activation in ``channel_means``), average-pooled so max(h, w) <= max_side.
    ``shape`` is the layer's full output shape (N, C, H, W).
    """

    layer: str
    maps: torch.Tensor
    channels: list[int]
    channel_means: list[float]
    shape: tuple[int, ...]
    rule: str

    @property
    def nbytes(self) -> int:
        return self.maps.untyped_storage().nbytes()


@dataclass
class ActivationRecording:
    """What ``record_activations`` collected. Hooks are gone once the ``with`` block ends; data stays.

    Statistics are accumulated as sums (count, sum, sum of squares, min, max, zero/negative counts, histogram),
    so several forward passes inside one ``with`` block combine into one set of statistics.
    """

    model_info: dict[str, dict[str, Any]]
    bin_edges: torch.Tensor
    keep: str
    max_channels: int
    max_side: int
    max_samples: int
    order: list[str] = field(default_factory=list)
    _moments: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    _hists: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    _shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    maps: dict[str, FeatureMaps] = field(default_factory=dict)

    @property
    def layers(self) -> list[str]:
        """Recorded layer names in the order their hooks first fired (forward order)."""
        return list(self.order)

    def stats(self) -> pd.DataFrame:
        """One row per recorded layer, in forward order.

        Columns: layer, label, depth (0-based forward order), stage, block, block_index, tap, kind, post_relu,
        shape, numel (values seen), mean, std (population), min, max, zero_share (exact zeros, only where the
        layer is a ReLU output, else NaN), negative_share (0 by construction after a ReLU), inactive_share
        (zero_share after a ReLU, negative_share before one: the share a ReLU switches off).
        """
        rows = []
        for depth, name in enumerate(self.order):
            info = self.model_info[name]
            row = {**info, "depth": depth, "shape": "x".join(str(s) for s in self._shapes[name])}
            if self._moments.get(name):
                m = torch.stack(self._moments[name]).to("cpu", torch.float64)
                n, total, squares = m[:, 0].sum().item(), m[:, 1].sum().item(), m[:, 2].sum().item()
                lo, hi, count = m[:, 3].min().item(), m[:, 4].max().item(), m[:, 5].sum().item()
                mean = total / n
                row.update(numel=int(n), mean=mean, std=math.sqrt(max(squares / n - mean * mean, 0.0)),
                           min=lo, max=hi)
                if info["post_relu"]:
                    row.update(zero_share=1.0 - count / n, negative_share=0.0, inactive_share=1.0 - count / n)
                else:
                    row.update(zero_share=float("nan"), negative_share=count / n, inactive_share=count / n)
            rows.append(row)
        columns = ["layer", "label", "depth", "stage", "block", "block_index", "tap", "kind", "post_relu", "shape",
                   "numel", "mean", "std", "min", "max", "zero_share", "negative_share", "inactive_share"]
        return pd.DataFrame(rows).reindex(columns=columns)

    def histograms(self) -> pd.DataFrame:
        """Long table: one row per (layer, bin). Columns: layer, label, depth, stage, bin, bin_left, bin_right,
        bin_center, count, share. The bins are fixed (the same for every layer); values beyond the range are
        counted in the outermost bins; layers larger than ``MAX_HIST_VALUES`` are histogrammed on an evenly
        strided sample of at most that many values."""
        edges = self.bin_edges.double().numpy()
        frames = []
        for depth, name in enumerate(self.order):
            if not self._hists.get(name):
                continue
            counts = torch.stack(self._hists[name]).sum(0).to("cpu", torch.float64).numpy()
            info = self.model_info[name]
            frames.append(pd.DataFrame({
                "layer": name, "label": info["label"], "depth": depth, "stage": info["stage"],
                "bin": np.arange(len(counts)), "bin_left": edges[:-1], "bin_right": edges[1:],
                "bin_center": (edges[:-1] + edges[1:]) / 2, "count": counts,
                "share": counts / max(counts.sum(), 1.0),
            }))
        if not frames:
            return pd.DataFrame(columns=["layer", "label", "depth", "stage", "bin", "bin_left", "bin_right",
                                         "bin_center", "count", "share"])
        return pd.concat(frames, ignore_index=True)

    def nbytes(self) -> int:
        """Bytes held by the kept feature maps (their storages, so a view of a big tensor would count fully)."""
        return sum(m.nbytes for m in self.maps.values())


def _range_and_count(flat: torch.Tensor, post_relu: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(min, max, count) of a flat float32 tensor: count = non-zero values after a ReLU, negatives before one.

    On CPU, float ``count_nonzero`` and comparisons run several times slower than a plain reduction, so a
    post-ReLU tensor is read as int32: for non-negative floats the integer order is the float order, and a
    value is zero exactly when its bits are. A set sign bit (a -0.0, which ReLU passes through) shows up as a
    negative integer minimum; only then the slower exact float count runs.
    """
    if post_relu and flat.device.type == "cpu" and flat.dtype == torch.float32 and flat.is_contiguous():
        bits = flat.view(torch.int32)
        lo_hi = torch.aminmax(bits)
        if int(lo_hi.min) >= 0:
            low, high = lo_hi.min.view(torch.float32), lo_hi.max.view(torch.float32)
            return low, high, torch.count_nonzero(bits)
    lo_hi = torch.aminmax(flat)
    count = torch.count_nonzero(flat) if post_relu else (flat < 0).sum()
    return lo_hi.min, lo_hi.max, count


def _seen(rec: ActivationRecording, name: str, output: Any) -> torch.Tensor | None:
    """The hooked output, detached, with its layer noted in forward order; None for non-tensor outputs."""
    if not isinstance(output, torch.Tensor):
        return None
    x = output.detach()
    if name not in rec._shapes:
        rec.order.append(name)
        rec._shapes[name] = tuple(x.shape)
    return x


def _stats_hook(rec: ActivationRecording, name: str, post_relu: bool, bins: int, lo: float, hi: float):
    """Forward hook: moments, min/max, zero or negative count and a histogram, all computed on the device."""

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        x = _seen(rec, name, output)
        if x is None:
            return
        flat = x.reshape(-1).float()
        n = flat.numel()
        if n == 0:
            return
        # Sum and sum of squares (dot) are single fast passes; var_mean is several times slower on CPU.
        total = flat.sum()
        squares = torch.dot(flat, flat)
        low, high, count = _range_and_count(flat, post_relu)
        rec._moments.setdefault(name, []).append(torch.stack([
            torch.tensor(float(n), device=flat.device, dtype=torch.float64), total.double(), squares.double(),
            low.double(), high.double(), count.double()]))
        step = max(1, -(-n // MAX_HIST_VALUES))
        sample = flat[::step].clamp(lo, hi)
        rec._hists.setdefault(name, []).append(torch.histc(sample, bins=bins, min=lo, max=hi))

    return hook


def _maps_hook(rec: ActivationRecording, name: str):
    """Forward hook: keep the top channels (by mean activation) of the first samples, average-pooled."""

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        x = _seen(rec, name, output)
        if x is None:
            return
        if x.dim() != 4 or name in rec.maps:
            return  # only spatial maps, and only from the first forward pass
        kept = x[: rec.max_samples].float()
        means = kept.mean(dim=(0, 2, 3))
        k = min(rec.max_channels, means.numel())
        top = torch.topk(means, k)
        chosen = kept.index_select(1, top.indices)  # a copy: nothing keeps the full activation alive
        h, w = chosen.shape[-2:]
        if max(h, w) > rec.max_side:
            scale = rec.max_side / max(h, w)
            chosen = F.adaptive_avg_pool2d(chosen, (max(1, int(h * scale)), max(1, int(w * scale))))
        rec.maps[name] = FeatureMaps(
            layer=name, maps=chosen.to("cpu").contiguous(), channels=top.indices.tolist(),
            channel_means=top.values.tolist(), shape=tuple(x.shape),
            rule=CHANNEL_RULE.format(k=k))

    return hook


@contextlib.contextmanager
def record_activations(
    model: nn.Module,
    layers: LayerSpec = "blocks",
    keep: str = "stats",
    *,
    bins: int = DEFAULT_BINS,
    hist_range: tuple[float, float] = (-DEFAULT_HIST_RANGE, DEFAULT_HIST_RANGE),
    max_channels: int = 16,
    max_side: int = 32,
    max_samples: int = 1,
) -> Iterator[ActivationRecording]:
    """Record activations of ``layers`` during the forward passes run inside the ``with`` block.

    ``keep="stats"``: per layer mean, std, min, max, zero share (after a ReLU) or negative share (before one)
    and a fixed-bin histogram over ``hist_range``, all reduced on the model's device inside the hook.
    ``keep="maps"``: per 4-D layer at most ``max_samples`` x ``max_channels`` maps of at most
    ``max_side`` x ``max_side`` (channels with the highest mean activation), so memory stays bounded whatever
    the depth. ``keep="both"`` does both. The caller runs the model (under ``torch.no_grad()`` ideally)::

        with record_activations(model, "blocks") as rec:
            model(x)
        rec.stats()  # DataFrame, one row per block

    The model's lock is held for the whole block; the hooks are removed in ``finally``.
    """
    if keep not in KEEP_MODES:
        raise ValueError(f"keep must be one of {KEEP_MODES}, got {keep!r}.")
    if bins < 1 or not hist_range[0] < hist_range[1]:
        raise ValueError("A histogram needs at least one bin and a range (low, high) with low < high.")
    if max_channels < 1 or max_side < 1 or max_samples < 1:
        raise ValueError("max_channels, max_side and max_samples must be positive.")
    names = resolve_layers(model, layers)
    modules = dict(model.named_modules())
    blocks = _block_index(model)
    info = {}
    for name in names:
        row = _layer_info(model, name, modules[name])
        row["block_index"] = blocks.get(row["block"], -1)
        row["post_relu"] = _post_relu(model, name, modules[name])
        info[name] = row
    lo, hi = float(hist_range[0]), float(hist_range[1])
    rec = ActivationRecording(info, torch.linspace(lo, hi, bins + 1), keep, max_channels, max_side, max_samples)
    with taps(model) as tapped:
        for name in names:
            if keep in ("stats", "both"):
                tapped.forward(modules[name], _stats_hook(rec, name, info[name]["post_relu"], bins, lo, hi))
            if keep in ("maps", "both"):
                tapped.forward(modules[name], _maps_hook(rec, name))
        yield rec


def activation_profile(
    model: nn.Module,
    inputs: torch.Tensor,
    layers: LayerSpec = "blocks",
    keep: str = "stats",
    *,
    train: bool = False,
    **options: Any,
) -> ActivationRecording:
    """Run one forward pass of ``inputs`` (N, C, H, W) under ``record_activations`` and return the recording.

    ``train=False`` (default) uses batch-norm running statistics, as the model predicts; ``train=True`` uses
    the batch's own statistics (running statistics are restored afterwards). Options go to
    ``record_activations``. Costed first: BudgetError (nothing run) when over the memory budget.
    """
    _within_budget(model, "activations", inputs)
    with instrumented(model, train=train):
        with record_activations(model, layers, keep, **options) as rec, torch.no_grad():
            model(inputs.to(_device(model)))
    return rec


def activation_stats(model: nn.Module, inputs: torch.Tensor, layers: LayerSpec = "blocks", *,
                     train: bool = False, **options: Any) -> pd.DataFrame:
    """Per-layer statistics of one forward pass (see ``ActivationRecording.stats`` for the columns)."""
    return activation_profile(model, inputs, layers, "stats", train=train, **options).stats()


def _net_label(model: nn.Module) -> str:
    name = getattr(model, "arch_name", None)
    residual = bool(getattr(model, "residual", True))
    if name is None:
        return "residual net" if residual else "plain net"
    return display_name(name, residual)


def _tag(frame: pd.DataFrame, model: nn.Module, label: str | None) -> pd.DataFrame:
    frame = frame.copy()
    frame.insert(0, "residual", bool(getattr(model, "residual", True)))
    frame.insert(0, "net", label or _net_label(model))
    return frame


def compare_activations(
    model: nn.Module,
    twin: nn.Module,
    inputs: torch.Tensor,
    layers: LayerSpec = "blocks",
    *,
    labels: tuple[str, str] | None = None,
    train: bool = False,
    **options: Any,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Activation statistics and histograms of two nets (a net and its plain twin) on the same ``inputs``.

    Returns (stats, histograms) as in ``ActivationRecording``, each with ``net`` (display label, or ``labels``)
    and ``residual`` columns in front, ``model``'s rows first.
    """
    for net in (model, twin):  # both costed before either runs
        _within_budget(net, "activations", inputs)
    stats, hists = [], []
    for index, net in enumerate((model, twin)):
        rec = activation_profile(net, inputs, layers, "stats", train=train, **options)
        label = labels[index] if labels else None
        stats.append(_tag(rec.stats(), net, label))
        hists.append(_tag(rec.histograms(), net, label))
    return pd.concat(stats, ignore_index=True), pd.concat(hists, ignore_index=True)


def spread_summary(stats: pd.DataFrame, tolerance: float = 0.1) -> pd.DataFrame:
    """Per net, the activation std at its first and last recorded layer, and which way it went.

    ``stats`` is a ``compare_activations`` (or tagged ``ActivationRecording.stats``) table with ``net`` and
    ``std`` columns, rows in depth order. Returns one row per net, in order of appearance: net, first_std,
    last_std, ratio (last / first; NaN when first is 0) and trend: "grows" when the ratio exceeds
    1 + ``tolerance``, "shrinks" below 1 / (1 + ``tolerance``), else "stays".
    """
    rows = []
    for net, frame in stats.groupby("net", sort=False):
        first, last = float(frame["std"].iloc[0]), float(frame["std"].iloc[-1])
        ratio = last / first if first > 0 else float("nan")
        trend = ("grows" if ratio > 1 + tolerance else "shrinks" if ratio < 1 / (1 + tolerance) else "stays"
                 ) if math.isfinite(ratio) else "stays" if last == first else "grows"
        rows.append({"net": net, "first_std": first, "last_std": last, "ratio": ratio, "trend": trend})
    return pd.DataFrame(rows, columns=["net", "first_std", "last_std", "ratio", "trend"])


# ------------------------------------------------------------------------------------------ gradients


def _within_budget(model: nn.Module, task: str, inputs: torch.Tensor) -> None:
    """Raise BudgetError before anything is allocated when ``task`` on ``inputs`` exceeds the memory budget."""
    if isinstance(inputs, torch.Tensor) and inputs.dim() == 4:
        require_within_budget(estimate_memory(model, task, batch=inputs.shape[0], image_size=tuple(inputs.shape[1:])))


def _objective(model: nn.Module, inputs: torch.Tensor, target: int | Target | None) -> torch.Tensor:
    return scalar_objective(as_target(target), model(inputs))


def gradient_norms(
    model: nn.Module,
    inputs: torch.Tensor,
    target: int | Target | None = None,
    layers: LayerSpec = "blocks",
    *,
    train: bool | None = None,
) -> pd.DataFrame:
    """Gradient norms of the target (summed over the batch) with respect to each layer's output and each
    layer's parameters, from one ``torch.autograd.grad`` call (parameter ``.grad`` is never touched).

    ``inputs``: (N, C, H, W). ``target``: class index, None (each sample's top-1) or a target callable.
    Columns: layer, label, depth, stage, block, block_index, tap, kind, activation_grad_norm,
    activation_grad_rms (norm / sqrt(numel)), param_count, param_norm, param_grad_norm (NaN without parameters).
    """
    _within_budget(model, "gradient_norms", inputs)
    names = resolve_layers(model, layers)
    modules = dict(model.named_modules())
    blocks = _block_index(model)
    with instrumented(model, train=train, grads=True), taps(model, hold=False) as tapped:
        outputs = tapped.record(names, detach=False)  # differentiated with respect to: kept in the graph
        objective = _objective(model, inputs.to(_device(model)), target)
        tapped.remove()
        order = outputs.order
        params: dict[int, nn.Parameter] = {}
        for name in order:
            for p in modules[name].parameters():
                params.setdefault(id(p), p)
        param_list = list(params.values())
        acts = [outputs[name] for name in order]
        grads = torch.autograd.grad(objective, acts + param_list, allow_unused=True)
    act_grads = grads[: len(acts)]
    param_grads = {id(p): g for p, g in zip(param_list, grads[len(acts):], strict=True)}
    rows = []
    for depth, (name, grad) in enumerate(zip(order, act_grads, strict=True)):
        row = _layer_info(model, name, modules[name])
        row["block_index"] = blocks.get(row["block"], -1)
        norm = float(torch.linalg.vector_norm(grad)) if grad is not None else 0.0
        own = list(modules[name].parameters())
        with torch.no_grad():
            pg = [param_grads[id(p)] for p in own if param_grads[id(p)] is not None]
            row.update(
                depth=depth,
                activation_grad_norm=norm,
                activation_grad_rms=norm / math.sqrt(max(outputs[name].numel(), 1)),
                param_count=sum(p.numel() for p in own),
                param_norm=math.sqrt(sum(float(p.detach().double().pow(2).sum()) for p in own)) if own
                else float("nan"),
                param_grad_norm=math.sqrt(sum(float(g.double().pow(2).sum()) for g in pg)) if own
                else float("nan"),
            )
        rows.append(row)
    return pd.DataFrame(rows)


def path_gradients(
    model: nn.Module,
    inputs: torch.Tensor,
    target: int | Target | None = None,
    *,
    train: bool | None = None,
) -> pd.DataFrame:
    """For every block, the gradient arriving at its input through the shortcut and through the branch.

    How: forward hooks on ``tap_branch_in`` and ``tap_shortcut_in`` (which receive the same tensor) return
    ``output.view_as(output)``, so each path gets its own autograd node; ONE ``torch.autograd.grad`` over those
    views and each block's input gives the two parts and the total exactly (shortcut + branch == total).
    Parameters are switched to ``requires_grad=False`` for the duration (restored after), so no weight
    gradient is computed at all.

    Where the split is taken: at the block input, except in pre-activation blocks. Pre-activation blocks with an
    identity shortcut split at the raw input (the branch starts at ``bn1``, hooked there); pre-activation blocks
    with a projection shortcut feed both paths the pre-activated input ``relu1(bn1(x))`` (as in the authors'
    code), so their split is at that tensor (``split_at == "pre-activated input"``; ``total_norm`` is then the
    gradient there, ``grad_norm`` still the one at the block input).

    Columns: block, label, block_index, depth, stage, shortcut ("identity", "zero-pad", "projection" or "none"
    for plain blocks), split_at, grad_norm (at the block input), total_norm (at the split point),
    shortcut_norm, branch_norm, shortcut_to_branch (ratio of the norms), shortcut_share and branch_share (each
    part's component along the total, <part, total> / ||total||^2: they add up to exactly 1), sum_error
    (||shortcut + branch - total|| / ||total||). Plain blocks have only the branch path: the shortcut columns
    are NaN and ``shortcut`` says "none".
    """
    blocks = iter_blocks(model)
    if not blocks:
        raise ValueError("This model has no residual blocks to split the gradient at.")
    _within_budget(model, "path_gradients", inputs)
    # Per block: the tensors captured during the forward pass.
    block_in: dict[str, torch.Tensor] = {}
    branch_view: dict[str, torch.Tensor] = {}
    shortcut_view: dict[str, torch.Tensor] = {}
    split_point: dict[str, torch.Tensor] = {}
    split_at: dict[str, str] = {}
    preact = _is_preact(model)

    def view_hook(store: dict[str, torch.Tensor], name: str, point: bool):
        def hook(module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
            if point:
                split_point[name] = args[0]
            view = output.view_as(output)  # a distinct autograd node for this path
            store[name] = view
            return view
        return hook

    def pre_view_hook(name: str):
        def hook(module: nn.Module, args: Any) -> tuple[torch.Tensor, ...]:
            view = args[0].view_as(args[0])
            branch_view[name] = view
            return (view, *args[1:])
        return hook

    def input_hook(name: str):
        def hook(module: nn.Module, args: Any) -> None:
            block_in[name] = args[0]
            if name not in split_point:
                split_point[name] = args[0]
        return hook

    with instrumented(model, train=train, grads=False), taps(model, hold=False) as tapped:
        for name, block in blocks:
            tapped.forward_pre(block, input_hook(name))
            split_here = (not preact) or block.has_projection
            if split_here:
                split_at[name] = "pre-activated input" if preact else "block input"
                tapped.forward(block.tap_branch_in, view_hook(branch_view, name, point=preact))
            else:
                split_at[name] = "block input"
                tapped.forward_pre(block.bn1, pre_view_hook(name))
            if block.residual:
                tapped.forward(block.tap_shortcut_in, view_hook(shortcut_view, name, point=False))
        x = inputs.to(_device(model)).detach().requires_grad_(True)
        objective = _objective(model, x, target)
        tapped.remove()
        names = [name for name, _ in blocks]
        missing = [n for n in names if n not in block_in or n not in branch_view]
        if missing:
            raise RuntimeError(f"Block {missing[0]} was not run by the forward pass.")
        shortcut_names = [n for n in names if n in shortcut_view]
        wanted = ([block_in[n] for n in names] + [split_point[n] for n in names] + [branch_view[n] for n in names]
                  + [shortcut_view[n] for n in shortcut_names])
        grads = list(torch.autograd.grad(objective, wanted, allow_unused=True))
    count = len(names)
    g_in = dict(zip(names, grads[:count], strict=True))
    g_total = dict(zip(names, grads[count: 2 * count], strict=True))
    g_branch = dict(zip(names, grads[2 * count: 3 * count], strict=True))
    g_short = dict(zip(shortcut_names, grads[3 * count:], strict=True))
    del grads, wanted
    rows = []
    nan = float("nan")
    with torch.no_grad():
        for index, (name, block) in enumerate(blocks):
            total = _or_zeros(g_total.pop(name), split_point[name])
            branch = _or_zeros(g_branch.pop(name), split_point[name])
            total_sq = torch.dot(total.reshape(-1), total.reshape(-1))
            row = {"block": name, "label": name, "block_index": index, "depth": index,
                   "stage": name.split(".")[0], "shortcut": shortcut_kind(block), "split_at": split_at[name],
                   "grad_norm": float(torch.linalg.vector_norm(_or_zeros(g_in.pop(name), block_in[name]))),
                   "total_norm": float(total_sq.sqrt()), "branch_norm": float(torch.linalg.vector_norm(branch))}
            if name in g_short:
                short = _or_zeros(g_short.pop(name), split_point[name])
                denom = float(total_sq) if float(total_sq) > 0 else nan
                row.update(
                    shortcut_norm=float(torch.linalg.vector_norm(short)),
                    shortcut_share=float(torch.dot(short.reshape(-1), total.reshape(-1))) / denom,
                    branch_share=float(torch.dot(branch.reshape(-1), total.reshape(-1))) / denom,
                    sum_error=float(torch.linalg.vector_norm(short + branch - total)) / math.sqrt(denom),
                )
                row["shortcut_to_branch"] = row["shortcut_norm"] / row["branch_norm"] if row["branch_norm"] else nan
            else:
                # Plain block: one path only. The shortcut is absent, not a zero.
                row.update(shortcut_norm=nan, shortcut_share=nan, branch_share=1.0, shortcut_to_branch=nan,
                           sum_error=float(torch.linalg.vector_norm(branch - total)) / max(math.sqrt(float(total_sq)),
                                                                                         1e-30))
            rows.append(row)
    columns = ["block", "label", "block_index", "depth", "stage", "shortcut", "split_at", "grad_norm",
               "total_norm", "shortcut_norm", "branch_norm", "shortcut_to_branch", "shortcut_share",
               "branch_share", "sum_error"]
    return pd.DataFrame(rows, columns=columns)


def compare_path_gradients(
    model: nn.Module,
    twin: nn.Module | None,
    inputs: torch.Tensor,
    target: int | Target | None = None,
    *,
    labels: Sequence[str] | None = None,
    train: bool | None = True,
) -> pd.DataFrame:
    """``path_gradients`` of a net and its twin (or the net alone when ``twin`` is None) on the same batch,
    stacked, with ``net`` (display label, or ``labels``) and ``residual`` columns in front."""
    frames = []
    nets = [model] if twin is None else [model, twin]
    for net in nets:  # both costed before either runs
        _within_budget(net, "path_gradients", inputs)
    for index, net in enumerate(nets):
        frames.append(_tag(path_gradients(net, inputs, target, train=train), net, labels[index] if labels else None))
    return pd.concat(frames, ignore_index=True)


def first_last_ratio(frame: pd.DataFrame) -> pd.Series:
    """Per net (``net`` column): the gradient norm at the first block input over the one at the last block
    input, from a ``compare_path_gradients`` frame. Above 1: the gradient grows toward the input."""
    ratios = {}
    for net, rows in frame.groupby("net", sort=False):
        rows = rows.sort_values("block_index")
        last = float(rows["grad_norm"].iloc[-1])
        ratios[net] = float(rows["grad_norm"].iloc[0]) / last if last else float("inf")
    return pd.Series(ratios, name="first_last_ratio")


def split_summary(frame: pd.DataFrame) -> dict[str, float]:
    """Mean shortcut and branch shares over the blocks that have a shortcut (NaN when none has), and the
    largest ``sum_error``, from a ``path_gradients`` frame."""
    rows = frame[frame["shortcut"] != "none"]
    if rows.empty:
        return {"shortcut_share": float("nan"), "branch_share": float("nan"), "blocks": 0, "max_sum_error": float("nan")}
    return {"shortcut_share": float(rows["shortcut_share"].mean()), "branch_share": float(rows["branch_share"].mean()),
            "blocks": int(len(rows)), "max_sum_error": float(rows["sum_error"].max())}


def sweep_summary(sweep: pd.DataFrame) -> dict[str, float]:
    """At the deepest depth of a ``depth_sweep`` frame: the plain and residual ratios and plain / residual."""
    deepest = int(sweep["depth"].max())
    rows = sweep[sweep["depth"] == deepest].set_index("residual")["ratio"]
    plain, residual = float(rows.get(False, float("nan"))), float(rows.get(True, float("nan")))
    return {"depth": deepest, "plain": plain, "residual": residual, "factor": plain / residual}


def _or_zeros(grad: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """An unused path (no gradient reached it) has a zero gradient."""
    return grad if grad is not None else torch.zeros_like(like)


# ------------------------------------------------------------------------------------------ depth sweep

CIFAR_DEPTHS = (20, 32, 44, 56, 110)
IMAGENET_DEPTHS = (18, 34, 50, 101, 152)
# Settings the app uses for the sweep: slim nets and small batches keep it to seconds on a laptop CPU while
# keeping the direction measured with full nets and batch 128 (a test checks it with these settings).
SWEEP_SETTINGS: dict[str, dict[str, int]] = {
    "cifar": {"batch": 16, "width": 8, "image_size": 32},
    "imagenet": {"batch": 8, "width": 4, "image_size": 64},
}


def sweep_arch(depth: int, family: str) -> str:
    """The registry name for a depth: ``resnet{depth}`` of the CIFAR family (6n+2) or the ImageNet family."""
    name = f"resnet{int(depth)}"
    try:
        spec = get_spec(name)
    except ValueError:
        spec = None
    if spec is None or spec.stem != family:
        known = CIFAR_DEPTHS + (1202,) if family == "cifar" else IMAGENET_DEPTHS
        raise ValueError(f"There is no {family} ResNet of depth {depth}; choose from {', '.join(map(str, known))}.")
    return name


def block_input_grad_norms(model: nn.Module, inputs: torch.Tensor, target: int | Target | None,
                           *, train: bool | None = True) -> list[float]:
    """The norm of the target's gradient at every block input (forward order), one backward, no weight grads."""
    _within_budget(model, "block_gradients", inputs)
    blocks = iter_blocks(model)

    with instrumented(model, train=train, grads=False), taps(model, hold=False) as tapped:
        captured = tapped.record([block for _, block in blocks], what="input", detach=False)
        x = inputs.to(_device(model)).detach().requires_grad_(True)
        objective = _objective(model, x, target)
        tapped.remove()
        grads = torch.autograd.grad(objective, [captured[name] for name, _ in blocks])
    return [float(torch.linalg.vector_norm(g)) for g in grads]


def depth_sweep(
    depths: Sequence[int] | None = None,
    residual: Sequence[bool] = (True, False),
    *,
    family: str = "cifar",
    batch: int = 32,
    width: int | None = None,
    image_size: int | None = None,
    seed: int = 0,
    train: bool = True,
    num_classes: int = 10,
) -> pd.DataFrame:
    """First-block / last-block input-gradient norm ratio at initialisation, for each depth and residual flag.

    Each net is freshly built with ``seed``, run on the same seeded batch of ``batch`` standard-normal images
    (``image_size`` px: 32 CIFAR, 224 ImageNet by default) with random labels and the cross-entropy loss;
    ``train=True`` uses batch-norm with batch statistics, as in training. A ratio far above 1 means the gradient
    grows toward the input (explodes); far below 1, it vanishes.

    Columns: depth, arch, residual, label, first_grad_norm, last_grad_norm, ratio, batch, width, image_size.
    Costed first: over the memory budget the batch is halved until it fits (``frame.attrs["note"]`` says so);
    BudgetError when even batch 2 does not fit.
    """
    if family not in ("cifar", "imagenet"):
        raise ValueError(f"family must be 'cifar' or 'imagenet', got {family!r}.")
    depths = tuple(depths) if depths is not None else (CIFAR_DEPTHS if family == "cifar" else IMAGENET_DEPTHS)
    size = image_size or (32 if family == "cifar" else 224)
    for depth in depths:
        sweep_arch(depth, family)  # an unknown depth is one sentence before anything is costed
    fitted = scale_to_budget(estimate_memory(None, "depth_sweep", batch=batch, image_size=size, depths=depths,
                                             family=family, width=width), "batch", floor=2)
    batch = fitted.request["batch"]
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, 3, size, size, generator=gen)
    labels = torch.randint(0, num_classes, (batch,), generator=gen)
    target = LossTarget(labels)
    rows = []
    for depth in depths:
        name = sweep_arch(depth, family)
        for res in residual:
            options: dict[str, Any] = {"residual": bool(res), "num_classes": num_classes}
            if width is not None:
                options["width"] = width
            model = build(name, seed=seed, **options)
            norms = block_input_grad_norms(model, inputs, target, train=train)
            rows.append({"depth": int(depth), "arch": name, "residual": bool(res),
                         "label": display_name(name, bool(res)), "first_grad_norm": norms[0],
                         "last_grad_norm": norms[-1], "ratio": norms[0] / norms[-1] if norms[-1] else float("inf"),
                         "batch": batch, "width": width if width is not None else (16 if family == "cifar" else 64),
                         "image_size": size})
    frame = pd.DataFrame(rows)
    frame.attrs["note"] = fitted.note
    return frame


# ------------------------------------------------------------------------------------------ inputs


def shapes_batch(model: nn.Module, n: int = 16, seed: int = 0) -> tuple[torch.Tensor, Target]:
    """A batch of ``n`` Shapes images sized and normalised for ``model`` (``weights.preprocessing_for``), and
    the target to differentiate. Returns (inputs (n, 3, crop, crop), target).

    The target is the cross-entropy against the Shapes labels when that loss means something: for a net
    trained on Shapes (its ``class_names`` hold the Shapes classes; labels are mapped to its class indices) and
    for an untrained net (no ``class_names``) with at least as many outputs as Shapes has classes. A net
    trained on other classes (ImageNet, CIFAR-10) gets each image's top-1 logit instead.
    """
    from .data import SHAPES_CLASSES, make_shapes
    from .weights import preprocessing_for

    prep = preprocessing_for(model)
    shapes = make_shapes(n, image_size=prep.crop, seed=seed)
    mean = torch.tensor(prep.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(prep.std, dtype=torch.float32).view(1, 3, 1, 1)
    inputs = (shapes.images - mean) / std
    fc = getattr(model, "fc", None)
    classes = fc.out_features if isinstance(fc, nn.Linear) else 0
    names = getattr(model, "class_names", None)
    target: Target = TopClassTarget()
    if names is not None and set(SHAPES_CLASSES) <= set(names) and len(names) == classes:
        index = {name: i for i, name in enumerate(names)}
        target = LossTarget(torch.tensor([index[SHAPES_CLASSES[int(label)]] for label in shapes.labels]))
    elif names is None and classes >= len(SHAPES_CLASSES):
        target = LossTarget(shapes.labels)
    return inputs, target
