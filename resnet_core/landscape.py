"""Loss landscapes (Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets"): the loss on a fixed batch
along random, filter-normalised directions around a model's weights, and along the straight line between two
models (Goodfellow et al. 2015).

::

    grid = surface(model, images, labels, steps=21, span=1.0, seed=0)   # columns alpha, beta, loss, accuracy
    cut = line(model, images, labels)                                   # the beta = 0 row of that grid
    path = line(initial, images, labels, to=trained)                     # alpha 0: initial, 1: trained

As the paper's figures were made (``--xnorm filter --xignore biasbn``, ``dir_type='weights'``):

* a direction draws ``randn`` for every parameter in ``named_parameters`` order (from a local generator seeded
  with ``seed``), then rescales each output filter (row of dimension 0) to the norm of the weight filter it
  belongs to; every parameter of one dimension (biases, batch-norm scale and shift) gets a zero direction;
* batch-norm running statistics are not part of a direction: they stay fixed, and every point is evaluated
  in eval mode.

The model is never touched: its parameters and buffers are copied once (under its lock) into a private copy,
and every point runs ``torch.func.functional_call`` on that copy with the perturbed parameters. A shared model
keeps its weights, buffers and train/eval mode exactly, even when a progress callback raises half-way.
Each point costs one forward pass of the batch.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .costs import (
    MemoryEstimate,
    Recipe,
    batch_and_size_axes,
    estimate_forward,
    in_chunks,
)
from .hooks import model_lock
from .models import InputSize, conv_layout

# on_progress(done, total): called after each evaluated point.
Progress = Callable[[int, int], None]
MAX_STEPS = 101
FILTER_EPS = 1e-10  # as in the reference code's normalize_direction

__all__ = ["LandscapeError", "MAX_STEPS", "directions", "estimate", "join_ranks", "launch_ranks", "leave_ranks", "line",
           "surface"]


class LandscapeError(ValueError):
    """A landscape request that cannot be made as asked; ``str(error)`` is one sentence."""


# ---------------------------------------------------------------------------------------------- inputs
def _check(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, steps: int, span: float) -> None:
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 4 or inputs.shape[0] < 1:
        raise LandscapeError("The inputs must be one batch of images, shaped (N, C, H, W) with N >= 1; "
                             "pass a stacked batch.")
    if not isinstance(targets, torch.Tensor) or targets.dim() != 1 or targets.shape[0] != inputs.shape[0]:
        raise LandscapeError(f"The targets must be one class index per image ({inputs.shape[0]} here); "
                             "pass a 1-D tensor of labels as long as the batch.")
    if targets.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise LandscapeError("The targets must be integer class indices; pass labels, not scores.")
    if not isinstance(steps, int) or not 2 <= steps <= MAX_STEPS:
        raise LandscapeError(f"steps must be a whole number from 2 to {MAX_STEPS}, got {steps!r}; "
                             "21 is the interactive grid.")
    if not (isinstance(span, int | float) and math.isfinite(span) and span > 0):
        raise LandscapeError(f"span must be a positive number, got {span!r}; 1.0 is the paper's range.")
    if not any(True for _ in model.parameters()):
        raise LandscapeError("This model has no parameters, so it has no loss landscape; pass a trained net.")


def estimate(model: nn.Module, inputs_shape: tuple[int, ...] | torch.Size, *, twin: bool = False
             ) -> MemoryEstimate:
    """Memory a landscape of ``model`` on a batch of ``inputs_shape`` needs, scaled to fit the budget.

    A forward of the batch (in chunks when the whole batch does not fit: ``request["batch"]`` is the chunk),
    plus the private copy, two directions and one perturbed set of parameters (``twin``: a second model's
    weights and buffers for ``line(..., to=...)``). Raises ``BudgetError`` when even one image does not fit.
    """
    # The chunk is what the forward alone allows; the weights' copies are added on top and checked as a whole.
    return in_chunks(model, inputs_shape, lambda batch, size: _grid_cost(model, batch=batch, image_size=size,
                                                                         twin=twin))


def _grid_cost(model: nn.Module, *, batch: int, image_size: InputSize, twin: bool) -> MemoryEstimate:
    """A landscape's points evaluated ``batch`` images at a time, neither scaled nor checked: the recipe of
    ``estimate``'s result, so a smaller chunk or input can be costed for a suggestion."""
    forward = estimate_forward(model, batch=batch, image_size=image_size, builds=False)
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    buffer_bytes = sum(b.numel() * b.element_size() for b in model.buffers())
    parts = dict(forward.parts)
    parts["private copy of the weights"] = param_bytes + buffer_bytes
    parts["directions and perturbed weights"] = 3 * param_bytes + (param_bytes + buffer_bytes if twin else 0)
    what = forward.what.replace("A forward pass of", "A loss landscape of", 1)
    request = {"model": model, "batch": forward.request["batch"], "image_size": image_size, "twin": twin}
    return MemoryEstimate("forward", what, parts, request, recipe=Recipe(_grid_cost, batch_and_size_axes, 2))


