"""resnet_core.weights (compatibility): which weights fit which net (the weights picker's decision) and the one width-factor list."""

from __future__ import annotations

import pytest
import torch

import resnet_core
from resnet_core.errors import WeightsError
from resnet_core.weights import (
    WIDTH_FACTORS,
    CheckpointConfig,
    base_width,
    checkpoint_config,
    effective_weights,
    weights_fit,
    width_factor,
    width_for,
)
from resnet_core.weights.checkpoints import FORMAT


@pytest.fixture(autouse=True)
def runs_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path))
    monkeypatch.setenv("RESNET_EXPLORER_OFFLINE", "1")


def test_width_factors_round_trip_for_both_stems():
    assert WIDTH_FACTORS == {"full": 1, "half": 2, "quarter": 4}
    assert (base_width("resnet50"), base_width("resnet20")) == (64, 16)
    assert [width_for("resnet18", f) for f in WIDTH_FACTORS] == [None, 32, 16]
    assert [width_for("resnet20", f) for f in WIDTH_FACTORS] == [None, 8, 4]
    assert [width_factor("resnet20", w) for w in (None, 16, 8, 4, 12)] == ["full", "full", "half", "quarter", None]
    assert width_factor("resnet18", 32) == "half"
    with pytest.raises(ValueError, match="width factor must be one of"):
        width_for("resnet18", "double")


def test_torchvision_weights_fit_only_the_standard_net():
    assert weights_fit("tv:IMAGENET1K_V1", "resnet18", {"residual": True, "shortcut": "B"}) is None
    assert effective_weights("tv:IMAGENET1K_V1", "resnet18", {}) == "tv:IMAGENET1K_V1"
    plain = weights_fit("tv:IMAGENET1K_V1", "resnet18", {"residual": False})
    assert plain == ("torchvision weights fit only the standard ResNet-18 (not residual); "
                     "showing random weights for this variant.")
    narrow = weights_fit("tv:IMAGENET1K_V1", "resnet18", {"width": 32, "preact": True})
    assert "(not preact, width)" in narrow
    assert effective_weights("tv:IMAGENET1K_V1", "resnet18", {"width": 32}) == "random"
    missing = weights_fit("tv:IMAGENET1K_V2", "resnet20", {})
    assert missing.startswith("ResNet-20 has no torchvision weights IMAGENET1K_V2")
    assert weights_fit("random", "resnet20", {"residual": False}) is None


def test_checkpoints_fit_the_net_they_hold(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path))  # a ckpt: id names a file in the runs folder
    ours = tmp_path / "plain20.pt"
    model = resnet_core.build("resnet20", seed=0, width=8, residual=False)
    torch.save({"format": FORMAT, "arch": "resnet20", "options": {"width": 8, "residual": False},
                "state_dict": model.state_dict()}, ours)
    config = checkpoint_config(ours)
    assert config == CheckpointConfig("resnet20", {"width": 8, "residual": False}, "Plain-20", ())
    assert weights_fit(f"ckpt:{ours}", "resnet20", {"residual": False}) is None
    assert weights_fit(f"ckpt:{ours}", "resnet20", {"residual": False}, config.as_dict()) is None
    assert weights_fit(f"ckpt:{ours}", "resnet20", {}) == (
        "The checkpoint holds Plain-20, not ResNet-20; showing random weights for this net.")
    assert effective_weights(f"ckpt:{ours}", "resnet32", {"residual": False}, config) == "random"

    foreign = tmp_path / "foreign.pth"
    torch.save(resnet_core.build("resnet18", seed=0, width=16).state_dict(), foreign)
    inferred = checkpoint_config(foreign)
    assert inferred.arch == "resnet18" and inferred.options["width"] == 16 and inferred.label.startswith("ResNet-18")
    assert weights_fit(f"ckpt:{foreign}", "resnet18", {"width": 16}) is None
    assert "holds" in weights_fit(f"ckpt:{foreign}", "resnet34", {})
    assert weights_fit("ckpt:foreign.pth", "resnet18", {"width": 16}) is None  # the id the app writes


def test_a_broken_checkpoint_raises_one_clear_sentence(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError) as info:
        checkpoint_config(path)
    assert "\n" not in str(info.value) and str(info.value).endswith(".")
