"""resnet_core.landscape: filter-normalised directions, the origin is the model, nothing is touched."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from resnet_core import landscape
from resnet_core.models import build


def _net(residual: bool = True, seed: int = 0) -> torch.nn.Module:
    return build("resnet20", width=4, seed=seed, residual=residual)


def _batch(n: int = 12, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 16, 16, generator=g), torch.randint(0, 10, (n,), generator=g)


def _eval_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    was = model.training
    model.eval()
    with torch.no_grad():
        logits = model(x)
    model.train(was)
    return float(F.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())


def _snapshot(model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, bool], list[bool]]:
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    modes = {name: m.training for name, m in model.named_modules()}
    return state, modes, [p.requires_grad for p in model.parameters()]


def _assert_unchanged(model: torch.nn.Module, before: tuple) -> None:
    state, modes, requires = before
    now = model.state_dict()
    assert set(now) == set(state)
    for key, value in state.items():
        assert torch.equal(now[key], value), key
    assert {name: m.training for name, m in model.named_modules()} == modes
    assert [p.requires_grad for p in model.parameters()] == requires


def test_origin_is_the_models_loss_and_the_line_is_the_surfaces_middle_row() -> None:
    model = _net()
    x, y = _batch()
    loss, accuracy = _eval_loss(model, x, y)
    grid = landscape.surface(model, x, y, steps=5, span=0.5, seed=3)
    assert list(grid.columns) == ["alpha", "beta", "loss", "accuracy"] and len(grid) == 25
    assert sorted(set(grid["alpha"])) == pytest.approx([-0.5, -0.25, 0.0, 0.25, 0.5])
    origin = grid[(grid["alpha"] == 0.0) & (grid["beta"] == 0.0)].iloc[0]
    assert origin["loss"] == pytest.approx(loss, rel=1e-6) and origin["accuracy"] == pytest.approx(accuracy)
    # Moving away along random directions changes the loss (the directions are not zero).
    assert grid["loss"].max() > loss + 1e-4
    cut = landscape.line(model, x, y, steps=5, span=0.5, seed=3)
    middle = grid[grid["beta"] == 0.0].sort_values("alpha")
    assert list(cut["alpha"]) == pytest.approx(list(middle["alpha"]))
    assert list(cut["loss"]) == pytest.approx(list(middle["loss"]), rel=1e-6)
    # Seeded: the same call gives the same numbers; another seed another plane.
    again = landscape.surface(model, x, y, steps=5, span=0.5, seed=3)
    assert list(again["loss"]) == list(grid["loss"])
    other = landscape.surface(model, x, y, steps=5, span=0.5, seed=4)
    assert list(other["loss"]) != list(grid["loss"])


def test_interpolation_ends_are_the_two_models() -> None:
    start, end = _net(seed=0), _net(seed=5)
    x, y = _batch()
    # Different running statistics at the two ends: interpolated buffers must land exactly on each model.
    with torch.no_grad():
        for bn in (m for m in end.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.fill_(0.1)
            bn.running_var.fill_(2.0)
    path = landscape.line(start, x, y, steps=3, to=end)
    assert list(path["alpha"]) == [0.0, 0.5, 1.0]
    assert path["loss"].iloc[0] == pytest.approx(_eval_loss(start, x, y)[0], rel=1e-6)
    assert path["loss"].iloc[-1] == pytest.approx(_eval_loss(end, x, y)[0], rel=1e-6)
    with pytest.raises(landscape.LandscapeError, match="differ in architecture"):
        landscape.line(start, x, y, steps=3, to=build("resnet20", width=8, seed=0))


def test_weights_buffers_and_mode_exactly_restored_also_after_an_exception() -> None:
    model = _net()
    model.train()  # a training-mode model: the landscape must run in eval mode and leave it in train mode
    model.layer2.eval()  # a mixed mode must come back as it was, module by module
    x, y = _batch()
    before = _snapshot(model)
    landscape.surface(model, x, y, steps=3)
    _assert_unchanged(model, before)

    class Stop(Exception):
        pass

    def stop_after_four(done: int, total: int) -> None:
        assert total == 9
        if done == 4:
            raise Stop

    with pytest.raises(Stop):
        landscape.surface(model, x, y, steps=3, on_progress=stop_after_four)
    _assert_unchanged(model, before)
    with pytest.raises(Stop):
        landscape.line(model, x, y, steps=9, on_progress=lambda done, total: (_ for _ in ()).throw(Stop()))
    _assert_unchanged(model, before)


def test_filter_normalisation_and_zero_bn_bias_directions() -> None:
    model = _net()
    rng = torch.get_rng_state()
    d1, d2 = landscape.directions(model, seed=7)
    assert torch.equal(torch.get_rng_state(), rng)  # a local generator, the global state untouched
    params = dict(model.named_parameters())
    assert set(d1) == set(params)
    filters = 0
    for name, weight in params.items():
        for d in (d1, d2):
            assert d[name].shape == weight.shape
            if weight.dim() <= 1:  # BN scale/shift and the fc bias
                assert torch.count_nonzero(d[name]) == 0, name
            else:  # every output filter has its weight filter's norm
                w_norm = weight.detach().flatten(1).norm(dim=1)
                assert torch.allclose(d[name].flatten(1).norm(dim=1), w_norm, rtol=1e-5), name
                filters += weight.shape[0]
    assert filters > 100 and not torch.equal(d1["conv1.weight"], d2["conv1.weight"])
    again, _ = landscape.directions(model, seed=7)
    assert all(torch.equal(again[k], d1[k]) for k in d1)
    bn_names = [n for n in params if ".bn" in n or n.startswith("bn1")]
    assert bn_names and all(torch.count_nonzero(d1[n]) == 0 for n in bn_names)


def test_bad_requests_say_what_to_do() -> None:
    model = _net()
    x, y = _batch()
    with pytest.raises(landscape.LandscapeError, match="steps must be"):
        landscape.surface(model, x, y, steps=1)
    with pytest.raises(landscape.LandscapeError, match="span must be"):
        landscape.surface(model, x, y, span=float("nan"))
    with pytest.raises(landscape.LandscapeError, match="one class index per image"):
        landscape.surface(model, x, y[:3])
    with pytest.raises(landscape.LandscapeError, match="from 0 to 9"):
        landscape.line(model, x, y + 10, steps=3)


def test_the_estimate_grows_with_the_batch_and_is_scaled_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every image's input and activations are counted (issue 23 point 4), the weights' copies once; over the
    budget the points are evaluated in smaller chunks. Figures as costs.py gave them before the costs moved."""
    from resnet_core.settings import ENV_MEMORY_BUDGET

    model = build("resnet20", width=8, seed=0)
    one, eight = landscape.estimate(model, (1, 3, 32, 32)), landscape.estimate(model, (8, 3, 32, 32))
    # Less one 8x32x32 float map per image since issue 24 (the stem's ReLU in place: LIVE_FORWARD 4 -> 3).
    assert (one.total, eight.total) == (1235064 - 32768, 2238584 - 8 * 32768)
    for part in ("input", "live activations"):
        assert eight.parts[part] == 8 * one.parts[part] > 0, part
    for part in ("private copy of the weights", "directions and perturbed weights"):
        assert eight.parts[part] == one.parts[part] > 0, part
    assert (one.request["batch"], eight.request["batch"]) == (1, 8)
    twin = landscape.estimate(model, (8, 3, 32, 32), twin=True)
    assert twin.total - eight.total == one.parts["private copy of the weights"]  # the second model's weights
    monkeypatch.setenv(ENV_MEMORY_BUDGET, "25MB")
    chunked = landscape.estimate(model, (64, 3, 64, 64))
    at_64_px = 8 * 64 * 64 * 4  # one 8x64x64 float map per image less since issue 24, as above
    assert chunked.request["batch"] == 32 and chunked.total == 19441784 - 32 * at_64_px
    assert chunked.note.startswith("Scaled to 32 images per batch (from 64)")
    # Its recipe replays a landscape, not a bare forward pass.
    assert chunked.again(batch=64).total == 37791864 - 64 * at_64_px


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_the_models_device() -> None:
    model = _net().cuda()
    x, y = _batch()
    grid = landscape.surface(model, x, y, steps=3)
    cpu = landscape.surface(model.cpu(), x, y, steps=3)
    assert list(grid["loss"]) == pytest.approx(list(cpu["loss"]), rel=1e-3)
