"""resnet_core.models and blocks against torchvision and the paper: keys, weights, outputs, counts, options."""

from __future__ import annotations

import pytest
import torch
import torchvision.models as tvm
from torch import nn

import resnet_core
from resnet_core import build, count_params, iter_blocks
from resnet_core.blocks import PadShortcut, Tap
from resnet_core.describe import shortcut_kind
from resnet_core.models import ARCHITECTURES

TORCHVISION_ARCHS = [name for name, spec in ARCHITECTURES.items() if spec.torchvision]
# The exact parameter counts for the paper's CIFAR nets (option A, 10 classes); Table 6 rounds them.
CIFAR_PARAMS = {"resnet20": 269_722, "resnet32": 464_154, "resnet44": 658_586, "resnet56": 853_018,
                "resnet110": 1_727_962, "resnet1202": 19_421_274}
# He et al. 2015, Table 1, "FLOPs" row (x10^9 multiply-adds), with the stride on the first 1x1 conv.
PAPER_TABLE1_GMACS = {"resnet18": 1.8, "resnet34": 3.6, "resnet50": 3.8, "resnet101": 7.6, "resnet152": 11.3}


def _tv_meta(name: str) -> dict:
    """torchvision's published metadata for the first weights of ``name`` (no download)."""
    return next(iter(tvm.get_model_weights(name))).meta


