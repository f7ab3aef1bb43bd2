"""One pass over an activation for all of its statistics (CPU, float32), compiled with Numba.

``record_activations`` needs, per hooked output, the count, sum, sum of squares, minimum, maximum, the count a
ReLU switches off and a histogram of an evenly strided sample. As separate torch reductions that is five passes
over up to 25 MB per block output (ResNet-50, batch 8), each at memory speed: 19-21 ms per forward on 2 cores.
One compiled loop (``fused_kernels.summarise``) reads every value once, sums 8,192-value blocks in float32
(vectorised) and adds the blocks in float64, and bins the sample values of a block while that block is in cache:
about 10 ms inside the same forward.

Exactness: minimum, maximum, counts and histogram are exact (the histogram is ``torch.histc``'s, value for
value, edges included); the sums are float64 over float32 block sums, so they differ from torch's float32
reductions by float rounding only. Where the loop cannot promise that, ``fused_summary`` returns None and the
caller takes the torch reductions: a non-finite sum (NaN or inf anywhere), a sign bit in a post-ReLU output
(``-0.0``), a histogram range that float32 cannot represent, or Numba itself failing (not installed, no compiler
for this CPU, no writable cache folder): then once, with a warning, for the rest of the process.

A residual block's output can be summarised while it is written (``relu_summary_in_place``, handed the block's last
step through ``hooks.Taps.fused_output``): the loop adds the shortcut and applies the ReLU in place, bit for bit as
torch's ``add_`` and ``relu_`` on the fast path, and sums each 32 KB block while it is in cache. That replaces
three passes over the output (add, ReLU, statistics) with one; the statistics are those of ``fused_summary``.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

import numpy as np
import torch

_state: dict[str, Any] = {}  # "summarise": the compiled loop, or "failed": why there is none
_loading = threading.Lock()


def flat_values(x: torch.Tensor) -> torch.Tensor:
    """A 1-D view of every value of ``x`` in memory order, without a copy where ``x`` is contiguous or
    channels-last (statistics do not depend on the order); a contiguous copy otherwise."""
    if x.is_contiguous():
        return x.reshape(-1)
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return x.permute(0, 2, 3, 1).reshape(-1)
    return x.reshape(-1)


def fused_applies(flat: torch.Tensor) -> bool:
    """Whether ``fused_summary`` can read this tensor in place: 1-D, CPU, float32, contiguous, not empty."""
    return (flat.device.type == "cpu" and flat.dtype == torch.float32 and flat.dim() == 1
            and flat.is_contiguous() and flat.numel() > 0 and not flat.requires_grad)


def _loop() -> Any | None:
    """The compiled ``summarise`` (``relu_summarise`` beside it in ``_state``), or None once Numba failed."""
    with _loading:
        if not _state:
            try:
                from .fused_kernels import relu_summarise, summarise

                # Compiled now, or loaded from Numba's cache: never inside a forward pass.
                one, key, hist = np.zeros(1, np.float32), np.zeros(1, np.int32), np.zeros(1, np.float32)
                summarise(one, key, True, 1, np.float32(0.0), np.float32(1.0), hist)
                relu_summarise(one, key, one, True, 1, np.float32(0.0), np.float32(1.0), hist)
                _state.update(summarise=summarise, relu_summarise=relu_summarise)
            except Exception as error:  # any failure of Numba leaves torch's reductions, which work
                _state["failed"] = f"{type(error).__name__}: {error}"
                warnings.warn(f"Activation statistics fall back to torch's reductions (about twice as slow on the "
                              f"CPU): Numba's loop is unavailable ({_state['failed']}).", RuntimeWarning, stacklevel=3)
        return _state.get("summarise")


Summary = tuple[tuple[float, float, float, float, float], torch.Tensor]


def _range32(low: float, high: float, bins: int, step: int) -> tuple[np.float32, np.float32] | None:
    """The histogram range in float32, or None where float32 cannot represent it (or nothing to bin)."""
    with np.errstate(over="ignore"):  # a range beyond float32 becomes inf, and is refused just below
        low32, high32 = np.float32(low), np.float32(high)
    if not (np.isfinite(low32) and np.isfinite(high32) and low32 < high32 and bins >= 1 and step >= 1):
        return None
    return low32, high32


def _finish(result: tuple, post_relu: bool, hist: np.ndarray) -> Summary | None:
    """The loop's (sum, sum of squares, min key, max key, count) as floats, or None where torch must answer."""
    total, squares, lowest, highest, count = result
    if not (np.isfinite(total) and np.isfinite(squares)):
        return None
    if post_relu and lowest < 0:  # a sign bit: -0.0 (zero, but not as an integer) or a value below zero
        return None
    keys = np.array([lowest, highest], dtype=np.int32)
    if not post_relu:  # undo the key: a negative float's other bits flipped back
        keys = keys ^ ((keys >> 31) & np.int32(0x7FFFFFFF))
    lo, hi = keys.view(np.float32).tolist()
    return (float(total), float(squares), lo, hi, float(count)), torch.from_numpy(hist)


