"""The one-pass statistics loop (``resnet_core.probes.fused``) against independent float64 computations, and the
torch reductions that CUDA (and every tensor the loop declines) takes, on the same inputs."""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from resnet_core import build
from resnet_core.probes import activation_profile, record_activations
from resnet_core.probes import fused as fused_module
from resnet_core.probes.activations import _torch_summary
from resnet_core.probes.fused import flat_values, fused_applies, fused_summary
from resnet_core.probes.fused_kernels import BLOCK

BINS, LOW, HIGH = 12, -3.0, 3.0


def _both(flat: torch.Tensor, post_relu: bool, step: int) -> dict[str, tuple[list[float], torch.Tensor]]:
    """Each implementation's ([sum, sum of squares, min, max, count], histogram) for the same tensor."""
    fused = fused_summary(flat, post_relu, step, BINS, LOW, HIGH)
    assert fused is not None
    moments, hist = _torch_summary(flat, post_relu, step, BINS, LOW, HIGH)
    return {"fused": (list(fused[0]), fused[1]), "torch": (moments.tolist(), hist)}


def _reference(flat: torch.Tensor, post_relu: bool, step: int) -> tuple[list[float], torch.Tensor]:
    exact = flat.double()
    count = (flat != 0).sum() if post_relu else (flat < 0).sum()
    # torch.histc's bin rule, written out in numpy's float32: (v - low) * bins / (high - low), truncated, the last
    # bin keeping its right edge. A value within rounding of an edge lands where this arithmetic puts it.
    sample = np.clip(flat[::step].numpy(), np.float32(LOW), np.float32(HIGH))
    position = (sample - np.float32(LOW)) * np.float32(BINS) / (np.float32(HIGH) - np.float32(LOW))
    index = np.minimum(position.astype(np.int64), BINS - 1)
    hist = torch.from_numpy(np.bincount(index, minlength=BINS).astype(np.float32))
    return [exact.sum().item(), (exact * exact).sum().item(), exact.min().item(), exact.max().item(),
            float(count)], hist


def _check(flat: torch.Tensor, post_relu: bool, step: int) -> None:
    expected, expected_hist = _reference(flat, post_relu, step)
    scale = flat.double().abs().sum().item() + 1.0
    for name, (moments, hist) in _both(flat, post_relu, step).items():
        total, squares, low, high, count = moments
        assert total == pytest.approx(expected[0], abs=1e-6 * scale), name
        assert squares == pytest.approx(expected[1], rel=1e-5, abs=1e-6), name
        assert (low, high, count) == (expected[2], expected[3], expected[4]), name
        assert torch.equal(hist, expected_hist), (name, hist, expected_hist)


FINITE = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, allow_infinity=False, width=32)
_EDGES = torch.linspace(LOW, HIGH, BINS + 1)
EDGES = st.sampled_from(  # bin edges, one float32 step either side of them, beyond the range
    torch.cat([_EDGES, torch.nextafter(_EDGES, _EDGES - 1), torch.nextafter(_EDGES, _EDGES + 1)]).tolist()
    + [-1.1920928955078125e-07, LOW - 1.0, HIGH + 1.0])


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.one_of(FINITE, EDGES), min_size=1, max_size=3 * BLOCK + 17),
       step=st.integers(1, 50), post_relu=st.booleans())
def test_one_pass_matches_exact_statistics_and_torch_histc(values: list[float], step: int, post_relu: bool):
    flat = torch.tensor(values, dtype=torch.float32)
    if post_relu:
        flat = flat.relu() + 0.0  # + 0.0 turns ReLU's -0.0 into +0.0: this test is about values, not sign bits
    _check(flat, post_relu, step)


def test_one_pass_over_many_blocks_with_a_strided_sample():
    gen = torch.Generator().manual_seed(1)
    flat = torch.randn(11 * BLOCK + 5, generator=gen) * 2.5
    _check(flat, False, 7)
    _check(flat.relu() + 0.0, True, 101)
    # the sum of a large tensor: float64 over float32 blocks stays close to the exact float64 sum
    big = torch.rand(3_000_000, generator=gen) + 1.0
    total = fused_summary(big, True, 1000, BINS, LOW, HIGH)[0][0]
    assert total == pytest.approx(big.double().sum().item(), rel=1e-7)  # float32 sums of 3 M values: about 1e-4