# ------------------------------------------------------------------------------------------- directions
def directions(model: nn.Module, *, seed: int = 0, count: int = 2) -> list[dict[str, torch.Tensor]]:
    """``count`` filter-normalised random directions for ``model``'s parameters (name -> tensor).

    Each is drawn from one ``torch.Generator`` seeded with ``seed`` (on the CPU, so every device gets the same
    numbers), one ``randn`` per parameter; a filter (slice along dimension 0) of a parameter with two or more
    dimensions is rescaled to the norm of the same filter of the weights; parameters of one dimension get zeros.
    """
    generator = torch.Generator().manual_seed(int(seed))
    params = [(name, p.detach()) for name, p in model.named_parameters()]
    found = []
    for _ in range(count):
        drawn = [torch.randn(p.shape, generator=generator, dtype=torch.float32) for _, p in params]
        direction: dict[str, torch.Tensor] = {}
        for (name, weight), d in zip(params, drawn, strict=True):
            d = d.to(device=weight.device, dtype=weight.dtype)
            if weight.dim() <= 1:
                direction[name] = torch.zeros_like(weight)  # --xignore biasbn
                continue
            w_norm = weight.flatten(1).norm(dim=1)
            d_norm = d.flatten(1).norm(dim=1)
            scale = (w_norm / (d_norm + FILTER_EPS)).view(-1, *([1] * (d.dim() - 1)))
            direction[name] = d * scale
        found.append(direction)
    return found


# ------------------------------------------------------------------------------------------- evaluation
class _Probe:
    """A private eval-mode copy of a model and a fixed batch; ``at(params)`` is (loss, accuracy) there."""

    def __init__(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, chunk: int) -> None:
        with model_lock(model):  # a consistent snapshot of a model other sessions may be using
            self.copy = copy.deepcopy(model)
        self.copy.eval()
        for p in self.copy.parameters():
            p.requires_grad_(False)
        self.device = next(self.copy.parameters()).device
        self.inputs = conv_layout(inputs.to(self.device))
        self.targets = targets.to(self.device, torch.int64)
        self.chunk = max(1, int(chunk))
        classes = getattr(getattr(self.copy, "fc", None), "out_features", None)
        if classes is not None and (int(self.targets.min()) < 0 or int(self.targets.max()) >= classes):
            raise LandscapeError(f"The labels must be class indices from 0 to {classes - 1} for this net; "
                                 "pass labels of the data the net was trained on.")
        self.base = {name: p.detach() for name, p in self.copy.named_parameters()}

    def at(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor] | None = None
           ) -> tuple[float, float]:
        state = params if buffers is None else {**params, **buffers}
        loss_sum, correct = 0.0, 0
        with torch.no_grad():
            for start in range(0, self.inputs.shape[0], self.chunk):
                x = self.inputs[start:start + self.chunk]
                y = self.targets[start:start + self.chunk]
                logits = torch.func.functional_call(self.copy, state, (x,)).float()
                loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
                correct += int((logits.argmax(1) == y).sum())
        n = self.inputs.shape[0]
        return loss_sum / n, correct / n

    def shifted(self, steps: list[tuple[float, dict[str, torch.Tensor]]]) -> dict[str, torch.Tensor]:
        """The weights plus sum(coefficient * direction); a zero direction or coefficient leaves a weight as is."""
        out = {}
        for name, weight in self.base.items():
            moved = weight
            for coefficient, direction in steps:
                d = direction[name]
                if coefficient != 0.0 and d.dim() > 1:
                    moved = torch.add(moved, d, alpha=coefficient)
            out[name] = moved
        return out


def _grid(steps: int, low: float, high: float) -> list[float]:
    # numpy's linspace puts an exact 0.0 at the centre of a symmetric odd grid (the model itself).
    return [float(v) for v in np.linspace(low, high, steps)]


