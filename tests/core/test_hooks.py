"""The one tap primitive: taps come off and state comes back whatever happens; records are what was asked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

import resnet_core
from resnet_core import build
from resnet_core.hooks import TapError, count_hooks, preserved_state, taps


def _net() -> torch.nn.Module:
    return build("resnet20", seed=0, width=4).eval()


def _x(n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def test_taps_come_off_and_state_comes_back_after_an_exception():
    model = _net()
    model.layer2.train()
    model.fc.weight.requires_grad_(False)
    grad = torch.ones_like(model.conv1.weight)
    model.conv1.weight.grad = grad
    running = model.layer1[0].bn1.running_mean.clone()
    with pytest.raises(RuntimeError, match="inside"), taps(model, train=True, grads=True, restore_buffers=True) as t:
        t.record("layer1.0")
        t.forward_pre("layer2.0", lambda _m, _a: None)
        t.output_grad("layer3", lambda g: None)
        assert count_hooks(model) == 3
        assert all(m.training for m in model.modules()) and model.fc.weight.requires_grad
        model(_x())  # train-mode BN moves running statistics; restore_buffers puts them back
        raise RuntimeError("inside")
    assert count_hooks(model) == 0
    assert model.layer2.training and not model.training and not model.layer1.training
    assert not model.fc.weight.requires_grad and model.conv1.weight.requires_grad
    assert model.conv1.weight.grad is grad
    assert torch.equal(model.layer1[0].bn1.running_mean, running)


def test_record_outputs_inputs_and_gradients_match_a_plain_forward():
    model = _net()
    x = _x()
    with taps(model, train=False) as t:
        outs = t.record(["layer1", "layer2.0", "layer3"], detach=False)
        ins = t.record("layer2.0", what="input")
        logits = model(x)
        (g_out,) = torch.autograd.grad(logits[:, 3].sum(), outs["layer2.0"])
    assert outs.order == ["layer1", "layer2.0", "layer3"]  # forward order, not the order asked
    assert outs["layer3"].requires_grad and not ins["layer2.0"].requires_grad
    assert torch.equal(ins["layer2.0"], outs["layer1"].detach())  # a stage's output is the next block's input
    with torch.no_grad():
        expected = model.layer3(model.layer2(model.layer1(model.forward_stem(x))))
    assert torch.allclose(outs["layer3"], expected)
    seen = []
    with taps(model, train=False) as t:
        t.output_grad("layer2.0", lambda g: seen.append(g.clone()))
        x_in = x.clone().requires_grad_(True)
        model(x_in)[:, 3].sum().backward(inputs=[x_in])
    assert len(seen) == 1 and torch.allclose(seen[0], g_out)
    assert count_hooks(model) == 0 and all(p.grad is None for p in model.parameters())


def test_record_clone_survives_an_in_place_write():
    model = _net()
    with taps(model) as t:
        kept = t.record("layer1.0", clone=True)
        shared = t.record("layer1.0")
        with torch.no_grad():
            model(_x())
    shared["layer1.0"].zero_()
    assert kept["layer1.0"].abs().sum() > 0


def test_unknown_layer_is_one_sentence_and_nothing_stays_attached():
    model = _net()
    with pytest.raises(TapError, match="no layer named 'layer9'"), taps(model) as t:
        t.record("layer1.0")
        t.record("layer9")
    assert count_hooks(model) == 0
    with pytest.raises(ValueError, match="what must be one of"), taps(model) as t:
        t.record("layer1.0", what="gradient")


def test_only_the_hooks_module_registers_hooks():
    root = Path(resnet_core.__file__).parent
    callers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                     if re.search(r"\.register_(forward_pre_|forward_|full_backward_|backward_)?hook\(", p.read_text()))
    assert callers == ["hooks.py"]


def test_preserved_state_switches_modes_and_honours_a_models_own_train():
    """Modes are set module by module without Module.train's second walk, unless the model has its own train()
    (e.g. one that keeps batch norm frozen): then that is called, and every mode is restored afterwards."""

    class FrozenNorm(nn.Sequential):
        def train(self, mode: bool = True):
            super().train(mode)
            self[1].training = False  # batch norm stays in eval, whatever is asked
            return self

    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    with preserved_state(plain, train=True):
        assert all(m.training for m in plain.modules())
    assert not any(m.training for m in plain.modules())
    frozen = FrozenNorm(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    with preserved_state(frozen, train=True):
        assert frozen.training and frozen[0].training and not frozen[1].training
    assert not any(m.training for m in frozen.modules())
