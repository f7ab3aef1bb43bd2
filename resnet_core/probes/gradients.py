"""Gradient instruments: norms per layer, the exact shortcut / branch split of every block's input gradient,
and the gradient at every block input. Gradients come from ``torch.autograd.grad`` only."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn

from ..costs import MemoryEstimate, net_cost
from ..describe import shortcut_kind
from ..hooks import Taps, taps
from ..models import InputSize, iter_blocks, stage_of
from ..targets import Target
from .layers import (
    LayerSpec,
    _block_index,
    _device,
    _is_preact,
    _layer_info,
    _objective,
    _tag,
    _within_budget,
    instrumented,
    require_batch_for_stats,
    resolve_layers,
)


def estimate_gradient_norms(model: nn.Module | str, *, batch: int = 1, image_size: InputSize | None = None,
                            options: dict[str, Any] | None = None, builds: bool | None = None) -> MemoryEstimate:
    """Memory ``gradient_norms`` needs (arguments as ``costs.net_cost``): a forward kept for backward, the
    backward with parameter gradients, and the layer-output gradients it returns (sized as the block inputs)."""
    net = net_cost(model, batch=batch, image_size=image_size, options=options, builds=builds)
    parts = {**net.inputs(), **net.forward_backward(), "parameter gradients": net.profile.param_bytes,
             "returned layer gradients": net.bytes(sum(net.profile.block_inputs))}
    return net.estimate("gradient_norms", f"Gradient norms of {net.net} at {net.px} px (batch {net.batch})", parts,
                        estimate_gradient_norms)


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
    require_batch_for_stats(model, inputs, train)
    _within_budget(estimate_gradient_norms, model, inputs)
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


PATH_COLUMNS = ["block", "label", "block_index", "depth", "stage", "shortcut", "split_at", "grad_norm",
                "total_norm", "shortcut_norm", "branch_norm", "shortcut_to_branch", "shortcut_share",
                "branch_share", "sum_error"]


@dataclass
class _PathTaps:
    """Per block, what the forward pass leaves for the path split: the block input, the split point, and each
    path's own view of the split point (a distinct autograd node per path), plus where the split is taken."""

    block_in: dict[str, torch.Tensor] = field(default_factory=dict)
    branch_view: dict[str, torch.Tensor] = field(default_factory=dict)
    shortcut_view: dict[str, torch.Tensor] = field(default_factory=dict)
    split_point: dict[str, torch.Tensor] = field(default_factory=dict)
    split_at: dict[str, str] = field(default_factory=dict)

    def _view_hook(self, store: dict[str, torch.Tensor], name: str, point: bool):
        def hook(module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
            if point:
                self.split_point[name] = args[0]
            view = output.view_as(output)  # a distinct autograd node for this path
            store[name] = view
            return view
        return hook

    def _pre_view_hook(self, name: str):
        def hook(module: nn.Module, args: Any) -> tuple[torch.Tensor, ...]:
            view = args[0].view_as(args[0])
            self.branch_view[name] = view
            return (view, *args[1:])
        return hook

    def _input_hook(self, name: str):
        def hook(module: nn.Module, args: Any) -> None:
            self.block_in[name] = args[0]
            if name not in self.split_point:
                self.split_point[name] = args[0]
        return hook

    def attach(self, tapped: Taps, blocks: list[tuple[str, nn.Module]], preact: bool) -> None:
        """Tap every block: its input, and a view per path at the split point (see ``path_gradients``)."""
        for name, block in blocks:
            tapped.forward_pre(block, self._input_hook(name))
            if (not preact) or block.has_projection:
                self.split_at[name] = "pre-activated input" if preact else "block input"
                tapped.forward(block.tap_branch_in, self._view_hook(self.branch_view, name, point=preact))
            else:
                self.split_at[name] = "block input"
                tapped.forward_pre(block.bn1, self._pre_view_hook(name))
            if block.residual:
                tapped.forward(block.tap_shortcut_in, self._view_hook(self.shortcut_view, name, point=False))


_Grads = tuple[dict[str, torch.Tensor | None], ...]


def _split_gradients(objective: torch.Tensor, paths: _PathTaps, names: list[str]) -> _Grads:
    """ONE ``torch.autograd.grad`` for every block: (at the input, at the split point, through the branch,
    through the shortcut), each a dict by block name (the shortcut one only for blocks that have one)."""
    missing = [n for n in names if n not in paths.block_in or n not in paths.branch_view]
    if missing:
        raise RuntimeError(f"Block {missing[0]} was not run by the forward pass.")
    shortcut_names = [n for n in names if n in paths.shortcut_view]
    wanted = ([paths.block_in[n] for n in names] + [paths.split_point[n] for n in names]
              + [paths.branch_view[n] for n in names] + [paths.shortcut_view[n] for n in shortcut_names])
    grads = list(torch.autograd.grad(objective, wanted, allow_unused=True))
    count = len(names)
    return (dict(zip(names, grads[:count], strict=True)),
            dict(zip(names, grads[count: 2 * count], strict=True)),
            dict(zip(names, grads[2 * count: 3 * count], strict=True)),
            dict(zip(shortcut_names, grads[3 * count:], strict=True)))


def _path_row(index: int, name: str, block: nn.Module, paths: _PathTaps, grads: _Grads) -> dict[str, Any]:
    """One block's row of ``path_gradients``; its gradients are popped (freed) as they are read."""
    g_in, g_total, g_branch, g_short = grads
    nan = float("nan")
    total = _or_zeros(g_total.pop(name), paths.split_point[name])
    branch = _or_zeros(g_branch.pop(name), paths.split_point[name])
    total_sq = torch.dot(total.reshape(-1), total.reshape(-1))
    row = {"block": name, "label": name, "block_index": index, "depth": index,
           "stage": stage_of(name), "shortcut": shortcut_kind(block), "split_at": paths.split_at[name],
           "grad_norm": float(torch.linalg.vector_norm(_or_zeros(g_in.pop(name), paths.block_in[name]))),
           "total_norm": float(total_sq.sqrt()), "branch_norm": float(torch.linalg.vector_norm(branch))}
    if name in g_short:
        short = _or_zeros(g_short.pop(name), paths.split_point[name])
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
    return row


def estimate_path_gradients(model: nn.Module | str, *, batch: int = 1, image_size: InputSize | None = None,
                            options: dict[str, Any] | None = None, builds: bool | None = None,
                            twin: bool = False) -> MemoryEstimate:
    """Memory ``path_gradients`` needs (arguments as ``costs.net_cost``): a forward kept for backward, the
    backward (no weight gradients), and the gradients at every block input, its split point and both paths,
    returned together. ``twin``: the cost of ``compare_path_gradients`` (the nets run one after the other)."""
    net = net_cost(model, batch=batch, image_size=image_size, options=options, builds=builds, twin=twin)
    parts = {**net.inputs(), **net.forward_backward(),
             "returned block gradients": net.bytes(3 * sum(net.profile.block_inputs))}
    what = f"Gradient flow on {net.net}" + (" and its twin" if twin else "") + f" at {net.px} px (batch {net.batch})"
    return net.estimate("compare_path_gradients" if twin else "path_gradients", what, parts,
                        estimate_path_gradients)


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
    require_batch_for_stats(model, inputs, train)
    _within_budget(estimate_path_gradients, model, inputs)
    paths = _PathTaps()
    with instrumented(model, train=train, grads=False), taps(model, hold=False) as tapped:
        paths.attach(tapped, blocks, _is_preact(model))
        x = inputs.to(_device(model)).detach().requires_grad_(True)
        objective = _objective(model, x, target)
        tapped.remove()
        grads = _split_gradients(objective, paths, [name for name, _ in blocks])
    with torch.no_grad():
        rows = [_path_row(index, name, block, paths, grads) for index, (name, block) in enumerate(blocks)]
    return pd.DataFrame(rows, columns=PATH_COLUMNS)

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
    for net in nets:  # both checked and costed before either runs
        require_batch_for_stats(net, inputs, train)
        _within_budget(estimate_path_gradients, net, inputs)
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


def _or_zeros(grad: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """An unused path (no gradient reached it) has a zero gradient."""
    return grad if grad is not None else torch.zeros_like(like)


def estimate_block_gradients(model: nn.Module | str, *, batch: int = 1, image_size: InputSize | None = None,
                             options: dict[str, Any] | None = None, builds: bool | None = None) -> MemoryEstimate:
    """Memory ``block_input_grad_norms`` needs (arguments as ``costs.net_cost``): a forward kept for backward,
    the backward (no weight gradients), and one gradient per block input."""
    net = net_cost(model, batch=batch, image_size=image_size, options=options, builds=builds)
    parts = {**net.inputs(), **net.forward_backward(),
             "returned block gradients": net.bytes(sum(net.profile.block_inputs))}
    return net.estimate("block_gradients", f"Block-input gradients of {net.net} at {net.px} px (batch {net.batch})",
                        parts, estimate_block_gradients)


def block_input_grad_norms(model: nn.Module, inputs: torch.Tensor, target: int | Target | None,
                           *, train: bool | None = True) -> list[float]:
    """The norm of the target's gradient at every block input (forward order), one backward, no weight grads."""
    require_batch_for_stats(model, inputs, train)
    _within_budget(estimate_block_gradients, model, inputs)
    blocks = iter_blocks(model)

    with instrumented(model, train=train, grads=False), taps(model, hold=False) as tapped:
        captured = tapped.record([block for _, block in blocks], what="input", detach=False)
        x = inputs.to(_device(model)).detach().requires_grad_(True)
        objective = _objective(model, x, target)
        tapped.remove()
        grads = torch.autograd.grad(objective, [captured[name] for name, _ in blocks])
    return [float(torch.linalg.vector_norm(g)) for g in grads]