def surface(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, steps: int = 21,
            span: float = 1.0, seed: int = 0, on_progress: Progress | None = None,
            distributed: bool = False) -> pd.DataFrame:
    """The loss and accuracy on a plane through the weights: theta + alpha d1 + beta d2.

    ``d1``, ``d2``: :func:`directions` (``seed``); alpha and beta on ``steps`` evenly spaced values from
    -``span`` to ``span`` (an odd ``steps`` contains 0, the model itself). Cross-entropy averaged over the fixed
    batch (``inputs``, ``targets``), eval mode, running statistics fixed. One row per point, beta outer,
    alpha inner; columns alpha, beta, loss, accuracy. ``on_progress(done, total)`` after every point.

    ``distributed=True`` (every rank of an initialised ``torch.distributed`` group calls it with the same
    arguments, as the reference code splits its grid over MPI ranks): rank r evaluates the points r, r + world,
    r + 2 world, ... and the ranks sum their results into one surface, which every rank returns. Each point is
    the same computation as in one process; ``on_progress`` counts this rank's points.
    """
    _check(model, inputs, targets, steps, span)
    cost = estimate(model, inputs.shape)
    probe = _Probe(model, inputs, targets, cost.request["batch"])
    d1, d2 = directions(probe.copy, seed=seed, count=2)
    values = _grid(steps, -float(span), float(span))
    points = [(alpha, beta) for beta in values for alpha in values]
    rank, world = _rank_and_world() if distributed else (0, 1)
    mine = range(rank, len(points), world)
    # float64 (the Python floats of one process), and 0 where another rank measures: the sum is exact.
    measured = torch.zeros(len(points), 2, dtype=torch.float64)
    for done, index in enumerate(mine, 1):
        alpha, beta = points[index]
        measured[index] = torch.tensor(probe.at(probe.shifted([(alpha, d1), (beta, d2)])), dtype=torch.float64)
        if on_progress is not None:
            on_progress(done, len(mine))
    if world > 1:
        measured = _summed_over_ranks(measured, probe.device)
    return pd.DataFrame([{"alpha": alpha, "beta": beta, "loss": float(loss), "accuracy": float(accuracy)}
                         for (alpha, beta), (loss, accuracy) in zip(points, measured.tolist(), strict=True)],
                        columns=["alpha", "beta", "loss", "accuracy"])


# ------------------------------------------------------------------------------ the surface on several processes
def launch_ranks(nproc: int, argv: Sequence[str]) -> int:
    """``nproc`` processes of ``python -m resnet_core.landscape *argv --distributed``, started by torchrun's own
    launcher (``--standalone``) from this process; returns 0 once they all finished (torchrun raises if one
    failed). ``--nproc`` flags in ``argv`` are dropped."""
    from torch.distributed.run import main as torchrun

    if nproc < 1:
        raise LandscapeError(f"--nproc must be at least 1, not {nproc}.")
    kept, skip = [], False
    for arg in argv:
        if not skip and arg != "--nproc" and not arg.startswith("--nproc="):
            kept.append(arg)
        skip = arg == "--nproc"
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    try:
        torchrun(["--standalone", "--nproc-per-node", str(nproc), "-m", "resnet_core.landscape", *kept,
                  "--distributed"])
    except ChildFailedError as error:  # each rank said why on stderr; this is the one sentence for the caller
        raise LandscapeError(f"{len(error.failures)} of the {nproc} processes failed (their messages are above); "
                             "nothing was written.") from None
    return 0


def join_ranks() -> torch.device:
    """Join torchrun's process group: gloo on the CPU, or NCCL with this rank's GPU (``LOCAL_RANK``) where CUDA is
    available (a path not tested on this project's machines). Returns the device this rank evaluates on."""
    import torch.distributed as dist

    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise LandscapeError("--distributed runs under torchrun (torchrun --nproc-per-node N -m resnet_core.landscape "
                             "CHECKPOINT ... --distributed), or use --nproc N.")
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl")
        return device
    dist.init_process_group(backend="gloo")
    return torch.device("cpu")


def leave_ranks() -> None:
    """Leave the process group together: a barrier first, so that no rank tears its connections down while
    another still uses them (a rank that left early made gloo abort its peer: "terminate called without an
    active exception", measured about once in five runs)."""
    import torch.distributed as dist

    if dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def _rank_and_world() -> tuple[int, int]:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise LandscapeError("A distributed landscape needs a torch.distributed process group: start it with "
                             "torchrun (e.g. torchrun --nproc-per-node 2 -m resnet_core.landscape ... --distributed).")
    return dist.get_rank(), dist.get_world_size()


