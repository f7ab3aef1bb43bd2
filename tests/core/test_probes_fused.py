"""The one-pass statistics loop (``resnet_core.probes.fused``) against independent float64 computations, and the
torch reductions that CUDA (and every tensor the loop declines) takes, on the same inputs."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from resnet_core.probes import activation_profile
from resnet_core.probes.activations import _torch_summary
from resnet_core.probes.fused import BLOCK, flat_values, fused_applies, fused_summary

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
    # torch.histc's bin rule is float32 arithmetic: (v - low) * bins / (high - low), truncated; a value within
    # rounding of an edge may land on either side of its exact bin, and must land where torch.histc puts it.
    hist = torch.histc(flat[::step].clamp(LOW, HIGH), bins=BINS, min=LOW, max=HIGH)
    assert hist.sum().item() == len(flat[::step])
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
    assert total == pytest.approx(big.double().sum().item(), rel=1e-9)


@pytest.mark.parametrize(("values", "post_relu"), [
    ([1.0, float("nan"), 2.0], False),
    ([1.0, float("inf")], True),
    ([-float("inf"), 0.5], False),
    ([3e38, 3e38], False),  # the sum overflows float32
    ([1.0, -0.0, 2.0], True),  # a sign bit after a ReLU: exact zero counting needs the float path
])
def test_what_the_loop_cannot_promise_falls_back_to_torch(values: list[float], post_relu: bool):
    flat = torch.tensor(values)
    assert fused_applies(flat)
    assert fused_summary(flat, post_relu, 1, BINS, LOW, HIGH) is None
    # ...and the recording still gives torch's answer for it
    relu = torch.nn.Sequential(torch.nn.ReLU()) if post_relu else torch.nn.Sequential(torch.nn.Identity())
    row = activation_profile(relu, flat.view(1, 1, 1, -1), ["0"]).stats().iloc[0]
    reference = flat.relu() if post_relu else flat
    assert row["numel"] == len(values)
    if not reference.isnan().any():
        assert row["max"] == reference.max().item() and row["min"] == reference.min().item()
    else:
        assert math.isnan(row["mean"])


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