def fused_summary(flat: torch.Tensor, post_relu: bool, step: int, bins: int, low: float,
                  high: float) -> Summary | None:
    """((sum, sum of squares, min, max, count), histogram) of a tensor ``fused_applies`` accepts, in one pass, or
    None where the torch reductions must answer instead (see the module docstring).

    ``count`` is the non-zero count after a ReLU, the negative count before one; the histogram is
    ``torch.histc(flat[::step].clamp(low, high), bins, low, high)``, value for value.
    """
    bounds = _range32(low, high, bins, step)
    summarise = _loop() if bounds is not None else None
    if summarise is None:
        return None
    values = flat.numpy()
    hist = np.zeros(bins, dtype=np.float32)
    return _finish(summarise(values, values.view(np.int32), bool(post_relu), int(step), *bounds, hist), post_relu,
                   hist)


def relu_in_place_applies(branch: torch.Tensor, shortcut: torch.Tensor | None, step: int, bins: int, low: float,
                          high: float) -> bool:
    """Whether ``relu_summary_in_place`` can write this block output: ``branch`` as ``fused_applies`` wants it
    (on the CPU, float32, no autograd) and contiguous or channels-last, ``shortcut`` (if any) the same shape
    laid out alike, a histogram float32 can hold, and the compiled loop available."""
    if not (branch.dim() == 4 and (branch.is_contiguous() or branch.is_contiguous(memory_format=torch.channels_last))
            and fused_applies(flat_values(branch))):
        return False
    if shortcut is not None and not (shortcut.shape == branch.shape and shortcut.stride() == branch.stride()
                                     and fused_applies(flat_values(shortcut))):
        return False
    return _range32(low, high, bins, step) is not None and _loop() is not None


def relu_summary_in_place(branch: torch.Tensor, shortcut: torch.Tensor | None, step: int, bins: int, low: float,
                          high: float) -> Summary | None:
    """Write relu(branch + shortcut) (relu(branch) without a shortcut) into ``branch``, bit for bit what torch's
    ``add_`` and ``relu_`` write, and return ``fused_summary``'s answer for the result from the same pass (None:
    the output is written, its statistics are for torch to take). For tensors ``relu_in_place_applies`` accepts;
    without the compiled loop or a usable range, torch's own ``add_`` and ``relu_`` write it."""
    bounds = _range32(low, high, bins, step)
    if bounds is None or _loop() is None:
        (branch.add_(shortcut) if shortcut is not None else branch).relu_()
        return None
    out = flat_values(branch).numpy()
    other = flat_values(shortcut).numpy() if shortcut is not None else out
    hist = np.zeros(bins, dtype=np.float32)
    result = _state["relu_summarise"](out, out.view(np.int32), other, shortcut is not None, int(step), *bounds, hist)
    return _finish(result, True, hist)
