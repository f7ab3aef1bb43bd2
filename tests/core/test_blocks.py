"""The blocks' two paths: in place when nothing can watch, out of place when anything might; same numbers."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from resnet_core import build, iter_blocks
from resnet_core.blocks import Tap

# Post-activation (basic, bottleneck), pre-activation with identity and projection shortcuts, option A, plain.
CONFIGS = [
    ("resnet18", {}),
    ("resnet50", {"shortcut": "C"}),
    ("resnet20", {}),
    ("resnet20", {"preact": True}),
    ("resnet50", {"preact": True, "shortcut": "C"}),
    ("resnet20", {"residual": False}),
]
IDS = ["basic", "bottleneck-C", "cifar-A", "preact-basic", "preact-bottleneck-C", "plain"]


def _model(name: str, options: dict, seed: int = 0) -> nn.Module:
    model = build(name, seed=seed, width=8, **options)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # non-trivial BN so that ReLUs really cut and equality means equal arithmetic
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.copy_(torch.randn(module.num_features, generator=gen) * 0.2)
                module.weight.copy_(torch.rand(module.num_features, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(module.num_features, generator=gen) * 0.2)
    return model


def _inputs(name: str, n: int = 2) -> torch.Tensor:
    side = 32 if name == "resnet20" else 64
    return torch.randn(n, 3, side, side, generator=torch.Generator().manual_seed(7))


def _force_safe_path(model: nn.Module) -> list:
    """A do-nothing hook on every tap and on the stem's ReLU: what any instrument does, and enough to take the
    safe path in every block and in the stem."""
    hooked = [m for m in model.modules() if isinstance(m, Tap)] + [m for m in [getattr(model, "relu", None)] if m]
    return [m.register_forward_pre_hook(lambda mod, args: None) for m in hooked]


def _output_versions(model: nn.Module, x: torch.Tensor) -> list[int]:
    """Version counters of every block's output (0: made out of place; >0: written in place)."""
    versions: list[int] = []
    handles = [block.register_forward_hook(lambda mod, args, out: versions.append(out._version))
               for _, block in iter_blocks(model)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return versions


@pytest.mark.parametrize("name,options", CONFIGS, ids=IDS)
def test_fast_and_safe_paths_are_bit_identical(name: str, options: dict) -> None:
    model = _model(name, options).eval()
    x = _inputs(name)
    with torch.no_grad():
        fast = model(x)
    handles = _force_safe_path(model)
    with torch.no_grad():
        safe = model(x)
    for handle in handles:
        handle.remove()
    assert torch.equal(fast, safe)
    assert fast.abs().max() > 0


def test_the_stems_relu_is_in_place_unless_a_hook_could_see_the_batch_norm_output() -> None:
    """torchvision's inplace ReLU in the stem: unhooked, the batch-norm output is overwritten (its version counter
    moves); with a hook on bn1 that keeps the output, the kept tensor still holds its negative values."""
    model = _model("resnet18", {}).eval()
    x = _inputs("resnet18")
    seen: list[torch.Tensor] = []
    pool = model.maxpool.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    with torch.no_grad():
        fast = model(x)
    assert seen[-1]._version > 0  # written in place
    kept: list[torch.Tensor] = []
    norm = model.bn1.register_forward_hook(lambda mod, args, out: kept.append(out))
    with torch.no_grad():
        safe = model(x)
    norm.remove()
    pool.remove()
    assert seen[-1]._version == 0 and kept[0].min() < 0 and torch.equal(fast, safe)
    assert torch.equal(seen[-1], kept[0].clamp_min(0))


@pytest.mark.parametrize("name,options", CONFIGS, ids=IDS)
def test_training_step_is_bit_identical_on_both_paths(name: str, options: dict) -> None:
    """In-place ReLU after BN and the in-place add leave autograd's saved tensors alone (as in torchvision)."""
    fast_model = _model(name, options).train()
    safe_model = copy.deepcopy(fast_model)
    handles = _force_safe_path(safe_model)
    x = _inputs(name, n=4)
    fast_out, safe_out = fast_model(x), safe_model(x)
    fast_out.square().mean().backward()
    safe_out.square().mean().backward()
    for handle in handles:
        handle.remove()
    assert torch.equal(fast_out, safe_out)
    for (key, p), q in zip(fast_model.named_parameters(), safe_model.parameters(), strict=True):
        assert torch.equal(p.grad, q.grad), key
    for p, q in zip(fast_model.buffers(), safe_model.buffers(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("name,options", CONFIGS, ids=IDS)
def test_unhooked_blocks_run_in_place_and_hooked_ones_do_not(name: str, options: dict) -> None:
    model = _model(name, options).eval()
    x = _inputs(name)
    n_blocks = len(iter_blocks(model))
    # A forward hook on the block itself sees only its output, which it never overwrites: fast path kept.
    assert all(v > 0 for v in _output_versions(model, x))
    handles = _force_safe_path(model)
    assert _output_versions(model, x) == [0] * n_blocks
    for handle in handles:
        handle.remove()
    # Backward hooks of any kind, and module hooks registered for every module, also take the safe path.
    first = iter_blocks(model)[0][1]
    handle = first.register_full_backward_hook(lambda mod, gin, gout: None)
    assert _output_versions(model, x)[0] == 0
    handle.remove()
    handle = torch.nn.modules.module.register_module_forward_pre_hook(lambda mod, args: None)
    try:
        assert _output_versions(model, x) == [0] * n_blocks
    finally:
        handle.remove()
    assert all(v > 0 for v in _output_versions(model, x))


def _assert_calls_replay(calls: list[tuple[nn.Module, tuple, torch.Tensor]]) -> None:
    """Every stored (module, inputs, output) still agrees with a clean recomputation from the stored inputs."""
    assert calls
    with torch.no_grad():
        for module, args, out in calls:
            assert torch.equal(module(*args), out), type(module).__name__


@pytest.mark.parametrize("name,options", CONFIGS, ids=IDS)
def test_third_party_hooks_never_see_an_overwritten_tensor(name: str, options: dict) -> None:
    """Hooks as the grad-cam package registers them: on modules directly, keeping the output without a clone."""
    model = _model(name, options).eval()
    x = _inputs(name)
    calls: list[tuple[nn.Module, tuple, torch.Tensor]] = []
    block_modules = [m for _, block in iter_blocks(model) for m in block.modules() if m is not block]
    handles = [m.register_forward_hook(lambda mod, args, out: calls.append((mod, args, out)))
               for m in block_modules if not isinstance(m, nn.Sequential)]
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    _assert_calls_replay(calls)
    assert any(isinstance(m, nn.BatchNorm2d) for m, _, _ in calls)


def test_global_module_hooks_never_see_an_overwritten_tensor() -> None:
    model = _model("resnet50", {"shortcut": "C"}).eval()
    calls: list[tuple[nn.Module, tuple, torch.Tensor]] = []
    inside = {id(m) for _, block in iter_blocks(model) for m in block.modules() if m is not block}
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda mod, args, out: calls.append((mod, args, out)) if id(mod) in inside
        and not isinstance(mod, nn.Sequential) else None)
    try:
        with torch.no_grad():
            model(_inputs("resnet50"))
    finally:
        handle.remove()
    _assert_calls_replay(calls)


def test_grad_cam_style_hook_on_the_last_block_matches_the_safe_path() -> None:
    """A forward hook plus a tensor gradient hook on the last block (the grad-cam package's recipe)."""
    model = _model("resnet50", {}).eval()
    x = _inputs("resnet50")
    target = iter_blocks(model)[-1][1]

    def cam_inputs() -> tuple[torch.Tensor, torch.Tensor]:
        store: dict[str, torch.Tensor] = {}

        def keep(mod: nn.Module, args: tuple, out: torch.Tensor) -> None:
            store["act"] = out
            out.register_hook(lambda grad: store.__setitem__("grad", grad))

        handle = target.register_forward_hook(keep)
        try:
            model(x)[:, 3].sum().backward()
        finally:
            handle.remove()
        return store["act"].detach(), store["grad"]

    fast_act, fast_grad = cam_inputs()
    handles = _force_safe_path(model)
    safe_act, safe_grad = cam_inputs()
    for handle in handles:
        handle.remove()
    assert torch.equal(fast_act, safe_act)
    assert torch.equal(fast_grad, safe_grad)
    assert (fast_act >= 0).all() and fast_act.max() > 0
