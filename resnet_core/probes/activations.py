"""Activation instruments: per-layer statistics and histograms, bounded feature maps, twin comparisons."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..costs import FLOAT_BYTES, MemoryEstimate, net_cost
from ..hooks import taps
from ..models import InputSize
from .fused import flat_values, fused_applies, fused_summary
from .layers import (
    LayerSpec,
    _block_index,
    _device,
    _layer_info,
    _post_relu,
    _tag,
    _within_budget,
    instrumented,
    require_batch_for_stats,
    resolve_layers,
)

KEEP_MODES = ("stats", "maps", "both")

DEFAULT_BINS = 48
DEFAULT_HIST_RANGE = 6.0
MAX_HIST_VALUES = 2**16
CHANNEL_RULE = "the {k} channels with the highest mean activation over the kept samples, highest first"

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


def _torch_summary(flat: torch.Tensor, post_relu: bool, step: int, bins: int, lo: float,
                   hi: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``fused_summary``'s result from torch reductions, on the tensor's device (CUDA, and whatever the fused
    loop declines): (float64 [sum, sum of squares, min, max, count], histogram of the clamped strided sample).
    Sum and dot are single fast passes; var_mean is several times slower on CPU."""
    total = flat.sum()
    squares = torch.dot(flat, flat)
    low, high, count = _range_and_count(flat, post_relu)
    moments = torch.stack([total.double(), squares.double(), low.double(), high.double(), count.double()])
    return moments, torch.histc(flat[::step].clamp(lo, hi), bins=bins, min=lo, max=hi)


def _stats_hook(rec: ActivationRecording, name: str, post_relu: bool, bins: int, lo: float, hi: float):
    """Forward hook: moments, min/max, zero or negative count and a histogram, all computed on the device."""

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        x = _seen(rec, name, output)
        if x is None:
            return
        flat = flat_values(x).float()
        n = flat.numel()
        if n == 0:
            return
        step = max(1, -(-n // MAX_HIST_VALUES))
        fused = fused_summary(flat, post_relu, step, bins, lo, hi) if fused_applies(flat) else None
        if fused is not None:
            moments, hist = torch.tensor((float(n), *fused[0]), dtype=torch.float64), fused[1]
        else:
            moments, hist = _torch_summary(flat, post_relu, step, bins, lo, hi)
            moments = torch.cat([torch.tensor([float(n)], device=flat.device, dtype=torch.float64), moments])
        rec._moments.setdefault(name, []).append(moments)
        rec._hists.setdefault(name, []).append(hist)

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


def estimate_activations(model: nn.Module | str, *, batch: int = 1, image_size: InputSize | None = None,
                         options: dict[str, Any] | None = None, builds: bool | None = None,
                         layers_kept: int | None = None, twin: bool = False) -> MemoryEstimate:
    """Memory ``activation_profile`` needs (arguments as ``costs.net_cost``): a no-grad forward, plus the bounded
    maps and statistics kept per recorded layer (``layers_kept``; default every computing layer). ``twin``: the
    cost of ``compare_activations`` (the two nets run one after the other, so only one is alive at a time)."""
    net = net_cost(model, batch=batch, image_size=image_size, options=options, builds=builds,
                   layers_kept=layers_kept, twin=twin)
    # Bounded maps (16 channels of 32x32 of one sample, the page's defaults) per recorded layer.
    kept = (layers_kept or len(net.profile.outputs)) * 16 * 32 * 32 * FLOAT_BYTES
    parts = {**net.inputs(), **net.no_grad_forward(), "kept maps and statistics": kept}
    what = (f"Comparing the activations of {net.net} and its twin" if twin
            else f"Recording the activations of {net.net}") + f" at {net.px} px (batch {net.batch})"
    return net.estimate("compare_activations" if twin else "activations", what, parts, estimate_activations)


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
    the batch's own statistics (running statistics are restored afterwards); that needs at least two images
    (BatchStatsError otherwise, nothing run). Options go to ``record_activations``. Costed first: BudgetError
    (nothing run) when over the memory budget.
    """
    require_batch_for_stats(model, inputs, train)
    _within_budget(estimate_activations, model, inputs)
    with instrumented(model, train=train):
        with record_activations(model, layers, keep, **options) as rec, torch.no_grad():
            model(inputs.to(_device(model)))
    return rec


def activation_stats(model: nn.Module, inputs: torch.Tensor, layers: LayerSpec = "blocks", *,
                     train: bool = False, **options: Any) -> pd.DataFrame:
    """Per-layer statistics of one forward pass (see ``ActivationRecording.stats`` for the columns)."""
    return activation_profile(model, inputs, layers, "stats", train=train, **options).stats()


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
    for net in (model, twin):  # both checked and costed before either runs
        require_batch_for_stats(net, inputs, train)
        _within_budget(estimate_activations, net, inputs)
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
