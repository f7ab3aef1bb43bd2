"""resnet_core.weights.checkpoints: our format written and read back, and foreign key conventions as a table."""

from __future__ import annotations

import pytest
import torch

import resnet_core
from resnet_core.images import Preprocessing
from resnet_core.weights.checkpoints import (
    FORMAT,
    KEY_CONVENTIONS,
    conventions,
    make_checkpoint,
    model_from_checkpoint,
    read_checkpoint,
    save_checkpoint,
)


def small_net() -> torch.nn.Module:
    return resnet_core.build("resnet20", width=4, num_classes=3, seed=0)


def test_a_written_checkpoint_reads_back_as_the_same_model(tmp_path):
    net = small_net()
    prep = Preprocessing(32, 32, (0.5, 0.4, 0.3), (0.2, 0.2, 0.2))
    ckpt = make_checkpoint(arch="resnet20", label="ResNet-20", options={"width": 4, "num_classes": 3},
                           state_dict=net.state_dict(), classes=["a", "b", "c"], preprocessing=prep,
                           dataset="shapes", metrics={"test_acc": 0.5})
    path = save_checkpoint(tmp_path / "net.pt", ckpt)
    assert [p.name for p in tmp_path.iterdir()] == ["net.pt"]  # no temporary file left beside it
    read = read_checkpoint(path)
    assert ckpt["format"] == FORMAT and read.arch == "resnet20" and read.classes == ["a", "b", "c"]
    assert read.preprocessing == prep and read.meta == {"dataset": "shapes", "metrics": {"test_acc": 0.5}}
    model = model_from_checkpoint(read)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model(x), net.eval()(x))


def test_nested_wrapper_prefixes_are_removed_row_by_row(tmp_path):
    state = {f"module._orig_mod.{k}": v for k, v in small_net().state_dict().items()}
    path = tmp_path / "wrapped.pt"
    torch.save({"model": state}, path)
    read = read_checkpoint(path)
    assert all(not k.startswith(("module.", "_orig_mod.")) for k in read.state_dict)
    assert read.notes == ["read the tensors under 'model'", "removed the 'module.' prefix from every key",
                          "removed the '_orig_mod.' prefix from every key"]
    assert [c.writer for c in KEY_CONVENTIONS][:2] == ["DataParallel / DistributedDataParallel", "torch.compile"]


def test_a_new_convention_is_one_row(tmp_path, monkeypatch):
    state = {f"backbone.{k}": v for k, v in small_net().state_dict().items()}
    path = tmp_path / "backbone.pt"
    torch.save(state, path)
    with pytest.raises(resnet_core.WeightsError):  # unknown today: the keys fit no ResNet
        model_from_checkpoint(read_checkpoint(path))
    row = conventions._prefixed("backbone.", "a detection library")
    monkeypatch.setattr(conventions, "KEY_CONVENTIONS", (*KEY_CONVENTIONS, row))
    read = read_checkpoint(path)
    assert "removed the 'backbone.' prefix from every key" in read.notes
    assert model_from_checkpoint(read).fc.out_features == 3
