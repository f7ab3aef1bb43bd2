"""Batch statistics on random nets: what the Activations and Gradient-flow pages default to at initialisation."""

from __future__ import annotations

import pytest
import torch

from resnet_core import build
from resnet_core.probes import (
    BatchStatsError,
    activation_stats,
    bn_train_flag,
    compare_activations,
    default_bn_mode,
    image_batch,
    path_gradients,
)


def _buffers(model) -> list[torch.Tensor]:
    return [b.detach().clone() for b in model.buffers()]


def test_resnet110_batch_statistics_stay_bounded_where_running_statistics_explode():
    model = build("resnet110", seed=0)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    before = _buffers(model)
    running = activation_stats(model, x, "blocks", train=bn_train_flag("running"))
    batch = activation_stats(model, x, "blocks", train=bn_train_flag("batch"))
    # Inference mode at initialisation: batch norm divides by sqrt(1 + eps), so 54 residual additions compound.
    assert running["std"].max() > 1e5
    # Batch statistics rescale every block: O(1)-O(10) all the way down.
    assert 0.1 < batch["std"].min() and batch["std"].max() < 20
    assert len(batch) == 54
    # Running statistics untouched, and the model's flags as they were.
    assert all(torch.equal(a, b) for a, b in zip(before, _buffers(model), strict=True))
    assert model.training


def test_batch_of_one_in_batch_mode_is_one_clear_sentence_and_changes_nothing():
    model = build("resnet20", seed=0)
    before = _buffers(model)
    one = torch.randn(1, 3, 32, 32)
    with pytest.raises(BatchStatsError, match=r"^Batch statistics need a batch of at least two images") as info:
        activation_stats(model, one, "blocks", train=True)
    assert isinstance(info.value, ValueError) and "Expected more than 1 value" not in str(info.value)
    with pytest.raises(BatchStatsError):
        path_gradients(model, one, None, train=True)
    with pytest.raises(BatchStatsError):
        compare_activations(model, build("resnet20", residual=False, seed=0), one, train=True)
    assert all(torch.equal(a, b) for a, b in zip(before, _buffers(model), strict=True))
    # Running statistics work on a single image.
    assert len(activation_stats(model, one, "blocks", train=False)) == 9


def test_defaults_and_modes():
    assert default_bn_mode(trained=False) == "batch" and default_bn_mode(trained=True) == "running"
    assert bn_train_flag("batch") is True and bn_train_flag("running") is False
    with pytest.raises(ValueError, match="batch-norm mode"):
        bn_train_flag("train")


def test_image_batch_leads_with_the_chosen_image_then_companions_then_shapes():
    from resnet_core.images import Preprocessing, preprocess, sample_images

    prep = Preprocessing.shapes(32)
    photos = sample_images()
    first, other = photos["chelsea"], photos["coffee"]
    x = image_batch(first, prep, 4, [other])
    assert x.shape == (4, 3, 32, 32)
    assert torch.equal(x[0], preprocess(first, prep)[0]) and torch.equal(x[1], preprocess(other, prep)[0])
    assert not torch.equal(x[2], x[3])  # two different Shapes images fill the rest
    assert image_batch(first, prep, 1, [other]).shape[0] == 1
