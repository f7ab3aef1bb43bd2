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
    with _loading:
        if not _state:
            try:
                from .fused_kernels import summarise

                summarise(np.zeros(1, np.float32), np.zeros(1, np.int32), True, 1, np.float32(0.0),
                          np.float32(1.0), np.zeros(1, np.float32))  # compiles now, or loads the cached code
                _state["summarise"] = summarise
            except Exception as error:  # any failure of Numba leaves torch's reductions, which work
                _state["failed"] = f"{type(error).__name__}: {error}"
                warnings.warn(f"Activation statistics fall back to torch's reductions (about twice as slow on the "
                              f"CPU): Numba's loop is unavailable ({_state['failed']}).", RuntimeWarning, stacklevel=3)
        return _state.get("summarise")


def fused_summary(flat: torch.Tensor, post_relu: bool, step: int, bins: int, low: float,
                  high: float) -> tuple[tuple[float, float, float, float, float], torch.Tensor] | None:
    """((sum, sum of squares, min, max, count), histogram) of a tensor ``fused_applies`` accepts, in one pass, or
    None where the torch reductions must answer instead (see the module docstring).

    ``count`` is the non-zero count after a ReLU, the negative count before one; the histogram is
    ``torch.histc(flat[::step].clamp(low, high), bins, low, high)``, value for value.
    """
    with np.errstate(over="ignore"):  # a range beyond float32 becomes inf, and is refused just below
        low32, high32 = np.float32(low), np.float32(high)
    if not (np.isfinite(low32) and np.isfinite(high32) and low32 < high32 and bins >= 1 and step >= 1):
        return None
    summarise = _loop()
    if summarise is None:
        return None
    values = flat.numpy()
    hist = np.zeros(bins, dtype=np.float32)
    total, squares, lowest, highest, count = summarise(values, values.view(np.int32), bool(post_relu), int(step),
                                                       low32, high32, hist)
    if not (np.isfinite(total) and np.isfinite(squares)):
        return None
    if post_relu and lowest < 0:  # a sign bit: -0.0 (zero, but not as an integer) or a value below zero
        return None
    keys = np.array([lowest, highest], dtype=np.int32)
    if not post_relu:  # undo the key: a negative float's other bits flipped back
        keys = keys ^ ((keys >> 31) & np.int32(0x7FFFFFFF))
    lo, hi = keys.view(np.float32).tolist()
    return (float(total), float(squares), lo, hi, float(count)), torch.from_numpy(hist)