def _summed_over_ranks(measured: torch.Tensor, device: torch.device) -> torch.Tensor:
    import torch.distributed as dist

    # NCCL reduces CUDA tensors only; gloo the CPU's. float64 all the way: no rounding on the way.
    on = measured.to(device) if dist.get_backend() == "nccl" else measured
    dist.all_reduce(on, op=dist.ReduceOp.SUM)
    return on.cpu()


def line(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, steps: int = 21, span: float = 1.0,
         seed: int = 0, to: nn.Module | None = None, on_progress: Progress | None = None) -> pd.DataFrame:
    """A 1-D slice: columns alpha, loss, accuracy.

    Without ``to``: theta + alpha d1 for alpha from -``span`` to ``span``, d1 the first direction of
    :func:`surface` with the same seed (so the result is the surface's beta = 0 row).

    With ``to`` (a model of the same architecture): the straight line (1 - alpha) theta + alpha theta_to, for
    alpha from 0 (``model``) to ``span`` (1 is ``to``; a span above 1 goes on past it). Floating-point buffers
    (batch-norm running statistics) are interpolated the same way, so both ends are exactly the two models
    in eval mode.
    """
    _check(model, inputs, targets, steps, span)
    cost = estimate(model, inputs.shape, twin=to is not None)
    probe = _Probe(model, inputs, targets, cost.request["batch"])
    rows = []
    if to is None:
        (d1,) = directions(probe.copy, seed=seed, count=1)
        for alpha in _grid(steps, -float(span), float(span)):
            loss, accuracy = probe.at(probe.shifted([(alpha, d1)]))
            rows.append({"alpha": alpha, "loss": loss, "accuracy": accuracy})
            if on_progress is not None:
                on_progress(len(rows), steps)
        return pd.DataFrame(rows, columns=["alpha", "loss", "accuracy"])

    with model_lock(to):
        target_params = {n: p.detach().to(probe.device, copy=True) for n, p in to.named_parameters()}
        target_buffers = {n: b.detach().to(probe.device, copy=True) for n, b in to.named_buffers()}
    base_buffers = {n: b.detach() for n, b in probe.copy.named_buffers()}
    if ({n: tuple(p.shape) for n, p in probe.base.items()} != {n: tuple(p.shape) for n, p in target_params.items()}
            or set(base_buffers) != set(target_buffers)):
        raise LandscapeError("The two models differ in architecture (parameter names or shapes); interpolate "
                             "between two nets of the same build, e.g. a run's initial and final weights.")
    delta = {n: target_params[n] - w for n, w in probe.base.items()}
    buffer_delta = {n: target_buffers[n] - b for n, b in base_buffers.items() if b.is_floating_point()}
    for alpha in _grid(steps, 0.0, float(span)):
        params = {n: (target_params[n] if alpha == 1.0 else torch.add(w, delta[n], alpha=alpha))
                  for n, w in probe.base.items()}
        buffers = {n: (b if n not in buffer_delta else target_buffers[n] if alpha == 1.0
                       else torch.add(b, buffer_delta[n], alpha=alpha))
                   for n, b in base_buffers.items()}
        loss, accuracy = probe.at(params, buffers)
        rows.append({"alpha": alpha, "loss": loss, "accuracy": accuracy})
        if on_progress is not None:
            on_progress(len(rows), steps)
    return pd.DataFrame(rows, columns=["alpha", "loss", "accuracy"])


# ---------------------------------------------------------------------------------------------- the CLI
def cli_batch(model: nn.Module, dataset: str, split: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images of ``dataset``'s ``split`` at the model's input size, normalised as the model expects (its
    preprocessing when it has one, else the training split's statistics); used by the CLIs here and in lesion."""
    from .data import load_splits

    prep = getattr(getattr(model, "card", None), "preprocessing", None)
    size = int(getattr(prep, "crop", 0) or 32)
    train, test = load_splits(dataset, size, n_train=n, n_test=n)
    data = train if split == "train" else test
    mean = torch.tensor(getattr(prep, "mean", None) or data.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(getattr(prep, "std", None) or data.std, dtype=torch.float32).view(1, -1, 1, 1)
    images = data.images[:n]
    images = images.float().div(255) if images.dtype == torch.uint8 else images.float()
    return (images - mean) / std, data.labels[:n]


if __name__ == "__main__":  # python -m resnet_core.landscape: the command line, which lives in probe_cli (the top floor)
    from resnet_core.probe_cli import landscape_main

    raise SystemExit(landscape_main())
