"""The compiled loops behind ``probes.fused`` (imported by it on the first CPU recording, never on import of the
package: importing Numba takes 0.2 s and compiling, or loading the compiled code from ``__pycache__``, more).

Module-level functions, so that Numba's on-disk cache finds them again in the next process (a closure over a
dispatcher would key the cache on a random id and compile every time). ``fastmath`` is limited to
reassociation, contraction and signed zeros, which is what vectorises the sums; min and max are taken on integers (the bits
of a float, made orderable), so no flag needs to assume the absence of NaN or inf.
"""

from __future__ import annotations

import numba
import numpy as np

BLOCK = 8192  # values summed in float32 before adding into the float64 total; 32 KB, in L1 for the histogram
SUMS = {"reassoc", "contract", "nsz"}  # what vectorises a float sum; nothing that assumes away NaN or inf


@numba.njit(nogil=True, fastmath=SUMS, cache=True, inline="always")
def _block_moments(values, bits, post_relu):  # pragma: no cover - compiled
    """One block: float32 sums, and min and max as orderable int32 keys (post-ReLU: the bits themselves)."""
    total = np.float32(0.0)
    squares = np.float32(0.0)
    low = np.int32(2147483647)
    high = np.int32(-2147483648)
    count = np.int64(0)
    if post_relu:  # non-negative floats order like their int32 bits, and are zero exactly when those are
        for i in range(values.size):
            v = values[i]
            total += v
            squares += v * v
            b = bits[i]
            low = min(low, b)
            high = max(high, b)
            count += b != 0
    else:  # a negative float's other bits flipped: the int32 order is then the float order
        for i in range(values.size):
            v = values[i]
            total += v
            squares += v * v
            b = bits[i]
            key = b ^ ((b >> 31) & np.int32(0x7FFFFFFF))
            low = min(low, key)
            high = max(high, key)
            count += v < 0
    return total, squares, low, high, count


@numba.njit(nogil=True, cache=True)  # strict float32 arithmetic: the bin of a value is torch.histc's
def _bin_of(v, low, high, bins):  # pragma: no cover - compiled
    if v < low:
        v = low
    elif v > high:
        v = high
    if not (v >= low and v <= high):  # NaN
        return -1
    pos = int((v - low) * np.float32(bins) / (high - low))
    return bins - 1 if pos >= bins else pos


@numba.njit(nogil=True, fastmath=SUMS, cache=True)
def summarise(values, bits, post_relu, step, low, high, hist):  # pragma: no cover - compiled
    """(sum, sum of squares, min key, max key, count) of ``values`` (float32, with ``bits`` its int32 view),
    and the strided sample ``values[::step]`` binned into ``hist`` over [low, high], clamped."""
    n = values.size
    bins = hist.size
    total = 0.0
    squares = 0.0
    count = 0
    lowest = np.int32(2147483647)
    highest = np.int32(-2147483648)
    next_sample = 0
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        t, q, lo, hi, c = _block_moments(values[start:stop], bits[start:stop], post_relu)
        total += t
        squares += q
        count += c
        lowest = min(lowest, lo)
        highest = max(highest, hi)
        while next_sample < stop:  # the strided sample's values in this block, while it is in cache
            pos = _bin_of(values[next_sample], low, high, bins)
            if pos >= 0:
                hist[pos] += 1.0
            next_sample += step
    return total, squares, lowest, highest, count
