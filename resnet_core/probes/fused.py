"""One pass over an activation for all of its statistics (CPU, float32), compiled with Numba.

``record_activations`` needs, per hooked output, the count, sum, sum of squares, minimum, maximum, the count a
ReLU switches off and a histogram of an evenly strided sample. As separate torch reductions that is five passes
over up to 25 MB per block output (ResNet-50, batch 8), each at memory speed: 19 ms per forward on 2 cores, 6-8 %
of the forward. One compiled loop reads every value once, sums 8,192-value blocks in float32 (vectorised) and
adds the blocks in float64, and bins the sample values of a block while that block is still in cache.

Exactness: minimum, maximum, counts and histogram are exact (the histogram's bin rule is ``torch.histc``'s, edge
values included); the sums are float64 over float32 block sums, closer to the exact sum than torch's float32
reductions. Whatever the loop cannot promise falls back to the torch reductions: a non-finite sum (NaN or inf
anywhere, where ``fastmath`` min/max would be undefined), a sign bit in a post-ReLU output (``-0.0``), another
dtype or device, or a tensor that is neither contiguous nor channels-last.

Numba is imported and the loop compiled (or loaded from its on-disk cache) on the first CPU call, not on import.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import torch

BLOCK = 8192  # values summed in float32 before adding into the float64 total; 32 KB, in L1 for the histogram

_kernels: dict[str, Any] = {}
_compile_lock = threading.Lock()


def flat_values(x: torch.Tensor) -> torch.Tensor:
    """A 1-D view of every value of ``x`` in memory order, without a copy where ``x`` is contiguous or
    channels-last (statistics do not depend on the order); a copy otherwise."""
    if x.is_contiguous():
        return x.reshape(-1)
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return x.permute(0, 2, 3, 1).reshape(-1)
    return x.reshape(-1)


def _compile() -> dict[str, Any]:
    with _compile_lock:
        if not _kernels:
            try:
                _kernels.update(_build(cache=True))
            except RuntimeError:  # Numba finds no writable cache folder (read-only install and home): compile
                _kernels.update(_build(cache=False))
        return _kernels


def _build(cache: bool) -> dict[str, Any]:
    import numba  # 0.2 s of import and a compile (or a cache load), paid by the first recording only

    @numba.njit(nogil=True, fastmath=True, cache=cache, inline="always")
    def block_moments(values, bits, post_relu):  # pragma: no cover - compiled
        total = np.float32(0.0)
        squares = np.float32(0.0)
        count = np.int64(0)
        if post_relu:  # non-negative floats order like their int32 bits, and are zero exactly when those are
            lo_bits = np.int32(2147483647)
            hi_bits = np.int32(-2147483648)
            for i in range(values.size):
                v = values[i]
                total += v
                squares += v * v
                b = bits[i]
                lo_bits = min(lo_bits, b)
                hi_bits = max(hi_bits, b)
                count += b != 0
            return total, squares, lo_bits, hi_bits, np.float32(0.0), np.float32(0.0), count
        lo = np.float32(np.inf)
        hi = np.float32(-np.inf)
        for i in range(values.size):
            v = values[i]
            total += v
            squares += v * v
            lo = min(lo, v)
            hi = max(hi, v)
            count += v < 0
        return total, squares, np.int32(0), np.int32(0), lo, hi, count

    @numba.njit(nogil=True, cache=cache)  # strict float32 arithmetic: the bin of a value is torch.histc's
    def bin_of(v, low, high, bins):  # pragma: no cover - compiled
        if v < low:
            v = low
        elif v > high:
            v = high
        if not (v >= low and v <= high):  # NaN
            return -1
        pos = int((v - low) * np.float32(bins) / (high - low))
        return bins - 1 if pos >= bins else pos

    @numba.njit(nogil=True, fastmath=True, cache=cache)
    def summarise(values, bits, post_relu, step, low, high, hist):  # pragma: no cover - compiled
        """(sum, sum of squares, min, max, count); min and max as int32 bits when post_relu."""
        n = values.size
        bins = hist.size
        total = 0.0
        squares = 0.0
        count = 0
        lo_bits = np.int32(2147483647)
        hi_bits = np.int32(-2147483648)
        lo = np.float32(np.inf)
        hi = np.float32(-np.inf)
        next_sample = 0
        for start in range(0, n, BLOCK):
            stop = min(start + BLOCK, n)
            t, q, lb, hb, lf, hf, c = block_moments(values[start:stop], bits[start:stop], post_relu)
            total += t
            squares += q
            count += c
            lo_bits = min(lo_bits, lb)
            hi_bits = max(hi_bits, hb)
            lo = min(lo, lf)
            hi = max(hi, hf)
            while next_sample < stop:  # the strided sample's values in this block, while it is in cache
                pos = bin_of(values[next_sample], low, high, bins)
                if pos >= 0:
                    hist[pos] += 1.0
                next_sample += step
        if post_relu:
            return total, squares, float(lo_bits), float(hi_bits), float(count)
        return total, squares, float(lo), float(hi), float(count)

    return {"summarise": summarise}


def fused_applies(flat: torch.Tensor) -> bool:
    """Whether ``fused_summary`` can take this 1-D tensor (CPU, float32, contiguous, not empty)."""
    return (flat.device.type == "cpu" and flat.dtype == torch.float32 and flat.dim() == 1
            and flat.is_contiguous() and flat.numel() > 0 and not flat.requires_grad)


def fused_summary(flat: torch.Tensor, post_relu: bool, step: int, bins: int, low: float,
                  high: float) -> tuple[tuple[float, float, float, float, float], torch.Tensor] | None:
    """((sum, sum of squares, min, max, count), histogram of ``flat[::step]`` clamped to [low, high]) in one
    pass, or None where the loop cannot promise the torch reductions' result (see the module docstring).

    ``count`` is the non-zero count after a ReLU, the negative count before one; the histogram is
    ``torch.histc(flat[::step].clamp(low, high), bins, low, high)``, value for value.
    """
    summarise = _compile()["summarise"]
    values = flat.numpy()
    hist = np.zeros(bins, dtype=np.float32)
    total, squares, lo, hi, count = summarise(values, values.view(np.int32), bool(post_relu), int(step),
                                              np.float32(low), np.float32(high), hist)
    if not np.isfinite(total) or not np.isfinite(squares):
        return None
    if post_relu:
        if lo < 0:  # a sign bit: -0.0 or a negative value where none was expected
            return None
        lo = float(np.int32(lo).view(np.float32))
        hi = float(np.int32(hi).view(np.float32))
    return (total, squares, lo, hi, count), torch.from_numpy(hist)
