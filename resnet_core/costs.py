"""What a request will cost before it is made: memory estimates from a meta-device model's shapes, the budget
check that refuses or scales a request, and the nearest settings that fit (DESIGN.md, "Cost before work").

``describe`` re-exports every name here, so ``from resnet_core.describe import estimate_memory`` still works.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
LIVE_FORWARD = 4  # largest-layer tensors alive at once in a no-grad forward
LIVE_BACKWARD = 4  # largest-layer gradient tensors alive at once in a backward
SHAPES_DRAW_PLANES = 20  # float planes per image while the Shapes set is drawn (measured: 19)
TASKS = ("build", "forward", "backward", "activations", "compare_activations", "gradient_norms", "path_gradients",
         "compare_path_gradients", "block_gradients", "depth_sweep", "gradcam", "guided_gradcam",
         "integrated_gradients", "race")
_TASK_WORDS = {
    "build": "Building {net}",
    "forward": "A forward pass of {net} at {px} px (batch {batch})",
    "backward": "A forward and backward pass of {net} at {px} px (batch {batch})",
    "activations": "Recording the activations of {net} at {px} px (batch {batch})",
    "compare_activations": "Comparing the activations of {net} and its twin at {px} px (batch {batch})",
    "gradient_norms": "Gradient norms of {net} at {px} px (batch {batch})",
    "path_gradients": "Gradient flow on {net} at {px} px (batch {batch})",
    "compare_path_gradients": "Gradient flow on {net} and its twin at {px} px (batch {batch})",
    "block_gradients": "Block-input gradients of {net} at {px} px (batch {batch})",
    "gradcam": "Grad-CAM on {net} at {px} px",
    "guided_gradcam": "Guided Grad-CAM on {net} at {px} px",
    "integrated_gradients": "Integrated gradients on {net} at {px} px ({steps} steps, {chunk} at a time)",
}


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


@dataclass(frozen=True)
class MemoryEstimate:
    """The memory one request needs, by part (bytes), with the request that was costed.

    ``parts``: e.g. parameters, activations kept, gradients, optimizer state, workspace; ``total`` is their
    sum (parts that are never alive at the same time are costed as their maximum before they get here).
    ``request`` holds the arguments of ``estimate_memory`` (or ``estimate_race``) so a smaller variant can be
    costed for a suggestion; ``note`` says what was scaled to fit, if anything.
    """

    task: str
    what: str
    parts: dict[str, int]
    request: dict[str, Any] = field(default_factory=dict, compare=False)
    note: str = ""

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


def _side(image_size: InputSize) -> int:
    return int(image_size) if isinstance(image_size, int) else int(tuple(image_size)[-1])


def estimate_memory(model: nn.Module | str | None, task: str, *, batch: int = 1, image_size: InputSize | None = None,
                    options: dict[str, Any] | None = None, builds: bool | None = None, twin: bool = False,
                    layers_kept: int | None = None, ig_steps: int = 16, ig_chunk: int | None = None,
                    depths: Sequence[int] | None = None, family: str = "cifar", width: int | None = None
                    ) -> MemoryEstimate:
    """Bytes ``task`` needs on ``model`` (a registry name with ``options``, or a model) for ``batch`` images of
    ``image_size`` (side, (H, W), (C, H, W); default the net's own input size).

    Tasks: ``build`` (parameters and buffers), ``forward`` (no-grad eval), ``backward`` (forward and backward
    with parameter gradients), the instruments ``activations``, ``compare_activations``, ``gradient_norms``,
    ``path_gradients``, ``compare_path_gradients``, ``depth_sweep`` (``depths`` of ``family`` at ``width``;
    ``model`` is ignored), and the explanations ``gradcam``, ``guided_gradcam``, ``integrated_gradients``
    (``ig_steps`` scaled inputs, ``ig_chunk`` at a time). ``builds``: count the model's own parameters (default:
    True for a name, False for a model that already exists). ``twin``: the twin is run too (instruments on two
    nets run one after the other; only the larger costs). Races: ``estimate_race``.
    """
    if task not in TASKS or task == "race":
        raise ValueError(f"Unknown task {task!r}; choose one of {', '.join(t for t in TASKS if t != 'race')} "
                         f"(races: estimate_race).")
    batch = max(1, int(batch))
    request = {"model": model, "task": task, "batch": batch, "image_size": image_size, "options": options,
               "builds": builds, "twin": twin, "layers_kept": layers_kept, "ig_steps": ig_steps,
               "ig_chunk": ig_chunk, "depths": depths, "family": family, "width": width}
    if task == "depth_sweep":
        return _estimate_sweep(request)
    size = image_size if image_size is not None else _default_size(model)
    prof = layer_profile(model, size, options)
    builds = isinstance(model, str) if builds is None else builds
    f = FLOAT_BYTES
    act = lambda n: n * batch * f  # noqa: E731  (elements per sample -> bytes for the batch)
    parts: dict[str, int] = {}
    if builds or task == "build":
        parts["parameters and buffers"] = prof.param_bytes + prof.buffer_bytes
    if task != "build":
        parts["input"] = act(prof.input_numel)
    forward_peak = act(LIVE_FORWARD * prof.largest)
    kept = act(prof.kept)
    backward_work = act(LIVE_BACKWARD * prof.largest)
    if task == "forward":
        parts["live activations"] = forward_peak
    elif task in ("activations", "compare_activations"):
        parts["live activations"] = forward_peak
        # Bounded maps (16 channels of 32x32 of one sample, the page's defaults) per recorded layer.
        parts["kept maps and statistics"] = (layers_kept or len(prof.outputs)) * 16 * 32 * 32 * f
    elif task == "backward":
        parts["activations kept for backward"] = kept
        parts["backward working set"] = backward_work
        parts["parameter gradients"] = prof.param_bytes
    elif task == "gradient_norms":
        parts["activations kept for backward"] = kept
        parts["backward working set"] = backward_work
        parts["parameter gradients"] = prof.param_bytes
        parts["returned layer gradients"] = act(sum(prof.block_inputs))
    elif task in ("path_gradients", "compare_path_gradients"):
        parts["activations kept for backward"] = kept
        parts["backward working set"] = backward_work
        # Gradients at every block input, its split point and both paths, returned together.
        parts["returned block gradients"] = act(3 * sum(prof.block_inputs))
    elif task == "block_gradients":  # one gradient per block input, as in a depth sweep
        parts["activations kept for backward"] = kept
        parts["backward working set"] = backward_work
        parts["returned block gradients"] = act(sum(prof.block_inputs))
    elif task == "gradcam":
        parts["activations kept for backward"] = kept
        parts["backward working set"] = backward_work
    elif task == "guided_gradcam":
        parts["activations kept for backward"] = kept
        parts["backward working set"] = backward_work
        parts["input gradients"] = act(2 * prof.input_numel)
    elif task == "integrated_gradients":
        chunk = max(1, min(int(ig_steps), int(ig_chunk or ig_steps)))
        request["ig_chunk"] = chunk
        parts["scaled inputs"] = act(2 * prof.input_numel * int(ig_steps))
        parts["activations kept for backward"] = kept * chunk
        parts["backward working set"] = backward_work * chunk
    px = _side(size)
    words = _TASK_WORDS[task].format(net=_net_words(model, options), px=px, batch=batch, steps=ig_steps,
                                     chunk=request["ig_chunk"])
    return MemoryEstimate(task, words, parts, request)


def _estimate_sweep(request: dict[str, Any]) -> MemoryEstimate:
    depths, family, width, batch = request["depths"], request["family"], request["width"], request["batch"]
    if depths is None:
        depths = (20, 32, 44, 56, 110) if family == "cifar" else (18, 34, 50, 101, 152)
    size = request["image_size"] or (32 if family == "cifar" else 224)
    worst: dict[str, int] = {}
    for depth in depths:
        name = f"resnet{int(depth)}"
        if name not in ARCHITECTURES:
            continue
        for residual in (True, False):
            opts: dict[str, Any] = {"residual": residual}
            if width is not None:
                opts["width"] = width
            prof = layer_profile(name, size, opts)
            f = FLOAT_BYTES * batch
            parts = {"parameters and buffers": prof.param_bytes + prof.buffer_bytes,
                     "input": prof.input_numel * f,
                     "activations kept for backward": prof.kept * f,
                     "backward working set": LIVE_BACKWARD * prof.largest * f,
                     "returned block gradients": sum(prof.block_inputs) * f}
            if sum(parts.values()) > sum(worst.values()):
                worst = parts
    deepest = max((int(d) for d in depths), default=0)
    what = (f"A depth sweep to ResNet-{deepest} at {_side(size)} px (batch {batch}"
            + (f", width {width})" if width else ")"))
    return MemoryEstimate("depth_sweep", what, worst, request)


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
    return MemoryEstimate("race", what, parts, {"race": config, "classes": classes})


# ------------------------------------------------------------------------------------------ refusing, scaling


def _halvings(value: int, floor: int) -> list[int]:
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


def _first_fit(variants: list[tuple[dict[str, Any], str, Callable[[], MemoryEstimate]]], budget: int
               ) -> Suggestion | None:
    for changes, words, cost in variants:
        try:
            estimate = cost()
        except ValueError:
            continue
        if estimate.total <= budget:
            return Suggestion(changes, words, estimate.total)
    return None


def suggestions_for(estimate: MemoryEstimate, budget: int | None = None) -> list[Suggestion]:
    """The nearest settings that fit ``budget``, at most one per kind of change (image size, batch, width,
    shallower net), nearest first along each; empty when nothing smaller fits."""
    budget = memory_budget() if budget is None else budget
    req = dict(estimate.request)
    axes: list[list[tuple[dict[str, Any], str, Callable[[], MemoryEstimate]]]] = []
    if estimate.task == "race":
        config, classes = req["race"], req["classes"]
        from dataclasses import replace

        def race_with(**changes: Any) -> Callable[[], MemoryEstimate]:
            return lambda: estimate_race(replace(config, **changes), classes=classes)

        axes.append([({"batch_size": b}, f"batch {b}", race_with(batch_size=b))
                     for b in _halvings(config.batch_size, 2)])
        axes.append([({"image_size": s}, f"{s} px", race_with(image_size=s))
                     for s in _halvings(config.image_size, 8)])
        if config.width:
            axes.append([({"width": w}, f"width {w}", race_with(width=w)) for w in _halvings(config.width, 2)])
        return [s for s in (_first_fit(axis, budget) for axis in axes) if s is not None]

    def with_(**changes: Any) -> Callable[[], MemoryEstimate]:
        return lambda: estimate_memory(**{**req, **changes})

    model = req.pop("model")
    req["model"] = model
    task = estimate.task
    size = req["image_size"]
    side = _side(size) if size is not None else (None if task == "depth_sweep" else _default_size(model))
    if task == "integrated_gradients":
        axes.append([({"ig_steps": n}, f"{n} integration steps", with_(ig_steps=n, ig_chunk=None))
                     for n in _halvings(req["ig_steps"], 2)])
    if task == "depth_sweep":
        axes.append([({"batch": b}, f"batch {b}", with_(batch=b)) for b in _halvings(req["batch"], 2)])
        start = side or (32 if req["family"] == "cifar" else 224)
        axes.append([({"image_size": s}, f"{s} px", with_(image_size=s)) for s in _halvings(start, 16)])
        depths = sorted(int(d) for d in (req["depths"] or ()))
        if len(depths) > 1:
            axes.append([({"depths": tuple(depths[:k])}, f"depths up to {depths[k - 1]}",
                          with_(depths=tuple(depths[:k]))) for k in range(len(depths) - 1, 0, -1)])
        return [s for s in (_first_fit(axis, budget) for axis in axes) if s is not None]
    if req["batch"] > 1:
        axes.append([({"batch": b}, f"batch {b}", with_(batch=b)) for b in _halvings(req["batch"], 1)])
    if side is not None:
        axes.append([({"image_size": s}, f"{s} px", with_(image_size=s)) for s in _halvings(side, 16)])
    name = model if isinstance(model, str) else card_of(model).arch
    if name in ARCHITECTURES:
        opts = dict(req["options"] or {}) if isinstance(model, str) else dict(card_of(model).arch_options)
        base = get_spec(name).base_width
        current = int(opts.get("width") or base)
        axes.append([({"width": w}, f"width {w}", with_(model=name, options={**opts, "width": w}))
                     for w in _halvings(current, max(1, base // 4))])
        axes.append([({"arch": a}, display_name(a, bool(opts.get("residual", True))),
                      with_(model=a, options=opts)) for a in _smaller_archs(name)])
    return [s for s in (_first_fit(axis, budget) for axis in axes) if s is not None][:2]


def require_within_budget(estimate: MemoryEstimate, budget: int | None = None,
                          suggestions: list[Suggestion] | None = None) -> MemoryEstimate:
    """Return ``estimate`` when it fits the budget; else raise BudgetError naming the cost and the nearest
    settings that fit (``suggestions``, or found by ``suggestions_for``). Nothing is allocated either way."""
    budget = memory_budget() if budget is None else budget
    if estimate.total <= budget:
        return estimate
    found = suggestions if suggestions is not None else suggestions_for(estimate, budget)
    raise BudgetError(estimate.what, estimate.total, budget, list(found))


def scale_to_budget(estimate: MemoryEstimate, knob: str, floor: int = 1, budget: int | None = None
                    ) -> MemoryEstimate:
    """The estimate with ``knob`` ("batch" or "ig_chunk") halved until it fits, with a note saying so; raises
    BudgetError (with suggestions) when even ``floor`` does not fit."""
    budget = memory_budget() if budget is None else budget
    if estimate.total <= budget:
        return estimate
    req = dict(estimate.request)
    start = int(req[knob] or req.get("ig_steps") or 1)
    for value in _halvings(start, floor):
        smaller = estimate_memory(**{**req, knob: value})
        if smaller.total <= budget:
            what = "images at a time" if knob == "ig_chunk" else "images per batch"
            note = (f"Scaled to {value} {what} (from {start}) to stay within the memory budget of "
                    f"{format_bytes(budget)}.")
            return replace_estimate(smaller, note)
    return require_within_budget(estimate, budget)


def replace_estimate(estimate: MemoryEstimate, note: str) -> MemoryEstimate:
    return MemoryEstimate(estimate.task, estimate.what, dict(estimate.parts), dict(estimate.request), note)
