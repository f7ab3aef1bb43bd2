"""What a request will cost before it is made: memory estimates from a meta-device model's shapes, the budget
check that refuses or scales a request, and the nearest settings that fit (DESIGN.md, "Cost before work").

Each instrument declares its own cost beside its code (``probes.activations.estimate_activations``, a CAM
method's ``cost``, ``lesion.estimate``, ...), summed from the building blocks here (``net_cost``: the weights,
the input, a no-grad forward, a forward kept for backward). Every ``MemoryEstimate`` carries its ``Recipe``:
the function that made it and the smaller variants worth offering, so refusing, scaling and suggesting work
on any estimate without this module knowing which instrument made it. Generic tasks that are no instrument
(``build``, ``forward``, ``backward``) and races (``estimate_race``) are costed here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import pandas as pd
import torch
from torch import nn

from .blocks import Tap
from .card import card_of
from .hooks import model_lock, preserved_state, taps
from .models import ARCHITECTURES, InputSize, ResNet, build, display_name, get_spec, input_shape, iter_blocks
from .settings import BudgetError, Suggestion, format_bytes, memory_budget

# ------------------------------------------------------------------------------------------ memory estimates
#
# Every request that builds or runs a model is costed here before anything is allocated (DESIGN.md, "Cost
# before work"). The shapes come from one forward pass of a meta-device twin of the model (no memory), the
# rules from what PyTorch keeps alive:
#
# * no-grad forward: the block input stays alive while its branch computes, so about four tensors of the
#   largest layer output are live at once (plus the input);
# * forward for autograd: every layer output a backward could need is kept (convolutions keep their input,
#   batch norm its input, ReLU its output): the sum of all computing layers' outputs;
# * backward: a few gradient tensors of the largest layer at a time, plus whatever gradients are returned;
# * a model: parameters and buffers; training adds gradients (1x) and SGD momentum (1x; Adam 2x).
# Tests compare each rule with the growth of peak resident memory in a fresh process (within a factor of 2).

FLOAT_BYTES = 4
LIVE_FORWARD = 3  # largest-layer tensors alive at once in a no-grad forward (conv, batch norm, ReLU out of place)
LIVE_BACKWARD = 4  # largest-layer gradient tensors alive at once in a backward
SHAPES_DRAW_PLANES = 20  # float planes per image while the Shapes set is drawn (measured: 19)


@dataclass(frozen=True)
class LayerProfile:
    """What a memory estimate needs from one net at one input size (per sample, in elements)."""

    param_bytes: int
    buffer_bytes: int
    input_numel: int
    outputs: tuple[int, ...]  # every computing layer's output, forward order (taps and identities left out)
    block_inputs: tuple[int, ...]  # every residual block's input
    maxpool_outputs: int  # max pooling keeps int64 indices for backward

    @property
    def largest(self) -> int:
        return max(self.outputs, default=self.input_numel)

    @property
    def kept(self) -> int:
        """Elements autograd keeps for one sample (every computing layer's output, plus max-pool indices)."""
        return sum(self.outputs) + 2 * self.maxpool_outputs


def _profile_pass(model: nn.Module, shape: tuple[int, ...], params: dict[str, torch.Tensor] | None
                  ) -> LayerProfile:
    outputs: list[int] = []
    block_inputs: list[int] = []
    pools = [0]

    def hook(m: nn.Module, _args: Any, out: Any) -> None:
        if isinstance(out, torch.Tensor):
            outputs.append(out[0].numel() if out.dim() else 1)
            if isinstance(m, nn.MaxPool2d):
                pools[0] += out[0].numel()

    # The caller holds the model's lock (and restores its state): the taps only need to come off.
    with taps(model, hold=False) as tapped:
        for module in model.modules():
            if not list(module.children()) and not isinstance(module, Tap | nn.Identity):
                tapped.forward(module, hook)
        x = torch.zeros((1, *shape[1:]), device="meta")
        with torch.no_grad():
            if params is not None:
                blocks = {id(block) for _, block in iter_blocks(model)}
                for m in model.modules():
                    if id(m) in blocks:
                        tapped.forward_pre(m, lambda _m, args: block_inputs.append(args[0][0].numel()))
                torch.func.functional_call(model, params, (x,))
            else:
                # Meta kernels cost about half a millisecond each: identical blocks on identical shapes are run
                # once and their outputs reused (ResNet-1202 in well under a second), as in _resnet_flops.
                x = model.forward_stem(x)
                seen: dict[tuple[str, tuple[int, ...]], tuple[torch.Size, list[int]]] = {}
                for stage in model.stages():
                    for block in stage:
                        block_inputs.append(x[0].numel())
                        key = (repr(block), tuple(x.shape))
                        if key in seen:
                            out_shape, outs = seen[key]
                            outputs.extend(outs)
                            x = x.new_empty(out_shape)
                        else:
                            start = len(outputs)
                            x = block(x)
                            seen[key] = (x.shape, outputs[start:])
                model.forward_head(model.forward_final(x))
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    buffer_bytes = sum(b.numel() * b.element_size() for b in model.buffers())
    return LayerProfile(param_bytes, buffer_bytes, int(torch.Size(shape[1:]).numel()), tuple(outputs),
                        tuple(block_inputs), pools[0])


@lru_cache(maxsize=256)
def _named_profile(name: str, options: tuple[tuple[str, Any], ...], shape: tuple[int, ...]) -> LayerProfile:
    model = _meta_model(name, options)
    with model_lock(model):  # one profile pass at a time on the shared meta model (hooks)
        return _profile_pass(model, shape, None)


@lru_cache(maxsize=16)
def _meta_model(name: str, options: tuple[tuple[str, Any], ...]) -> ResNet:
    with torch.device("meta"):
        return build(name, **dict(options)).eval()


def layer_profile(model: nn.Module | str, input_size: InputSize = 224, options: dict[str, Any] | None = None
                  ) -> LayerProfile:
    """Per-sample shapes for a memory estimate, from a meta-device twin (nothing of the size is allocated).

    ``model`` is a registry name (built with ``options``) or a model: one built by ``build`` is re-built on the
    meta device from its name and options; any other model runs its forward with meta stand-ins for its tensors.
    """
    if isinstance(model, str):
        opts = tuple(sorted((options or {}).items()))
        channels = int(dict(opts).get("in_channels", 3))
        if isinstance(input_size, int):
            shape: tuple[int, ...] = (1, channels, input_size, input_size)
        else:
            sides = tuple(int(v) for v in input_size)
            shape = (1, channels, *sides) if len(sides) == 2 else (1, *sides[-3:])
        return _named_profile(model, opts, shape)
    name, arch_options = card_of(model).arch, card_of(model).arch_options
    shape = input_shape(model, input_size)
    if name is not None and arch_options is not None and isinstance(model, ResNet):
        try:
            return _named_profile(name, tuple(sorted(arch_options.items())), shape)
        except (ValueError, TypeError):
            pass  # options a registry build does not take: describe the model itself
    stand_ins = {k: torch.empty_like(v, device="meta") for k, v in
                 [*model.named_parameters(), *model.named_buffers()]}
    with preserved_state(model, train=False):  # hooks on a possibly shared model: under its lock
        return _profile_pass(model, shape, stand_ins)


Variant = tuple[dict[str, Any], str, dict[str, Any]]
"""One smaller request: (the change as data, e.g. ``{"width": 8}``; its words, e.g. "width 8"; the arguments that
change in the request, e.g. ``{"model": "resnet20", "options": {"width": 8}}``)."""
Axes = Callable[[dict[str, Any]], list[list[Variant]]]


@dataclass(frozen=True)
class Recipe:
    """How an estimate is made again: ``cost(**request)`` with any argument changed, and ``axes(request)``: the
    smaller variants worth suggesting, one list per kind of change, nearest first; at most ``most`` suggestions
    (None: one per axis). Instruments pass their own, so this module never needs to know which made an estimate."""

    cost: Callable[..., MemoryEstimate]
    axes: Axes
    most: int | None = None


@dataclass(frozen=True)
class MemoryEstimate:
    """The memory one request needs, by part (bytes), with the request that was costed and how to cost it again.

    ``parts``: e.g. parameters, activations kept, gradients, optimizer state, workspace; ``total`` is their
    sum (parts that are never alive at the same time are costed as their maximum before they get here).
    ``request`` holds the keyword arguments of ``recipe.cost`` (the instrument's own cost function), so a
    smaller variant can be costed for a suggestion or a scaled request; ``note`` says what was scaled to fit.
    """

    task: str
    what: str
    parts: dict[str, int]
    request: dict[str, Any] = field(default_factory=dict, compare=False)
    note: str = ""
    recipe: Recipe | None = field(default=None, compare=False, repr=False)

    @property
    def total(self) -> int:
        return int(sum(self.parts.values()))

    def fits(self, budget: int | None = None) -> bool:
        return self.total <= (memory_budget() if budget is None else budget)

    def table(self) -> pd.DataFrame:
        """One row per part: part, bytes, size (words)."""
        rows = [{"part": k, "bytes": int(v), "size": format_bytes(v)} for k, v in self.parts.items()]
        rows.append({"part": "total", "bytes": self.total, "size": format_bytes(self.total)})
        return pd.DataFrame(rows)

    def again(self, **changes: Any) -> MemoryEstimate:
        """The same request with ``changes`` to its arguments, costed by the function that made this one."""
        if self.recipe is None:
            raise ValueError(f"{self.what} was costed by hand and cannot be costed again with other settings.")
        return self.recipe.cost(**{**self.request, **changes})


def _net_words(model: nn.Module | str, options: dict[str, Any] | None) -> str:
    name = model if isinstance(model, str) else card_of(model).arch
    opts = dict(options or {}) if isinstance(model, str) else dict(card_of(model).arch_options or {})
    if name is None:
        return "this net"
    try:
        label = display_name(name, bool(opts.get("residual", True)))
    except ValueError:
        return str(name)
    return label + (f" (width {opts['width']})" if opts.get("width") else "")


def _default_size(model: nn.Module | str) -> int:
    if isinstance(model, str):
        return get_spec(model).input_size
    prep = card_of(model).preprocessing
    if prep is not None and getattr(prep, "crop", None):
        return int(prep.crop)
    name = card_of(model).arch
    return get_spec(name).input_size if name in ARCHITECTURES else 224


def image_side(image_size: InputSize) -> int:
    """The side an image size is named by in words: an int itself, else its last entry (the width)."""
    return int(image_size) if isinstance(image_size, int) else int(tuple(image_size)[-1])


# ------------------------------------------------------------------------------------------ building blocks


@dataclass(frozen=True)
class NetCost:
    """One request on one net, resolved for costing: the net's profile at the request's input size, and the
    parts every estimate on a net is summed from (bytes for the whole batch). An instrument's cost adds its own
    parts and calls ``estimate``; ``request`` holds the arguments as given, so the estimate can be made again."""

    request: dict[str, Any]
    profile: LayerProfile
    batch: int
    size: InputSize
    builds: bool
    net: str  # the net in words, e.g. "ResNet-20 (width 8)"

    @property
    def px(self) -> int:
        return image_side(self.size)

    @property
    def model_bytes(self) -> int:
        return self.profile.param_bytes + self.profile.buffer_bytes

    def bytes(self, elements: int) -> int:
        """Bytes of ``elements`` float32 values per sample, for the whole batch."""
        return elements * self.batch * FLOAT_BYTES

    def inputs(self) -> dict[str, int]:
        """Where every estimate on a net starts: the weights when the request builds the net (an existing
        model is already paid for), then the input batch."""
        weights = {"parameters and buffers": self.model_bytes} if self.builds else {}
        return {**weights, "input": self.bytes(self.profile.input_numel)}

    def no_grad_forward(self) -> dict[str, int]:
        """A forward without autograd: a few tensors of the largest layer output alive at once."""
        return {"live activations": self.bytes(LIVE_FORWARD * self.profile.largest)}

    def forward_backward(self, copies: int = 1) -> dict[str, int]:
        """A forward whose layer outputs are kept for a backward, and the backward's working set; ``copies``
        inputs per image go through at once (integrated gradients' scaled copies)."""
        return {"activations kept for backward": self.bytes(self.profile.kept) * copies,
                "backward working set": self.bytes(LIVE_BACKWARD * self.profile.largest) * copies}

    def estimate(self, task: str, what: str, parts: dict[str, int], cost: Callable[..., MemoryEstimate],
                 axes: Axes | None = None, most: int | None = 2) -> MemoryEstimate:
        """The estimate, made again by ``cost(**request)``; suggestions along ``axes`` (default ``net_axes``)."""
        return MemoryEstimate(task, what, parts, dict(self.request), recipe=Recipe(cost, axes or net_axes, most))


def net_cost(model: nn.Module | str, *, batch: int = 1, image_size: InputSize | None = None,
             options: dict[str, Any] | None = None, builds: bool | None = None, **extra: Any) -> NetCost:
    """Resolve a request on ``model`` (a registry name with ``options``, or a model) for ``batch`` images of
    ``image_size`` (side, (H, W), (C, H, W); default the net's own input size). ``builds``: count the net's own
    parameters (default: True for a name, False for a model that already exists). ``extra``: the instrument's
    own arguments, kept in the request so that a smaller variant is costed with them too. Pass the cost
    function's own arguments as given: ``NetCost.estimate`` replays that function with this request."""
    batch = max(1, int(batch))
    size = image_size if image_size is not None else _default_size(model)
    request = {"model": model, "batch": batch, "image_size": image_size, "options": options, "builds": builds,
               **extra}
    return NetCost(request, layer_profile(model, size, options), batch, size,
                   isinstance(model, str) if builds is None else builds, _net_words(model, options))


def halvings(value: int, floor: int) -> list[int]:
    """``value`` halved again and again while it stays at or above ``floor``: the values a smaller variant tries."""
    out = []
    while value // 2 >= floor:
        value //= 2
        out.append(value)
    return out


def _smaller_archs(name: str) -> list[str]:
    """Shallower nets of the same stem and family as ``name``, deepest first."""
    spec = get_spec(name)
    same = [s for s in ARCHITECTURES.values() if s.stem == spec.stem and s.family == spec.family
            and s.depth < spec.depth]
    return [s.name for s in sorted(same, key=lambda s: -s.depth)]


def batch_and_size_axes(request: dict[str, Any]) -> list[list[Variant]]:
    """Fewer images at a time (when there are several) and a smaller input, each halved from the request's."""
    axes: list[list[Variant]] = []
    if request["batch"] > 1:
        axes.append([({"batch": b}, f"batch {b}", {"batch": b}) for b in halvings(request["batch"], 1)])
    size = request["image_size"]
    side = image_side(size) if size is not None else _default_size(request["model"])
    axes.append([({"image_size": s}, f"{s} px", {"image_size": s}) for s in halvings(side, 16)])
    return axes


def net_axes(request: dict[str, Any]) -> list[list[Variant]]:
    """``batch_and_size_axes``, then for a registry net a narrower one and a shallower one of its family."""
    axes = batch_and_size_axes(request)
    model = request["model"]
    name = model if isinstance(model, str) else card_of(model).arch
    if name in ARCHITECTURES:
        opts = dict(request["options"] or {}) if isinstance(model, str) else dict(card_of(model).arch_options)
        base = get_spec(name).base_width
        current = int(opts.get("width") or base)
        axes.append([({"width": w}, f"width {w}", {"model": name, "options": {**opts, "width": w}})
                     for w in halvings(current, max(1, base // 4))])
        axes.append([({"arch": a}, display_name(a, bool(opts.get("residual", True))), {"model": a, "options": opts})
                     for a in _smaller_archs(name)])
    return axes


# ------------------------------------------------------------------------------------------ generic tasks
# Not instruments: what building a net, running it, or training it one step costs (the weights wing, the
# sidebar and the instruments' own costs stand on these).


def estimate_build(model: nn.Module | str, *, batch: int = 1, image_size: InputSize | None = None,
                   options: dict[str, Any] | None = None, builds: bool | None = None) -> MemoryEstimate:
    """Building ``model``: its parameters and buffers."""
    net = net_cost(model, batch=batch, image_size=image_size, options=options, builds=builds)
    return net.estimate("build", f"Building {net.net}", {"parameters and buffers": net.model_bytes}, estimate_build)


def estimate_forward(model: nn.Module | str, *, batch: int = 1, image_size: InputSize | None = None,
                     options: dict[str, Any] | None = None, builds: bool | None = None) -> MemoryEstimate:
    """A no-grad (eval) forward of ``batch`` images (arguments as ``net_cost``)."""
    net = net_cost(model, batch=batch, image_size=image_size, options=options, builds=builds)
    return net.estimate("forward", f"A forward pass of {net.net} at {net.px} px (batch {net.batch})",
                        {**net.inputs(), **net.no_grad_forward()}, estimate_forward)


def estimate_backward(model: nn.Module | str, *, batch: int = 1, image_size: InputSize | None = None,
                      options: dict[str, Any] | None = None, builds: bool | None = None) -> MemoryEstimate:
    """A forward and a backward with parameter gradients (arguments as ``net_cost``)."""
    net = net_cost(model, batch=batch, image_size=image_size, options=options, builds=builds)
    parts = {**net.inputs(), **net.forward_backward(), "parameter gradients": net.profile.param_bytes}
    return net.estimate("backward", f"A forward and backward pass of {net.net} at {net.px} px (batch {net.batch})",
                        parts, estimate_backward)


GENERIC_TASKS: dict[str, Callable[..., MemoryEstimate]] = {
    "build": estimate_build, "forward": estimate_forward, "backward": estimate_backward}


def estimate_memory(model: nn.Module | str, task: str, **request: Any) -> MemoryEstimate:
    """Bytes a generic ``task`` (``build``, ``forward`` or ``backward``) needs on ``model``; ``request`` as for
    ``net_cost`` (batch, image_size, options, builds). Instruments cost themselves beside their code (e.g.
    ``probes.gradients.estimate_path_gradients``, a CAM method's ``cost``); races: ``estimate_race``."""
    cost = GENERIC_TASKS.get(task)
    if cost is None:
        raise ValueError(f"Unknown task {task!r}; choose one of {', '.join(GENERIC_TASKS)} (an instrument costs "
                         f"itself with its own estimate; races: estimate_race).")
    return cost(model, **request)


def estimate_race(config: Any, *, classes: int = 10) -> MemoryEstimate:
    """Bytes a training race needs (``config``: a ``train.RaceConfig``): the data held in memory, and for each
    racer its parameters, gradients and optimizer state (SGD momentum: 1x the parameters); on top the largest
    racer's training activations (batch x image size, all kept for backward) or evaluation pass (256 images,
    no grad), whichever is larger. On a GPU racers train one after the other, so one racer's activations live;
    on a CPU with several threads they train side by side (one worker thread each, ``train.engine``), so the
    activations of as many racers as there are threads live at once. AMP (on CUDA) halves the activation bytes.
    """
    size, batch = int(config.image_size), int(config.batch_size)
    amp = str(getattr(config, "device", "cpu")).startswith("cuda")
    act_bytes = 2 if amp else FLOAT_BYTES
    state = 0
    per_racer: list[int] = []
    for racer in config.racers:
        opts = racer.build_options(config.width, classes)
        prof = layer_profile(racer.arch, size, opts)
        momentum = 1 if float(getattr(config, "momentum", 0.9)) else 0
        state += prof.param_bytes * (2 + momentum) + prof.buffer_bytes
        train = (prof.kept + LIVE_BACKWARD * prof.largest + prof.input_numel) * batch * act_bytes
        evaluate = (LIVE_FORWARD * prof.largest + prof.input_numel) * min(256, int(config.eval_samples)) * act_bytes
        per_racer.append(max(train, evaluate))
    device = str(getattr(config, "device", "cpu"))
    side_by_side = not device.startswith(("cuda", "mps")) and torch.get_num_threads() >= 2
    live = min(len(per_racer), torch.get_num_threads()) if side_by_side else 1
    activations = sum(sorted(per_racer, reverse=True)[:live])
    n_train = config.n_train if config.n_train is not None else 10_000
    n_test = config.n_test if config.n_test is not None else 2_000
    per_image = 3 * size * size * FLOAT_BYTES + size * size  # Shapes: float32 RGB and a bool mask
    parts = {"data in memory": int((n_train + n_test) * per_image),
             "parameters, gradients and momentum": int(state),
             "activations of the racers training at once": int(activations)}
    if config.dataset == "shapes":
        # Shapes are drawn in chunks of up to 4,096 images (at least the 2,048 its statistics are measured on),
        # about 20 float planes per image while drawing (measured): transient, before any net is built, so
        # only what exceeds the training peak counts.
        chunk = max(2048, min(max(n_train, n_test), 4096))
        drawing = chunk * SHAPES_DRAW_PLANES * size * size * FLOAT_BYTES
        parts["drawing the data (beyond the training peak)"] = int(max(0, drawing - state - activations))
    racers = " vs ".join(r.label for r in config.racers)
    width = f", width {config.width}" if config.width else ""
    what = f"The race {racers} (batch {batch}, {size} px{width})"
    return MemoryEstimate("race", what, parts, {"config": config, "classes": classes},
                          recipe=Recipe(_race_variant, _race_axes))


def _race_variant(config: Any, classes: int = 10, **changes: Any) -> MemoryEstimate:
    # The config is replaced here, not when the axes are listed: a RaceConfig that refuses a value raises
    # ValueError while it is costed, and that variant is skipped.
    return estimate_race(replace(config, **changes), classes=classes)


def _race_axes(request: dict[str, Any]) -> list[list[Variant]]:
    config = request["config"]
    axes = [[({"batch_size": b}, f"batch {b}", {"batch_size": b}) for b in halvings(config.batch_size, 2)],
            [({"image_size": s}, f"{s} px", {"image_size": s}) for s in halvings(config.image_size, 8)]]
    if config.width:
        axes.append([({"width": w}, f"width {w}", {"width": w}) for w in halvings(config.width, 2)])
    return axes


# ------------------------------------------------------------------------------------------ refusing, scaling


def _first_fit(estimate: MemoryEstimate, variants: list[Variant], budget: int) -> Suggestion | None:
    for changes, words, arguments in variants:
        try:
            smaller = estimate.again(**arguments)
        except ValueError:
            continue  # a variant its instrument refuses (e.g. a race setting out of range) is no suggestion
        if smaller.total <= budget:
            return Suggestion(changes, words, smaller.total)
    return None


def suggestions_for(estimate: MemoryEstimate, budget: int | None = None) -> list[Suggestion]:
    """The nearest settings that fit ``budget``, at most one per kind of change (the axes the estimate's recipe
    names: e.g. batch, image size, width, shallower net), nearest first along each; empty when nothing smaller
    fits or the estimate has no recipe."""
    budget = memory_budget() if budget is None else budget
    if estimate.recipe is None:
        return []
    axes = estimate.recipe.axes(dict(estimate.request))
    found = [s for s in (_first_fit(estimate, axis, budget) for axis in axes) if s is not None]
    return found if estimate.recipe.most is None else found[:estimate.recipe.most]


def require_within_budget(estimate: MemoryEstimate, budget: int | None = None,
                          suggestions: list[Suggestion] | None = None) -> MemoryEstimate:
    """Return ``estimate`` when it fits the budget; else raise BudgetError naming the cost and the nearest
    settings that fit (``suggestions``, or found by ``suggestions_for``). Nothing is allocated either way."""
    budget = memory_budget() if budget is None else budget
    if estimate.total <= budget:
        return estimate
    found = suggestions if suggestions is not None else suggestions_for(estimate, budget)
    raise BudgetError(estimate.what, estimate.total, budget, list(found))


def scale_to_budget(estimate: MemoryEstimate, knob: str, floor: int = 1, budget: int | None = None, *,
                    unit: str = "images per batch") -> MemoryEstimate:
    """The estimate with its request's ``knob`` (e.g. "batch") halved until it fits, with a note saying so
    ("Scaled to 4 {unit} ..."); raises BudgetError (with suggestions) when even ``floor`` does not fit."""
    budget = memory_budget() if budget is None else budget
    if estimate.total <= budget:
        return estimate
    start = int(estimate.request.get(knob) or 1)
    for value in halvings(start, floor) if estimate.recipe is not None else []:
        smaller = estimate.again(**{knob: value})
        if smaller.total <= budget:
            note = (f"Scaled to {value} {unit} (from {start}) to stay within the memory budget of "
                    f"{format_bytes(budget)}.")
            return replace_estimate(smaller, note)
    return require_within_budget(estimate, budget)


def in_chunks(model: nn.Module, inputs_shape: tuple[int, ...] | torch.Size,
              whole: Callable[[int, tuple[int, ...]], MemoryEstimate]) -> MemoryEstimate:
    """An instrument that runs no-grad forwards over a batch of ``inputs_shape`` in chunks: the chunk is what a
    forward alone allows within the budget (its note says so), ``whole(chunk, image_size)`` costs the whole
    instrument at that chunk, and that is checked against the budget. Raises ``BudgetError`` when even one image
    does not fit."""
    n, *image = (int(v) for v in inputs_shape)
    chunk = scale_to_budget(estimate_forward(model, batch=n, image_size=tuple(image), builds=False), "batch")
    return require_within_budget(replace_estimate(whole(chunk.request["batch"], tuple(image)), chunk.note), None, [])


def replace_estimate(estimate: MemoryEstimate, note: str) -> MemoryEstimate:
    """A copy of ``estimate`` (its recipe kept) with ``note``."""
    return replace(estimate, parts=dict(estimate.parts), request=dict(estimate.request), note=note)
