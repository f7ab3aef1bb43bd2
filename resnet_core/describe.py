"""Per-layer and per-stage tables of a model: shapes, parameters and multiply-accumulates (MACs).

MACs come from ``torch.utils.flop_counter`` (FLOPs / 2), never from hand-written formulas: for our own nets its
formulas are applied in forward hooks on each convolution and linear layer (the only layers it counts in a
ResNet), for any other module its ``FlopCounterMode`` watches the whole pass; tests check the two agree on every
architecture. Models built on the ``meta`` device are described without allocating any memory; a small one (the
CIFAR nets up to ResNet-110 at their own size) is run instead as a zero-filled copy on the CPU, which takes
milliseconds, while the first ``meta`` forward and the first ``FlopCounterMode`` both import ``torch._dynamo``
(about a second, once per process: the Architecture page's cold start).
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count, mm_flop

from .blocks import BasicBlock, Bottleneck, PadShortcut, ResidualBlock, Tap
from .card import card_of
from .hooks import model_lock, preserved_state, taps
from .models import (
    ARCHITECTURES,
    InputSize,
    ResNet,
    block_position,
    build,
    count_params,
    display_name,
    input_shape,
    iter_blocks,
)

_input_shape = input_shape  # the old private name, used across this module


def _example_input(model: nn.Module, shape: tuple[int, ...]) -> torch.Tensor:
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    return torch.zeros(shape, device=device, dtype=dtype)


# Leaves whose FLOPs FlopCounterMode would see are the convolutions and linear layers; these others count 0.
_UNCOUNTED_LEAVES = (nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.Identity, Tap, PadShortcut)
# A meta model with at most this many parameters, on at most this many input values, is run as a zero-filled
# CPU copy instead (8 MB of weights at most; ResNet-110 at 32 px is 1.7 M parameters and 3 K values per image).
_SMALL_NET_PARAMS = 2_000_000
_SMALL_INPUT_VALUES = 8 * 3 * 64 * 64


def _leaf_flops(module: nn.Module, args: tuple, output: torch.Tensor) -> int:
    """FLOPs of one call of a convolution or linear layer, by ``torch.utils.flop_counter``'s formulas."""
    if isinstance(module, nn.Conv2d):
        return conv_flop_count(list(args[0].shape), list(module.weight.shape), list(output.shape))
    if isinstance(module, nn.Linear):
        rows = args[0].numel() // module.in_features
        return mm_flop([rows, module.in_features], [module.in_features, module.out_features])
    return 0


def _hook_countable(model: nn.Module) -> bool:
    """Whether every FLOP of ``model``'s forward happens inside its convolution and linear layers: our own nets
    and blocks (whose forwards we wrote), built from known leaves. Anything else goes to FlopCounterMode."""
    ours = (isinstance(model, ResNet) and type(model).forward is ResNet.forward) or isinstance(model, ResidualBlock)
    return ours and all(isinstance(m, (nn.Conv2d, nn.Linear, *_UNCOUNTED_LEAVES))
                        for m in model.modules() if not list(m.children()))


