"""Instruments: real torch, small seeded nets. Values are checked against independent computations."""

from __future__ import annotations

import copy
import math
import threading

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from resnet_core import build, count_hooks, iter_blocks, model_lock
from resnet_core.probes import (
    MAX_HIST_VALUES,
    SWEEP_SETTINGS,
    activation_profile,
    compare_activations,
    compare_path_gradients,
    depth_sweep,
    gradient_norms,
    path_gradients,
    record_activations,
    resolve_layers,
    shapes_batch,
    spread_summary,
)
from resnet_core.targets import ClassTarget, LossTarget, TopClassTarget


def _net(name: str = "resnet20", **options) -> torch.nn.Module:
    return build(name, seed=0, width=4, **options).eval()


def _batch(n: int = 4, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=gen), torch.randint(0, 10, (n,), generator=gen)


def _snapshot(model: torch.nn.Module) -> dict:
    return {
        "modes": [m.training for m in model.modules()],
        "requires": [p.requires_grad for p in model.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "state": {k: v.clone() for k, v in model.state_dict().items()},
    }


def _assert_same(model: torch.nn.Module, before: dict, buffers: bool = True) -> None:
    after = _snapshot(model)
    assert after["modes"] == before["modes"]
    assert after["requires"] == before["requires"]
    for a, b in zip(after["grads"], before["grads"], strict=True):
        assert (a is None and b is None) or torch.equal(a, b)
    for key, value in before["state"].items():
        assert torch.equal(after["state"][key], value) or not buffers, key
    assert count_hooks(model) == 0


# ------------------------------------------------------------------------------------------ addressing


def test_named_sets_patterns_and_lists():
    model = _net()
    blocks = resolve_layers(model, "blocks")
    assert blocks == [name for name, _ in iter_blocks(model)] and len(blocks) == 9
    assert resolve_layers(model, "stages") == ["maxpool", "layer1", "layer2", "layer3"]
    taps = resolve_layers(model, "taps")
    assert taps[0] == "maxpool" and "layer1.0.tap_shortcut_in" in taps and len(taps) == 1 + 9 * 6
    assert resolve_layers(model, "layer2.*.tap_sum") == ["layer2.0.tap_sum", "layer2.1.tap_sum", "layer2.2.tap_sum"]
    assert resolve_layers(model, ["fc", "layer1.0"]) == ["fc", "layer1.0"]
    plain_taps = resolve_layers(_net(residual=False), "taps")
    assert not any("shortcut" in name for name in plain_taps) and len(plain_taps) == 1 + 9 * 4


@pytest.mark.parametrize("bad", ["layer9.0", "nothing*", ["fc", "fc2"]])
def test_unknown_layers_raise_one_sentence(bad):
    with pytest.raises(ValueError, match=r"^(This model has no layer|No layer of this model)"):
        resolve_layers(_net(), bad)


# ------------------------------------------------------------------------------------------ activation stats


def test_stats_match_the_tensors_they_summarise():
    model = _net()
    x, _ = _batch()
    seen: dict[str, torch.Tensor] = {}
    handles = [model.get_submodule(n).register_forward_hook(lambda m, a, o, n=n: seen.__setitem__(n, o.detach()))
               for n in ("layer1.0", "layer2.1.tap_sum", "layer3.2.tap_branch")]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    stats = activation_profile(model, x, ["layer1.0", "layer2.1.tap_sum", "layer3.2.tap_branch"]).stats()
    assert list(stats["layer"]) == ["layer1.0", "layer2.1.tap_sum", "layer3.2.tap_branch"]
    assert list(stats["depth"]) == [0, 1, 2]
    for row in stats.itertuples():
        t = seen[row.layer].double()
        assert row.numel == t.numel()
        assert row.mean == pytest.approx(t.mean().item(), rel=1e-5, abs=1e-6)
        assert row.std == pytest.approx(t.std(unbiased=False).item(), rel=1e-4)
        assert row.min == pytest.approx(t.min().item()) and row.max == pytest.approx(t.max().item())
    block, tap_sum = stats.iloc[0], stats.iloc[1]
    assert block.post_relu and block.zero_share == pytest.approx((seen["layer1.0"] == 0).double().mean().item())
    assert block.negative_share == 0 and block.inactive_share == block.zero_share
    assert not tap_sum.post_relu and math.isnan(tap_sum.zero_share)
    assert tap_sum.negative_share == pytest.approx((seen["layer2.1.tap_sum"] < 0).double().mean().item())
    assert tap_sum.block == "layer2.1" and tap_sum.tap == "tap_sum" and tap_sum.stage == "layer2"
    assert stats.iloc[0].block_index == 0 and stats.iloc[2].block_index == 8


def test_zero_share_counts_negative_zeros_after_relu():
    """ReLU passes -0.0 through; it is still an exact zero (the fast integer path must not miss it)."""
    relu = torch.nn.Sequential(torch.nn.ReLU())
    x = torch.tensor([-0.0] * 10 + [-1.0] * 20 + [0.5] * 30 + [2.0] * 40).view(1, 1, 10, 10)
    row = activation_profile(relu, x, ["0"]).stats().iloc[0]
    assert row["post_relu"] and row["zero_share"] == pytest.approx(0.3) and row["max"] == 2.0
    y = torch.tensor([0.0] * 25 + [3.0] * 75).view(1, 1, 10, 10)
    row = activation_profile(relu, y, ["0"]).stats().iloc[0]
    assert row["zero_share"] == pytest.approx(0.25) and row["min"] == 0.0 and row["max"] == 3.0


def test_histograms_are_fixed_bins_that_count_every_value():
    model = _net()
    x, _ = _batch()
    with record_activations(model, "blocks", bins=12, hist_range=(-3.0, 3.0)) as rec, torch.no_grad():
        model(x)
    hist = rec.histograms()
    assert set(hist.groupby("layer")["bin"].count()) == {12}
    assert hist["bin_left"].min() == -3.0 and hist["bin_right"].max() == 3.0
    per_layer = hist.groupby("layer", sort=False)["count"].sum()
    numel = rec.stats().set_index("layer")["numel"]
    assert all(n <= MAX_HIST_VALUES for n in numel)
    # Values beyond the range land in the edge bins, so the counts add up to every value.
    assert (per_layer == numel.loc[per_layer.index]).all()
    assert hist.groupby("layer")["share"].sum().round(6).eq(1.0).all()
    # Post-ReLU block outputs: nothing below zero.
    assert hist[hist["bin_right"] <= 0]["count"].sum() == 0


def test_two_forward_passes_accumulate():
    model = _net()
    x, _ = _batch()
    with record_activations(model, "layer1.0") as rec, torch.no_grad():
        model(x[:2])
        model(x[2:])
    whole = activation_profile(model, x, "layer1.0").stats().iloc[0]
    row = rec.stats().iloc[0]
    assert row["numel"] == whole["numel"]
    assert row["mean"] == pytest.approx(whole["mean"], rel=1e-5)
    assert row["std"] == pytest.approx(whole["std"], rel=1e-4)


def test_maps_keep_the_top_channels_downsampled():
    model = _net()
    x, _ = _batch(2, 32)
    full: dict[str, torch.Tensor] = {}
    handle = model.layer1[0].register_forward_hook(lambda m, a, o: full.__setitem__("out", o.detach()))
    with torch.no_grad():
        model(x)
    handle.remove()
    rec = activation_profile(model, x, "layer1.0", keep="maps", max_channels=3, max_side=8)
    maps = rec.maps["layer1.0"]
    assert maps.shape == (2, 4, 32, 32) and tuple(maps.maps.shape) == (1, 3, 8, 8)
    means = full["out"][:1].mean(dim=(0, 2, 3))
    assert maps.channels == torch.topk(means, 3).indices.tolist()
    expected = F.adaptive_avg_pool2d(full["out"][:1, maps.channels], (8, 8))
    assert torch.allclose(maps.maps, expected, atol=1e-6)
    assert "highest mean activation" in maps.rule


def test_resnet152_every_layer_maps_fit_the_bound():
    """Maps of every module of ResNet-152 at 224x224 stay within channels x side^2 per layer (storages counted)."""
    model = build("resnet152", seed=0).eval()
    x = torch.randn(1, 3, 224, 224)
    rec = activation_profile(model, x, "*", keep="maps", max_channels=8, max_side=16)
    spatial = [name for name in rec.layers if len(rec._shapes[name]) == 4]
    assert len(spatial) > 800 and set(rec.maps) == set(spatial)
    bound = len(spatial) * 8 * 16 * 16 * 4  # float32 bytes
    assert rec.nbytes() <= bound
    assert rec.nbytes() < 16 * 2**20  # whereas the full activations of one image are several hundred MB
    for maps in rec.maps.values():
        s, k, h, w = maps.maps.shape
        assert s == 1 and k <= 8 and max(h, w) <= 16
        assert maps.maps.untyped_storage().nbytes() == maps.maps.numel() * 4
    assert count_hooks(model) == 0


# ------------------------------------------------------------------------------------------ hooks and state


@pytest.mark.parametrize("instrument", ["record", "profile", "grad_norms", "paths"])
def test_hooks_removed_and_state_restored_even_after_an_exception(instrument):
    model = _net()
    model.layer2.train()  # a mixed train/eval state must come back exactly
    model.fc.weight.requires_grad_(False)
    model.conv1.weight.grad = torch.ones_like(model.conv1.weight)
    before = _snapshot(model)
    x, y = _batch()

    def boom(logits: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("target failed")

    if instrument == "record":
        with pytest.raises(RuntimeError, match="inside"), record_activations(model, "taps", keep="both"):
            model(x)
            assert count_hooks(model) > 0
            raise RuntimeError("inside")
        # the test's own forward ran layer2 in train mode, which moves its running statistics
        _assert_same(model, before, buffers=False)
        return
    elif instrument == "profile":
        activation_profile(model, x, "taps", keep="both", train=True)
        _assert_same(model, before)
        with pytest.raises(RuntimeError):
            activation_profile(model, torch.randn(2, 5, 16, 16), "taps")
    elif instrument == "grad_norms":
        gradient_norms(model, x, LossTarget(y), "taps", train=True)
        _assert_same(model, before)
        with pytest.raises(RuntimeError, match="target failed"):
            gradient_norms(model, x, boom)
    else:
        path_gradients(model, x, LossTarget(y), train=True)
        _assert_same(model, before)
        with pytest.raises(RuntimeError, match="target failed"):
            path_gradients(model, x, boom)
    _assert_same(model, before)
    # The lock was released: another thread can take it.
    got = []

    def take() -> None:
        lock = model_lock(model)
        got.append(lock.acquire(timeout=1))
        if got[-1]:
            lock.release()

    thread = threading.Thread(target=take)
    thread.start()
    thread.join()
    assert got == [True]


def test_recording_holds_the_model_lock():
    model = _net()
    got = []
    with record_activations(model, "blocks"):
        thread = threading.Thread(target=lambda: got.append(model_lock(model).acquire(timeout=0.2)))
        thread.start()
        thread.join()
    assert got == [False]


# ------------------------------------------------------------------------------------------ gradient norms


def test_gradient_norms_match_autograd_and_backward():
    model = _net()
    x, y = _batch()
    frame = gradient_norms(model, x, LossTarget(y), ["layer1.0", "layer3.2", "fc"], train=False)
    assert list(frame["layer"]) == ["layer1.0", "layer3.2", "fc"]
    # Independent: capture outputs, differentiate, and a plain loss.backward() on a copy for parameters.
    ref = copy.deepcopy(model)
    outs: dict[str, torch.Tensor] = {}
    hooks = [ref.get_submodule(n).register_forward_hook(lambda m, a, o, n=n: outs.__setitem__(n, o))
             for n in ("layer1.0", "layer3.2")]
    loss = F.cross_entropy(ref(x), y, reduction="sum")
    for h in hooks:
        h.remove()
    g1, g3 = torch.autograd.grad(loss, [outs["layer1.0"], outs["layer3.2"]], retain_graph=True)
    loss.backward()
    assert frame.iloc[0].activation_grad_norm == pytest.approx(g1.norm().item(), rel=1e-4)
    assert frame.iloc[1].activation_grad_norm == pytest.approx(g3.norm().item(), rel=1e-4)
    block_grad = math.sqrt(sum(p.grad.double().pow(2).sum().item() for p in ref.layer3[2].parameters()))
    assert frame.iloc[1].param_grad_norm == pytest.approx(block_grad, rel=1e-4)
    assert frame.iloc[2].param_count == 16 * 10 + 10  # fc of a width-4 CIFAR net: 16 features -> 10 classes
    assert all(p.grad is None for p in model.parameters())


# ------------------------------------------------------------------------------------------ path gradients


VARIANTS = [
    ("resnet20", {}),
    ("resnet20", {"shortcut": "C"}),
    ("resnet20", {"preact": True}),
    ("resnet20", {"preact": True, "shortcut": "B"}),
    ("resnet50", {}),
]


def _block_input_grads(model, x, target, train=True):
    """Independent reference: plain autograd.grad at every block input (no views)."""
    ref = copy.deepcopy(model).train(train)
    ins: dict[str, torch.Tensor] = {}
    sums: dict[str, torch.Tensor] = {}
    hooks = []
    for name, block in iter_blocks(ref):
        hooks.append(block.register_forward_pre_hook(lambda m, a, n=name: ins.__setitem__(n, a[0])))
        hooks.append(block.tap_sum.register_forward_hook(lambda m, a, o, n=name: sums.__setitem__(n, o)))
    out = ref(x)
    for h in hooks:
        h.remove()
    names = list(ins)
    grads = torch.autograd.grad(target(out).sum(), [ins[n] for n in names] + [sums[n] for n in names])
    return dict(zip(names, grads[: len(names)], strict=True)), dict(zip(names, grads[len(names):], strict=True))


@pytest.mark.parametrize(("name", "options"), VARIANTS)
def test_path_split_is_exact(name, options):
    model = build(name, seed=0, width=4, **options).eval()
    size = 32 if name == "resnet50" else 16
    x, y = _batch(4, size)
    target = LossTarget(y)
    frame = path_gradients(model, x, target, train=True)
    assert len(frame) == len(iter_blocks(model))
    assert (frame["sum_error"] < 1e-6).all()
    assert (frame["shortcut_share"] + frame["branch_share"]).round(5).eq(1.0).all()
    totals, at_sum = _block_input_grads(model, x, target)
    blocks = dict(iter_blocks(model))
    for row in frame.itertuples():
        assert row.grad_norm == pytest.approx(totals[row.block].norm().item(), rel=1e-4)
        block = blocks[row.block]
        if row.split_at == "block input":
            assert row.total_norm == pytest.approx(row.grad_norm, rel=1e-5)
        if row.shortcut == "identity":
            # Through an identity shortcut the gradient is exactly the one at the sum; the branch gets the rest.
            shortcut = at_sum[row.block]
            assert row.shortcut_norm == pytest.approx(shortcut.norm().item(), rel=1e-4)
            assert row.branch_norm == pytest.approx((totals[row.block] - shortcut).norm().item(), rel=1e-3)
        assert row.shortcut == ("projection" if block.has_projection else row.shortcut)
    if options.get("preact") and options.get("shortcut") == "B":
        assert set(frame[frame["shortcut"] == "projection"]["split_at"]) == {"pre-activated input"}


def test_plain_net_has_no_shortcut_path():
    model = _net(residual=False)
    x, y = _batch()
    frame = path_gradients(model, x, LossTarget(y), train=True)
    assert set(frame["shortcut"]) == {"none"}
    assert frame["shortcut_norm"].isna().all() and frame["shortcut_share"].isna().all()
    assert (frame["branch_share"] == 1.0).all()
    assert (frame["branch_norm"] - frame["total_norm"]).abs().max() < 1e-5 * frame["total_norm"].max()


def test_path_gradients_with_a_class_target_and_eval_bn():
    model = _net()
    x, _ = _batch()
    frame = path_gradients(model, x, ClassTarget(3), train=False)
    totals, _ = _block_input_grads(model, x, ClassTarget(3), train=False)
    assert frame.iloc[0].grad_norm == pytest.approx(totals["layer1.0"].norm().item(), rel=1e-4)


# ------------------------------------------------------------------------------------------ comparisons


def test_compare_frames_carry_both_nets():
    model, twin = _net(), _net(residual=False)
    x, y = _batch()
    stats, hist = compare_activations(model, twin, x)
    assert list(dict.fromkeys(stats["net"])) == ["ResNet-20", "Plain-20"]
    assert stats.groupby("net")["depth"].count().eq(9).all() and set(hist["net"]) == {"ResNet-20", "Plain-20"}
    grads = compare_path_gradients(model, twin, x, LossTarget(y))
    assert dict(grads.groupby("net")["residual"].first()) == {"Plain-20": False, "ResNet-20": True}
    assert isinstance(grads, pd.DataFrame) and len(grads) == 18
    summary = spread_summary(stats).set_index("net")
    assert list(summary.index) == ["ResNet-20", "Plain-20"]
    for net, frame in stats.groupby("net"):
        assert summary.loc[net, "first_std"] == pytest.approx(frame["std"].iloc[0])
        assert summary.loc[net, "last_std"] == pytest.approx(frame["std"].iloc[-1])
        ratio = frame["std"].iloc[-1] / frame["std"].iloc[0]
        assert summary.loc[net, "trend"] == ("grows" if ratio > 1.1 else "shrinks" if ratio < 1 / 1.1 else "stays")


def test_spread_summary_says_what_was_measured():
    stats = pd.DataFrame({"net": ["a", "a", "b", "b", "c", "c"], "std": [1.0, 3.0, 2.0, 0.5, 1.0, 1.05]})
    summary = spread_summary(stats)
    assert list(summary["trend"]) == ["grows", "shrinks", "stays"]
    assert list(summary["ratio"]) == pytest.approx([3.0, 0.25, 1.05])


def test_probes_use_describes_shortcut_kind():
    import resnet_core.probes as probes
    from resnet_core.describe import shortcut_kind
    from resnet_core.probes import gradients

    assert gradients.shortcut_kind is shortcut_kind  # one address: describe's, not a copy in probes
    assert not hasattr(probes, "_shortcut_kind") and "shortcut_kind" not in probes.__all__


# ------------------------------------------------------------------------------------------ depth sweep


def test_depth_sweep_direction_at_depth_56():
    """With the page's settings: the plain BN net's first/last gradient ratio is >= 100x the residual twin's."""
    sweep = depth_sweep([56], **SWEEP_SETTINGS["cifar"])
    ratio = sweep.set_index("residual")["ratio"]
    assert ratio[False] >= 100 * ratio[True]
    assert ratio[False] > 1000 and ratio[True] > 1  # plain explodes toward the input; residual grows gently
    assert list(sweep["label"]) == ["ResNet-56", "Plain-56"]


def test_depth_sweep_rejects_unknown_depths():
    with pytest.raises(ValueError, match="no cifar ResNet of depth 50"):
        depth_sweep([50])


def test_shapes_batch_matches_the_model_input_and_its_classes():
    from resnet_core.data import SHAPES_CLASSES, make_shapes

    model = _net()
    x, target = shapes_batch(model, n=4)
    assert x.shape == (4, 3, 32, 32) and isinstance(target, LossTarget)
    assert torch.equal(target.labels, make_shapes(4, 32, seed=0).labels)
    # Trained on Shapes, classes in another order: labels follow the model's class names.
    model.class_names = list(reversed(SHAPES_CLASSES))
    _, target = shapes_batch(model, n=4)
    assert torch.equal(target.labels, 9 - make_shapes(4, 32, seed=0).labels)
    # Trained on other classes (CIFAR-10 names): the top-1 logit, not a meaningless loss.
    model.class_names = [f"cifar {i}" for i in range(10)]
    assert isinstance(shapes_batch(model, n=4)[1], TopClassTarget)


def test_negative_share_before_a_relu_does_not_count_exact_zeros():
    """Before a ReLU the share it will switch off is the negatives only: an exact 0 stays 0 either way."""
    conv = torch.nn.Conv2d(1, 1, 1, bias=False)  # weight 1: the output is the input, and not a ReLU output
    with torch.no_grad():
        conv.weight.fill_(1.0)
    x = torch.tensor([0.0] * 25 + [-1.0] * 15 + [2.0] * 60).view(1, 1, 10, 10)
    row = activation_profile(torch.nn.Sequential(conv), x, ["0"]).stats().iloc[0]
    assert not row["post_relu"] and math.isnan(row["zero_share"])
    assert row["negative_share"] == pytest.approx(0.15) and row["inactive_share"] == pytest.approx(0.15)
    assert row["min"] == -1.0 and row["max"] == 2.0