@pytest.mark.parametrize(("values", "post_relu"), [
    ([1.0, float("nan"), 2.0], False),
    ([1.0, float("inf")], True),
    ([-float("inf"), 0.5], False),
    ([3e38, 3e38], False),  # the sum overflows float32
    ([1.0, -0.0, 2.0, 0.0], True),  # a sign bit after a ReLU: exact zero counting needs the float path
])
def test_what_the_loop_cannot_promise_falls_back_to_torch(values: list[float], post_relu: bool):
    flat = torch.tensor(values)
    assert fused_applies(flat)
    assert fused_summary(flat, post_relu, 1, BINS, LOW, HIGH) is None
    # ...and the recording still gives torch's answer for it (ReLU passes -0.0 through: a zero all the same)
    layer = torch.nn.ReLU() if post_relu else torch.nn.Identity()
    row = activation_profile(torch.nn.Sequential(layer), flat.view(1, 1, 1, -1), ["0"]).stats().iloc[0]
    reference = flat.relu() if post_relu else flat
    assert row["numel"] == len(values)
    if reference.isnan().any():
        assert math.isnan(row["mean"])
    else:
        assert row["max"] == reference.max().item() and row["min"] == reference.min().item()
    if post_relu:
        assert row["zero_share"] == pytest.approx((reference == 0).double().mean().item())


def test_a_histogram_range_float32_cannot_hold_is_left_to_torch():
    flat = torch.ones(10)
    assert fused_summary(flat, False, 1, BINS, 1.0, 1.0 + 1e-9) is None  # one float32 value: no width
    assert fused_summary(flat, False, 1, BINS, 0.0, 1e39) is None  # beyond float32
    assert fused_summary(flat, False, 1, BINS, 0.0, 2.0) is not None


def test_exact_zeros_are_not_negative_on_either_path():
    flat = torch.tensor([0.0, 0.0, -0.0, -1.5, 2.0, 3.0])
    fused = fused_summary(flat, False, 1, BINS, LOW, HIGH)
    moments, _ = _torch_summary(flat, False, 1, BINS, LOW, HIGH)
    assert fused[0][2:] == (-1.5, 3.0, 1.0) and moments.tolist()[2:] == [-1.5, 3.0, 1.0]


def test_without_numba_the_recording_warns_once_and_gives_torchs_answer(monkeypatch: pytest.MonkeyPatch):
    """Numba missing (or failing to compile for this CPU): the torch reductions answer, with one warning."""
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.ReLU())
    with_loop = activation_profile(model, x, ["0", "1"]).stats()
    monkeypatch.setattr(fused_module, "_state", {})
    monkeypatch.setitem(sys.modules, "numba", None)  # `import numba` raises ImportError
    monkeypatch.delitem(sys.modules, "resnet_core.probes.fused_kernels", raising=False)
    with pytest.warns(RuntimeWarning, match="fall back to torch's reductions") as caught:
        without = activation_profile(model, x, ["0", "1"]).stats()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the second recording does not warn again
            activation_profile(model, x, ["0", "1"]).stats()
    assert len([w for w in caught if "fall back" in str(w.message)]) == 1
    for column in ("numel", "min", "max", "zero_share", "negative_share"):
        assert with_loop[column].tolist() == pytest.approx(without[column].tolist(), nan_ok=True), column
    for column in ("mean", "std"):
        assert with_loop[column].tolist() == pytest.approx(without[column].tolist(), rel=1e-5), column


def test_a_channels_last_net_records_the_same_statistics():
    model = build("resnet20", seed=0, width=4).eval()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), record_activations(model, "blocks") as plain:
        model(x)
    last = model.to(memory_format=torch.channels_last)
    with torch.no_grad(), record_activations(last, "blocks") as fast:
        last(x.contiguous(memory_format=torch.channels_last))
    a, b = plain.stats(), fast.stats()
    for column in ("numel", "min", "max"):
        assert a[column].tolist() == pytest.approx(b[column].tolist(), rel=1e-5), column
    assert a["zero_share"].tolist() == pytest.approx(b["zero_share"].tolist(), abs=2e-3)  # convolutions' rounding
    assert a["mean"].tolist() == pytest.approx(b["mean"].tolist(), rel=1e-4, abs=1e-6)


def test_fused_applies_only_where_it_reads_the_memory_it_is_given():
    x = torch.randn(10)
    assert fused_applies(x)
    assert not fused_applies(x.double()) and not fused_applies(x[::2]) and not fused_applies(x[:0])
    assert not fused_applies(x.view(2, 5)) and not fused_applies(x.clone().requires_grad_())


def test_channels_last_outputs_are_read_in_place_and_give_the_same_statistics():
    x = torch.randn(2, 5, 6, 7)
    last = x.contiguous(memory_format=torch.channels_last)
    assert flat_values(last).data_ptr() == last.data_ptr() and flat_values(x).data_ptr() == x.data_ptr()
    ours = fused_summary(flat_values(last), False, 1, BINS, LOW, HIGH)
    plain = fused_summary(flat_values(x), False, 1, BINS, LOW, HIGH)
    assert ours[0][2:] == plain[0][2:] and torch.equal(ours[1], plain[1])
    assert ours[0][0] == pytest.approx(plain[0][0], abs=1e-3) and ours[0][1] == pytest.approx(plain[0][1])  # order
    transposed = x.transpose(2, 3)  # neither layout: copied, same values
    assert flat_values(transposed).data_ptr() != transposed.data_ptr()
    assert flat_values(transposed).sum().item() == pytest.approx(x.sum().item(), abs=1e-4)