class _FlopTally:
    """Forward hooks on a model's convolutions and linear layers that add up their FLOPs (``total``), and each
    leaf's FLOPs and shapes (``per_leaf``, ``shapes``), for this thread's calls only: module hooks are global,
    and a forward pass of the same model in another thread must not be counted here."""

    def __init__(self, leaves: dict[str, nn.Module]) -> None:
        self.total = 0
        self.per_leaf: dict[str, int] = {}
        self.shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        self._leaves = leaves
        self._thread = threading.get_ident()

    def hook(self, name: str) -> Callable[[nn.Module, tuple, torch.Tensor], None]:
        def after(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            if threading.get_ident() != self._thread:
                return
            flops = _leaf_flops(module, args, output)
            self.total += flops
            self.per_leaf[name] = self.per_leaf.get(name, 0) + flops
            self.shapes[name] = (tuple(args[0].shape), tuple(output.shape))

        return after

    @contextlib.contextmanager
    def attached(self, model: nn.Module) -> Iterator[_FlopTally]:
        with taps(model, train=False) as tapped, torch.no_grad():  # the hooks come off under the model's lock
            for name, module in self._leaves.items():
                tapped.forward(module, self.hook(name))
            yield self


def _leaves(model: nn.Module) -> dict[str, nn.Module]:
    """Every module that computes something: no containers, no tap points (pure identities)."""
    return {name: module for name, module in model.named_modules()
            if name and not list(module.children()) and not isinstance(module, Tap | nn.Identity)}


def _runnable(model: nn.Module, shape: tuple[int, ...]) -> nn.Module:
    """``model`` itself, or for a small meta model a zero-filled copy on the CPU (same modules and names)."""
    param = next(model.parameters(), None)
    if param is None or param.device.type != "meta" or count_params(model) > _SMALL_NET_PARAMS \
            or math.prod(shape) > _SMALL_INPUT_VALUES:
        return model
    with model_lock(model):  # no hooks being attached while we copy
        twin = copy.deepcopy(model)
    twin.to_empty(device="cpu")
    with torch.no_grad():
        for tensor in itertools.chain(twin.parameters(), twin.buffers()):
            tensor.zero_()
    return twin


def _counted(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
             tally: _FlopTally | None) -> tuple[torch.Tensor, int]:
    """``fn(x)`` and its FLOPs: read from ``tally``'s hooks when given, else from a FlopCounterMode."""
    if tally is not None:
        before = tally.total
        y = fn(x)
        return y, tally.total - before
    with FlopCounterMode(display=False) as counter:
        y = fn(x)
    return y, int(counter.get_total_flops())


def _resnet_flops(model: ResNet, x: torch.Tensor, tally: _FlopTally | None = None) -> int:
    """FLOPs of ``model(x)``, counting each distinct (block, input shape) once.

    Blocks repeated within a stage are identical modules on identical shapes, so their count is reused;
    this makes ResNet-1202 (600 blocks) as quick to count as ResNet-20. Same parts, same order as
    ``ResNet.forward``; a test checks the total against one plain FlopCounterMode pass.
    """
    x, total = _counted(model.forward_stem, x, tally)
    seen: dict[tuple[str, tuple[int, ...]], tuple[tuple[int, ...], int]] = {}
    for stage in model.stages():
        for block in stage:
            key = (repr(block), tuple(x.shape))
            if key not in seen:
                y, flops = _counted(block, x, tally)
                seen[key] = (tuple(y.shape), flops)
                x = y
            else:
                shape, flops = seen[key]
                x = x.new_zeros(shape)
            total += flops
    x, flops = _counted(model.forward_final, x, tally)
    total += flops
    return total + _counted(model.forward_head, x, tally)[1]


def count_macs(model: nn.Module, input_size: InputSize) -> int:
    """Multiply-accumulates of one forward pass (batch as given), from ``torch.utils.flop_counter``.

    ``input_size`` is a side length, (H, W), (C, H, W) or a full (N, C, H, W) shape. MACs = FLOPs / 2.
    """
    shape = _input_shape(model, input_size)
    model = _runnable(model, shape)
    if _hook_countable(model):
        with _FlopTally(_leaves(model)).attached(model) as tally:
            x = _example_input(model, shape)
            if isinstance(model, ResNet):
                return _resnet_flops(model, x, tally) // 2
            return _counted(model, x, tally)[1] // 2
    with preserved_state(model, train=False), torch.no_grad():
        x = _example_input(model, shape)
        if isinstance(model, ResNet) and type(model).forward is ResNet.forward:
            return _resnet_flops(model, x) // 2
        _, flops = _counted(model, x, None)
    return flops // 2


def _kind(module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size
        groups = f", groups {module.groups}" if module.groups > 1 else ""
        return f"conv {k[0]}x{k[1]}/{module.stride[0]}{groups}"
    if isinstance(module, PadShortcut):
        return "zero-pad shortcut"
    return type(module).__name__


def _counted_per_leaf(model: nn.Module, shape: tuple[int, ...]) -> tuple[dict[str, int], dict[str, tuple]]:
    """FLOPs and (input, output) shapes of each leaf of any module, from one FlopCounterMode pass."""
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    macs: dict[str, int] = {}
    # Per-leaf attribution from this thread's counter only: the counter is a dispatch mode (per thread), and
    # each leaf's pre/post hooks read its running total. FlopCounterMode's own per-module breakdown relies on
    # process-global module hooks, so a forward pass running in another thread would be credited to our layers.
    me = threading.get_ident()
    started: dict[str, int] = {}

    def before(name: str):
        def hook(_module: nn.Module, _args: tuple) -> None:
            if threading.get_ident() == me:
                started[name] = counter.get_total_flops()

        return hook

    def after(name: str):
        def hook(_module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            if threading.get_ident() != me or name not in started:
                return
            macs[name] = macs.get(name, 0) + counter.get_total_flops() - started.pop(name)
            shapes[name] = (tuple(args[0].shape), tuple(output.shape))

        return hook

    counter = FlopCounterMode(display=False)
    with taps(model, train=False) as tapped, torch.no_grad():  # hooks go on and come off under the lock
        for name, module in _leaves(model).items():
            tapped.forward_pre(module, before(name))
            tapped.forward(module, after(name))
        with counter:
            model(_example_input(model, shape))
    return macs, shapes


def describe(model: nn.Module, input_size: InputSize = 224) -> pd.DataFrame:
    """One row per layer that computes something: stage, block, module, kind, shapes, params, MACs.

    Tap points (pure identities) and containers are left out; their totals equal ``count_params`` and
    ``count_macs``. ``input_size`` is a side length, (H, W), (C, H, W) or a full (N, C, H, W) shape.
    """
    shape = _input_shape(model, input_size)
    leaves = _leaves(model)
    runnable = _runnable(model, shape)
    if _hook_countable(runnable):
        with _FlopTally(_leaves(runnable)).attached(runnable) as tally:
            runnable(_example_input(runnable, shape))
        macs, shapes = tally.per_leaf, tally.shapes
    else:
        macs, shapes = _counted_per_leaf(runnable, shape)
    rows: list[dict[str, Any]] = []
    for name, module in leaves.items():
        if name not in shapes:
            continue  # not used in forward (e.g. an unused head)
        stage, block = block_position(name)
        in_shape, out_shape = shapes[name]
        rows.append(
            {
                "stage": stage,
                "block": block,
                "module": name,
                "kind": _kind(module),
                "input_shape": "x".join(map(str, in_shape[1:])),
                "output_shape": "x".join(map(str, out_shape[1:])),
                "params": sum(p.numel() for p in module.parameters(recurse=False)),
                "macs": int(macs[name] // 2),
            }
        )
    table = pd.DataFrame(rows)
    table["block"] = table["block"].astype("Int64")  # stem and head rows have no block index
    return table


def shortcut_kind(block: ResidualBlock) -> str:
    """"none" (plain), "identity", "zero-pad" (option A, shape change) or "projection" (dashed in Fig. 3)."""
    if not block.residual:
        return "none"
    if block.downsample is None:
        return "identity"
    return "zero-pad" if isinstance(block.downsample, PadShortcut) else "projection"


def block_table(model: nn.Module, input_size: InputSize = 224, layers: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per residual block: stage, index, shortcut kind, input/output shape, params, MACs.

    ``layers`` may be a ``describe(model, input_size)`` table already computed (saves a second pass).
    """
    layers = describe(model, input_size) if layers is None else layers
    rows = []
    for name, module in model.named_modules():
        if not isinstance(module, ResidualBlock):
            continue
        mine = layers[layers["module"].str.startswith(name + ".")]
        stage, index = block_position(name)
        rows.append(
            {
                "block": name,
                "stage": stage,
                "index": index,
                "shortcut": shortcut_kind(module),
                "input_shape": mine["input_shape"].iloc[0],
                "output_shape": mine["output_shape"].iloc[-1] if not module.residual else
                mine.loc[~mine["module"].str.contains("downsample"), "output_shape"].iloc[-1],
                "params": int(mine["params"].sum()),
                "macs": int(mine["macs"].sum()),
            }
        )
    return pd.DataFrame(rows)


def _conv_spec(conv: nn.Conv2d) -> str:
    k = conv.kernel_size[0]
    groups = f", C={conv.groups}" if conv.groups > 1 else ""
    return f"{k}x{k}, {conv.out_channels}{groups}"


def _paper_stage(stage: str) -> str:
    """Our module names -> the paper's Table 1 names: stem = conv1, layer1 = conv2_x, ..., head = fc."""
    if stage == "stem":
        return "conv1"
    if stage == "head":
        return "fc"
    return f"conv{int(stage[5:]) + 1}_x"


def paper_table_name(stem: str) -> str:
    """Which of the paper's tables a stage table follows: Table 1 for the ImageNet nets, the CIFAR-10 table of
    section 4.2 (6n+2 layers on 32, 16 and 8 px maps) for a CIFAR stem."""
    return "the paper's CIFAR-10 table, section 4.2" if stem == "cifar" else "the paper's Table 1, ImageNet"


def stage_table(model: nn.Module, input_size: InputSize = 224, layers: pd.DataFrame | None = None) -> pd.DataFrame:
    """The paper's Table 1 for ``model``: per stage its output size, the block recipe x repeats, params, MACs.

    Columns: stage (module name), paper_stage (conv1, conv2_x, ..., fc), output_size (CxHxW), layer (recipe),
    blocks, params, macs. ``layers`` may be a ``describe`` table already computed.
    """
    layers = describe(model, input_size) if layers is None else layers
    rows = []
    stem = layers[layers["stage"] == "stem"]
    stem_convs = [m for n, m in model.named_modules() if n in set(stem["module"]) and isinstance(m, nn.Conv2d)]
    stem_layer = ", ".join(f"{_conv_spec(c)}, stride {c.stride[0]}" for c in stem_convs)
    if any(stem["kind"] == "MaxPool2d"):
        stem_layer += "; 3x3 max pool, stride 2"
    rows.append({"stage": "stem", "output_size": stem["output_shape"].iloc[-1], "layer": stem_layer,
                 "blocks": 0, "params": int(stem["params"].sum()), "macs": int(stem["macs"].sum())})
    for stage_name in sorted({s for s in layers["stage"] if s.startswith("layer")}, key=lambda s: int(s[5:])):
        stage = getattr(model, stage_name)
        first = stage[0]
        convs = [m for n, m in first.named_children() if n.startswith("conv")]
        mine = layers[layers["stage"] == stage_name]
        main = mine[~mine["module"].str.contains("downsample")]
        rows.append(
            {
                "stage": stage_name,
                "output_size": main["output_shape"].iloc[-1],
                "layer": "[" + "; ".join(_conv_spec(c) for c in convs) + f"] x {len(stage)}",
                "blocks": len(stage),
                "params": int(mine["params"].sum()),
                "macs": int(mine["macs"].sum()),
            }
        )
    head = layers[layers["stage"] == "head"]
    fc = getattr(model, "fc", None)
    rows.append({"stage": "head", "output_size": head["output_shape"].iloc[-1],
                 "layer": f"average pool, {fc.out_features}-d fc, softmax" if fc is not None else "",
                 "blocks": 0, "params": int(head["params"].sum()), "macs": int(head["macs"].sum())})
    table = pd.DataFrame(rows)
    table.insert(1, "paper_stage", table["stage"].map(_paper_stage))
    return table


def main_path_depth(model: nn.Module) -> int:
    """Weighted layers on the main path (convolutions outside shortcuts, plus fc): 56 for ResNet-56."""
    shortcut_modules = {id(m) for _, blk in iter_blocks(model) if blk.downsample is not None
                        for m in blk.downsample.modules()}
    return sum(1 for m in model.modules()
               if isinstance(m, nn.Conv2d | nn.Linear) and id(m) not in shortcut_modules)


def twin_comparison(residual: nn.Module, plain: nn.Module, input_size: InputSize) -> pd.DataFrame:
    """A residual net and its plain twin side by side: label, depth, params, MACs, shortcut counts.

    One row each, in the order given. Build both on the meta device to compare ImageNet nets instantly.
    """
    rows = []
    for model in (residual, plain):
        kinds = [shortcut_kind(blk) for _, blk in iter_blocks(model)]
        name = card_of(model).arch
        rows.append({
            "label": display_name(name, model.residual) if name else type(model).__name__,
            "residual": bool(model.residual),
            "depth": main_path_depth(model),
            "blocks": len(kinds),
            "params": count_params(model),
            "macs": count_macs(model, input_size),
            "identity_shortcuts": kinds.count("identity"),
            "zero_pad_shortcuts": kinds.count("zero-pad"),
            "projection_shortcuts": kinds.count("projection"),
        })
    return pd.DataFrame(rows)


def block_comparison(channels: int = 256, size: int = 56) -> pd.DataFrame:
    """BasicBlock vs Bottleneck on a ``channels``-d input (the paper's Fig. 5), counted from real modules.

    The BasicBlock keeps ``channels`` inside (two 3x3 convs); the Bottleneck reduces to ``channels / 4``
    (1x1, 3x3, 1x1). Columns: block, recipe, conv_weights (conv kernels only), params (with BN), macs on a
    (1, channels, size, size) input. At 256 channels: 1,179,648 vs 69,632 conv weights.
    """
    if channels < Bottleneck.expansion or channels % Bottleneck.expansion:
        raise ValueError(f"channels must be a positive multiple of {Bottleneck.expansion}, got {channels}.")
    with torch.device("meta"):
        blocks = {"BasicBlock": BasicBlock(channels, channels),
                  "Bottleneck": Bottleneck(channels, channels // Bottleneck.expansion)}
    rows = []
    for kind, block in blocks.items():
        convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
        rows.append({
            "block": kind,
            "recipe": " -> ".join(_conv_spec(c) for c in convs),
            "conv_weights": sum(c.weight.numel() for c in convs),
            "params": count_params(block),
            "macs": count_macs(block, (1, channels, size, size)),
        })
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class ArchitectureReport:
    """Everything the Architecture page shows for one net, as DataFrames (picklable, so pages can cache it)."""

    label: str
    input_size: int
    layers: pd.DataFrame  # describe()
    stages: pd.DataFrame  # stage_table()
    blocks: pd.DataFrame  # block_table()
    twin: pd.DataFrame  # twin_comparison(): this net first, its twin second


def architecture_report(model: nn.Module, twin: nn.Module, input_size: int) -> ArchitectureReport:
    """Describe ``model`` once and derive every table from that pass; ``twin`` is its residual/plain twin.

    Pass meta-device models (``build(..., )`` under ``torch.device("meta")``): nothing is allocated.
    """
    layers = describe(model, input_size)
    name = card_of(model).arch
    label = display_name(name, model.residual) if name else type(model).__name__
    return ArchitectureReport(
        label=label,
        input_size=int(input_size),
        layers=layers,
        stages=stage_table(model, input_size, layers=layers),
        blocks=block_table(model, input_size, layers=layers),
        twin=twin_comparison(model, twin, input_size),
    )


# ----------------------------------------------------------------------------------- the list of models
@cache
def _summary_row(name: str, residual: bool) -> dict[str, Any]:
    spec = ARCHITECTURES[name]
    with torch.device("meta"):
        model = build(name, residual=residual)
    size = spec.input_size
    return {
        "name": name,
        "label": display_name(name, residual),
        "family": spec.family,
        "depth": spec.depth,
        "block": spec.block,
        "stem": spec.stem,
        "residual": residual,
        "stages": "-".join(str(n) for n in spec.layers),
        "params": count_params(model),
        "macs": count_macs(model, (1, 3, size, size)),
        "input_size": size,
        "torchvision": spec.torchvision,
        "paper": spec.paper,
    }


def list_models(include_plain: bool = False) -> pd.DataFrame:
    """Every named architecture: name, family, depth, block, params and MACs at its native input size.

    Counted on the meta device (no memory, no weights), so listing all of them takes well under a second.
    With ``include_plain`` each plain twin (``residual=False``) gets its own row.
    """
    rows = [_summary_row(name, True) for name in ARCHITECTURES]
    if include_plain:
        rows += [_summary_row(name, False) for name in ARCHITECTURES]
    return pd.DataFrame(rows)