def _randomize_bn(model: nn.Module, seed: int = 1) -> None:
    """Non-trivial BN statistics and affine terms, so equal outputs mean equal arithmetic, not 0 == 0."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                module.weight.copy_(torch.rand(n, generator=gen) * 0.5 + 0.25)
                module.bias.copy_(torch.randn(n, generator=gen) * 0.1)


@pytest.mark.parametrize("name", TORCHVISION_ARCHS)
def test_torchvision_exact(name: str) -> None:
    """Keys and shapes equal; strict loads both ways; eval outputs agree within 1e-5 with the same weights."""
    ours = build(name, seed=0).eval()
    _randomize_bn(ours)
    ours_sd = ours.state_dict()
    with torch.device("meta"):
        theirs = tvm.get_model(name)
    assert {k: tuple(v.shape) for k, v in ours_sd.items()} == {
        k: tuple(v.shape) for k, v in theirs.state_dict().items()
    }
    # Ours -> torchvision (assign: the meta model takes our tensors without copying 100M parameters).
    theirs.load_state_dict(ours_sd, strict=True, assign=True)
    theirs.eval()
    # torchvision -> ours, into a fresh model.
    with torch.device("meta"):
        ours_again = build(name)
    ours_again.load_state_dict(theirs.state_dict(), strict=True, assign=True)
    ours_again.eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = theirs(x)
        got, got_again = ours(x), ours_again(x)
    assert expected.shape == (2, 1000)
    assert expected.abs().max() > 1e-3  # a real signal, not all zeros
    assert (got - expected).abs().max().item() <= 1e-5
    assert (got_again - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize("name", TORCHVISION_ARCHS)
def test_param_count_equals_torchvision(name: str) -> None:
    with torch.device("meta"):
        ours, theirs = build(name), tvm.get_model(name)
    assert count_params(ours) == count_params(theirs) == _tv_meta(name)["num_params"]


def test_param_counts_of_named_extremes() -> None:
    """The two numbers the issue quotes, as a reader would check them."""
    models = resnet_core.list_models().set_index("name")
    assert models.loc["resnet18", "params"] == 11_689_512
    assert models.loc["wide_resnet101_2", "params"] == 126_886_696


@pytest.mark.parametrize("name", list(CIFAR_PARAMS))
def test_cifar_param_counts(name: str) -> None:
    with torch.device("meta"):
        model = build(name)
    assert count_params(model) == CIFAR_PARAMS[name]
    assert model.fc.out_features == 10 and model.shortcut_option == "A"
    assert 6 * len(iter_blocks(model)) // 3 + 2 == ARCHITECTURES[name].depth == int(name[6:])


def test_list_models_macs_match_torchvision_metadata() -> None:
    """torchvision publishes its counts (in its `_ops` field, called GFLOPS, really GMACs) to 3 decimals."""
    models = resnet_core.list_models().set_index("name")
    for name in TORCHVISION_ARCHS:
        assert round(models.loc[name, "macs"] / 1e9, 3) == pytest.approx(_tv_meta(name)["_ops"], abs=1e-9), name
        assert models.loc[name, "params"] == _tv_meta(name)["num_params"]


@pytest.mark.parametrize("name", list(PAPER_TABLE1_GMACS))
def test_macs_match_paper_table1_with_stride_on_1x1(name: str) -> None:
    with torch.device("meta"):
        model = build(name, stride_on="1x1")
    gmacs = resnet_core.count_macs(model, 224) / 1e9
    assert abs(gmacs / PAPER_TABLE1_GMACS[name] - 1) <= 0.03, gmacs


def test_list_models_table() -> None:
    models = resnet_core.list_models()
    assert list(models["name"]) == list(ARCHITECTURES)
    for column in ("name", "family", "depth", "block", "params", "macs", "paper", "input_size"):
        assert column in models.columns
    row = models.set_index("name").loc["resnet56"]
    assert (row["depth"], row["block"], row["input_size"], row["family"]) == (56, "basic", 32, "CIFAR ResNet")
    assert "1512.03385" in row["paper"]
    both = resnet_core.list_models(include_plain=True)
    assert len(both) == 2 * len(ARCHITECTURES)
    plain = both[(both["name"] == "resnet56") & ~both["residual"]].iloc[0]
    assert plain["label"] == "Plain-56" and plain["params"] == CIFAR_PARAMS["resnet56"]  # option A: no weights


def test_count_macs_shortcut_equals_one_plain_pass() -> None:
    """count_macs reuses counts of repeated blocks; it must equal a single FlopCounterMode pass."""
    from torch.utils.flop_counter import FlopCounterMode

    for name, options, size in [("resnet50", {}, 224), ("resnet56", {"residual": False}, 32),
                                ("resnet34", {"preact": True, "shortcut": "C"}, 160),
                                ("resnext50_32x4d", {"stride_on": "1x1"}, 96)]:
        with torch.device("meta"):
            model = build(name, **options)
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 3, size, size, device="meta"))
        assert resnet_core.count_macs(model, size) == counter.get_total_flops() // 2, name


def test_plain_twin_has_no_shortcut() -> None:
    for name, shortcut in [("resnet56", "A"), ("resnet50", "B"), ("resnet18", "C")]:
        with torch.device("meta"):
            plain = build(name, residual=False, shortcut=shortcut)
        for block_name, block in iter_blocks(plain):
            assert block.downsample is None and shortcut_kind(block) == "none", block_name
            assert not hasattr(block, "tap_shortcut") and not hasattr(block, "tap_shortcut_in")
        assert not any("downsample" in key for key in plain.state_dict())
        assert not any(isinstance(m, PadShortcut) for m in plain.modules())


def _projection_params(model: nn.Module) -> int:
    """Parameters held by shortcut modules, counted from the modules themselves."""
    return sum(p.numel() for _, block in iter_blocks(model) if block.downsample is not None
               for p in block.downsample.parameters())


def test_shortcut_options_param_differences() -> None:
    with torch.device("meta"):
        a, b, c = (build("resnet56", shortcut=s) for s in "ABC")
        plain = build("resnet56", residual=False)
    # A adds no weights at all: the residual net and its plain twin have the same count (paper section 4.2).
    assert count_params(a) == count_params(plain) == CIFAR_PARAMS["resnet56"]
    # B projects at the two shape changes (16->32, 32->64): 1x1 conv weights plus BN scale and shift.
    assert count_params(b) - count_params(a) == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64) == _projection_params(b)
    # C projects in all 27 blocks.
    expected_c = sum(conv.in_channels * conv.out_channels + 2 * conv.out_channels
                     for _, blk in iter_blocks(c) for conv in [blk.downsample[0]])
    assert count_params(c) - count_params(a) == expected_c == _projection_params(c)
    kinds_a = [shortcut_kind(blk) for _, blk in iter_blocks(a)]
    assert kinds_a.count("zero-pad") == 2 and kinds_a.count("identity") == 25
    assert all(shortcut_kind(blk) == "projection" for _, blk in iter_blocks(c))
    # torchvision's ResNet-50 is option B: the plain twin loses exactly its 4 projections.
    with torch.device("meta"):
        r50, p50 = build("resnet50"), build("resnet50", residual=False)
    assert count_params(r50) - count_params(p50) == _projection_params(r50) > 0


@pytest.mark.parametrize("name,size", [("resnet20", 32), ("resnet50", 64)])
def test_preact_builds_and_runs(name: str, size: int) -> None:
    model = build(name, seed=0, preact=True, width=8).eval()
    assert hasattr(model, "bn_final") and not hasattr(model, "bn1")
    assert all(type(blk).__name__.startswith("PreAct") for _, blk in iter_blocks(model))
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, model.fc.out_features) and torch.isfinite(out).all()
    # The same pre-activation net without shortcuts also runs.
    plain = build(name, seed=0, preact=True, residual=False, width=8).eval()
    with torch.no_grad():
        assert plain(x).shape == out.shape


def _block_io(model: nn.Module, x: torch.Tensor) -> list[tuple[str, nn.Module, torch.Tensor, torch.Tensor]]:
    records = []
    handles = [block.register_forward_hook(
        lambda mod, args, out, name=name: records.append((name, mod, args[0].detach(), out.detach())))
        for name, block in iter_blocks(model)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return records


@pytest.mark.parametrize("preact", [False, True])
def test_zero_init_residual_makes_blocks_identity(preact: bool) -> None:
    model = build("resnet20", seed=0, zero_init_residual=True, preact=preact, width=8).eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    records = _block_io(model, x)
    assert len(records) == 9
    for name, block, inp, out in records:
        expected = block.downsample(inp) if block.downsample is not None else inp
        # Post-activation blocks end in a ReLU; their input is already non-negative (it left a ReLU).
        assert (out - expected).abs().max().item() == 0.0, name
    # Without the flag the same blocks do change their input.
    moved = _block_io(build("resnet20", seed=0, preact=preact, width=8).eval(), x)
    assert all((out - inp).abs().max() > 1e-3 for _, blk, inp, out in moved if blk.downsample is None)


def test_taps_and_relus_hold_no_parameters() -> None:
    model = build("resnet50", seed=0, width=8, shortcut="C")
    taps = [m for m in model.modules() if isinstance(m, Tap)]
    assert len(taps) == 16 * 6
    assert all(not list(t.parameters()) and not list(t.buffers()) for t in taps)
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert all(not r.inplace for r in relus)
    assert len(relus) == len({id(r) for r in relus}) == 1 + 16 * 3  # one module per use
    assert not any(part.startswith(("tap_", "relu")) for key in model.state_dict() for part in key.split("."))


def test_residual_add_is_out_of_place() -> None:
    """A tensor seen by a tap hook is never modified later in the forward pass."""
    model = build("resnet20", seed=0, width=8).eval()
    seen: list[tuple[str, torch.Tensor, int, torch.Tensor]] = []
    handles = []
    for name, block in iter_blocks(model):
        for tap in ("tap_branch", "tap_shortcut", "tap_sum", "tap_out"):
            module = getattr(block, tap)
            handles.append(module.register_forward_hook(
                lambda mod, args, out, key=f"{name}.{tap}": seen.append((key, out, out._version, out.clone()))))
    try:
        with torch.no_grad():
            model(torch.randn(2, 3, 32, 32))
    finally:
        for handle in handles:
            handle.remove()
    assert len(seen) == 9 * 4
    for key, tensor, version, copy in seen:
        assert tensor._version == version, key
        assert torch.equal(tensor, copy), key
    assert resnet_core.count_hooks(model) == 0


@pytest.mark.parametrize("call,fragment", [
    (lambda: build("resnet50", shortcut="D"), "'D'"),
    (lambda: build("resnet50", stride_on="2x2"), "'2x2'"),
    (lambda: build("resnet51"), "Unknown architecture 'resnet51'"),
    (lambda: build("resnet18", depth=3), "Unknown option"),
    (lambda: build("resnet18", width=0), "width must be a positive"),
    (lambda: build("resnet18", num_classes=0), "num_classes"),
    (lambda: resnet_core.ResNet("basic", [2, 2], groups=32), "bottleneck"),
    (lambda: resnet_core.ResNet("basic", [2, 0]), "at least one block"),
    (lambda: resnet_core.ResNet("triple", [2]), "'triple'"),
])
def test_bad_options_raise_readable_value_error(call, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert fragment in message
    assert message.rstrip().endswith(".") and "\n" not in message


def test_seed_makes_builds_repeatable_without_touching_global_rng() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build("resnet20", seed=7, width=8)
    after = torch.rand(1)
    b = build("resnet20", seed=7, width=8)
    assert torch.equal(before, after)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_concurrent_seeded_builds_each_get_their_own_weights() -> None:
    """Builds from several threads at once equal serial builds: no build reads the global random state."""
    from concurrent.futures import ThreadPoolExecutor

    seeds = [0, 1, 2, 3, 4, 5, 6, 7]
    serial = {seed: build("resnet20", seed=seed, width=8).state_dict() for seed in seeds}
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(3):
            parallel = dict(zip(seeds, pool.map(lambda s: build("resnet20", seed=s, width=8).state_dict(), seeds),
                                strict=True))
            for seed in seeds:
                assert all(torch.equal(serial[seed][k], parallel[seed][k]) for k in serial[seed]), seed
    # Different seeds differ in every convolution and in the classifier.
    a, b = serial[0], serial[1]
    assert not torch.equal(a["conv1.weight"], b["conv1.weight"]) and not torch.equal(a["fc.weight"], b["fc.weight"])


def test_seeded_build_keeps_torchvision_initialisation_statistics() -> None:
    """The generator-drawn init is torchvision's: kaiming-normal (fan_out) convs, unit BN, nn.Linear's fc."""
    model = build("resnet50", seed=3)
    conv = model.layer3[0].conv2.weight  # 256 -> 256, 3x3: std = sqrt(2 / (256 * 9))
    assert conv.std().item() == pytest.approx((2 / (conv.shape[0] * 9)) ** 0.5, rel=0.02)
    bound = 1 / model.fc.in_features**0.5
    assert model.fc.weight.abs().max().item() <= bound and model.fc.weight.abs().max().item() > 0.99 * bound
    assert model.fc.bias.abs().max().item() <= bound
    assert torch.equal(model.bn1.weight, torch.ones_like(model.bn1.weight))
    assert torch.equal(model.bn1.running_var, torch.ones_like(model.bn1.running_var))
    assert model.bn1.num_batches_tracked.item() == 0
    zeroed = build("resnet50", seed=3, zero_init_residual=True)
    assert torch.count_nonzero(zeroed.layer1[0].bn3.weight) == 0


def test_option_a_shortcut_pads_zero_channels_on_both_sides_of_the_strided_identity() -> None:
    """The reference CIFAR option A (akamaster/pytorch_resnet_cifar10's LambdaLayer, used by its checkpoints):
    ``F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))``: zeros first and last, identity between."""
    model = build("resnet20", seed=0)
    (shortcut, *_) = (m for m in model.modules() if isinstance(m, PadShortcut))  # layer2.0: 16 -> 32, stride 2
    assert (shortcut.in_channels, shortcut.out_channels, shortcut.stride) == (16, 32, 2)
    x = torch.randn(2, 16, 8, 8, generator=torch.Generator().manual_seed(0))
    out = shortcut(x)
    planes = 32
    reference = torch.nn.functional.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))
    assert out.shape == (2, 32, 4, 4) and torch.equal(out, reference)
    assert torch.count_nonzero(out[:, :8]) == 0 and torch.count_nonzero(out[:, 24:]) == 0
    # The identity sits in the middle, taken at the even rows and columns (the strided 1x1 positions).
    assert torch.equal(out[:, 8:24], x[:, :, 0::2, 0::2])
    assert out[1, 8 + 5, 3, 1] == x[1, 5, 6, 2]
