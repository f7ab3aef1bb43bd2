"""resnet_core.describe: per-layer, per-block and per-stage tables whose totals are the model's counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import resnet_core
from resnet_core import build, count_params, describe, iter_blocks
from resnet_core.blocks import BasicBlock, Bottleneck
from resnet_core.describe import block_comparison, block_table, main_path_depth, stage_table, twin_comparison

CASES = [
    ("resnet50", {}, 224),
    ("resnet56", {}, 32),
    ("resnet56", {"residual": False}, 32),
    ("resnext50_32x4d", {"stride_on": "1x1"}, 224),
    ("resnet18", {"preact": True, "shortcut": "C"}, 224),
]


def _meta(name: str, **options) -> nn.Module:
    with torch.device("meta"):
        return build(name, **options)


@pytest.mark.parametrize("name,options,size", CASES)
def test_describe_totals_equal_counts(name: str, options: dict, size: int) -> None:
    model = _meta(name, **options)
    layers = describe(model, size)
    assert layers["params"].sum() == count_params(model)
    assert layers["macs"].sum() == resnet_core.count_macs(model, size)
    stages = stage_table(model, size, layers=layers)
    assert stages["params"].sum() == count_params(model)
    assert stages["macs"].sum() == resnet_core.count_macs(model, size)
    blocks = block_table(model, size, layers=layers)
    assert len(blocks) == len(iter_blocks(model))
    inside = layers[layers["stage"].str.startswith("layer")]
    assert blocks["params"].sum() == inside["params"].sum()
    assert blocks["macs"].sum() == inside["macs"].sum()
    assert not layers["module"].str.contains("tap_").any()  # taps compute nothing, so they are not rows


def test_describe_rows_for_resnet50() -> None:
    layers = describe(_meta("resnet50"), 224).set_index("module")
    conv1 = layers.loc["conv1"]
    assert (conv1["kind"], conv1["input_shape"], conv1["output_shape"]) == ("conv 7x7/2", "3x224x224", "64x112x112")
    assert conv1["params"] == 7 * 7 * 3 * 64
    assert conv1["macs"] == 7 * 7 * 3 * 64 * 112 * 112  # kernel x output positions: flop_counter agrees
    assert layers.loc["maxpool", "output_shape"] == "64x56x56"
    # torchvision's placement: the stride sits on the 3x3 conv of each stage's first block.
    assert layers.loc["layer2.0.conv2", "kind"] == "conv 3x3/2"
    assert layers.loc["layer2.0.downsample.0", "kind"] == "conv 1x1/2"
    assert layers.loc["fc", "output_shape"] == "1000"
    assert str(layers["block"].dtype) == "Int64"


def test_stage_table_is_table1() -> None:
    stages = stage_table(_meta("resnet50"), 224)
    assert list(stages["paper_stage"]) == ["conv1", "conv2_x", "conv3_x", "conv4_x", "conv5_x", "fc"]
    assert list(stages["output_size"]) == ["64x56x56", "256x56x56", "512x28x28", "1024x14x14", "2048x7x7", "1000"]
    assert list(stages["blocks"]) == [0, 3, 4, 6, 3, 0]
    assert stages.loc[1, "layer"] == "[1x1, 64; 3x3, 64; 1x1, 256] x 3"
    assert stages.loc[0, "layer"] == "7x7, 64, stride 2; 3x3 max pool, stride 2"
    cifar = stage_table(_meta("resnet20"), 32)
    assert list(cifar["output_size"]) == ["16x32x32", "16x32x32", "32x16x16", "64x8x8", "10"]
    assert cifar.loc[3, "layer"] == "[3x3, 64; 3x3, 64] x 3"
    resnext = stage_table(_meta("resnext50_32x4d"), 224)
    assert resnext.loc[1, "layer"] == "[1x1, 128; 3x3, 128, C=32; 1x1, 256] x 3"


@pytest.mark.parametrize("name,options,expected", [
    ("resnet50", {}, {"layer1.0": "projection", "layer1.1": "identity", "layer2.0": "projection",
                      "layer4.0": "projection", "layer4.2": "identity"}),
    ("resnet56", {}, {"layer1.0": "identity", "layer2.0": "zero-pad", "layer3.0": "zero-pad",
                      "layer3.8": "identity"}),
    ("resnet20", {"shortcut": "B"}, {"layer1.0": "identity", "layer2.0": "projection"}),
    ("resnet20", {"shortcut": "C"}, {"layer1.0": "projection", "layer1.1": "projection"}),
    ("resnet20", {"residual": False}, {"layer1.0": "none", "layer2.0": "none"}),
])
def test_block_table_shortcut_kinds(name: str, options: dict, expected: dict) -> None:
    size = 224 if name == "resnet50" else 32
    blocks = block_table(_meta(name, **options), size).set_index("block")
    for block, kind in expected.items():
        assert blocks.loc[block, "shortcut"] == kind, block
    first = blocks.iloc[0]
    assert first["stage"] == "layer1" and first["index"] == 0


def test_block_table_shapes_follow_the_stages() -> None:
    blocks = block_table(_meta("resnet20"), 32).set_index("block")
    assert (blocks.loc["layer2.0", "input_shape"], blocks.loc["layer2.0", "output_shape"]) == ("16x32x32",
                                                                                               "32x16x16")
    assert blocks.loc["layer3.2", "output_shape"] == "64x8x8"


def test_block_comparison_from_real_modules() -> None:
    table = block_comparison(256).set_index("block")
    basic, bottleneck = BasicBlock(256, 256), Bottleneck(256, 64)

    def conv_weights(block: nn.Module) -> int:
        return sum(m.weight.numel() for m in block.modules() if isinstance(m, nn.Conv2d))

    assert table.loc["BasicBlock", "conv_weights"] == conv_weights(basic) == 1_179_648
    assert table.loc["Bottleneck", "conv_weights"] == conv_weights(bottleneck) == 69_632
    assert table.loc["BasicBlock", "params"] == count_params(basic)
    assert table.loc["Bottleneck", "recipe"] == "1x1, 64 -> 3x3, 64 -> 1x1, 256"
    # MACs at 56x56: every conv weight is used once per output position (no strides here).
    assert table.loc["Bottleneck", "macs"] == 69_632 * 56 * 56
    with pytest.raises(ValueError, match="multiple of 4"):
        block_comparison(30)


def test_twin_comparison() -> None:
    table = twin_comparison(_meta("resnet56"), _meta("resnet56", residual=False), 32)
    assert list(table["label"]) == ["ResNet-56", "Plain-56"]
    assert list(table["depth"]) == [56, 56]
    # Option A adds neither weights nor multiply-accumulates (the paper's "same cost" comparison).
    assert table["params"].nunique() == 1 and table["macs"].nunique() == 1
    assert list(table["zero_pad_shortcuts"]) == [2, 0] and list(table["identity_shortcuts"]) == [25, 0]
    r50 = twin_comparison(_meta("resnet50"), _meta("resnet50", residual=False), 224)
    assert list(r50["projection_shortcuts"]) == [4, 0]
    assert r50.loc[0, "params"] > r50.loc[1, "params"] and r50.loc[0, "macs"] > r50.loc[1, "macs"]
    assert main_path_depth(_meta("resnet152")) == 152


def test_describe_leaves_model_state_alone() -> None:
    model = build("resnet20", seed=0, width=8).train()
    describe(model, 32)
    assert model.training and resnet_core.count_hooks(model) == 0


def test_describe_is_exact_while_another_thread_runs_forwards() -> None:
    """Per-layer MACs only count this thread's ops, even while another net runs forwards in a thread."""
    import threading

    model = _meta("resnet18")
    alone = describe(model, 224)
    other = build("resnet20")
    stop = threading.Event()
    ran = []

    def busy() -> None:
        x = torch.randn(8, 3, 32, 32)
        while not stop.is_set():
            with torch.no_grad():
                other(x)
            ran.append(1)

    thread = threading.Thread(target=busy, daemon=True)
    thread.start()
    try:
        while not ran:
            stop.wait(0.01)
        tables = [describe(model, 224) for _ in range(10)]
    finally:
        stop.set()
        thread.join(timeout=30)
    assert len(ran) > 1
    for table in tables:
        assert list(table["macs"]) == list(alone["macs"])
        assert list(table["input_shape"]) == list(alone["input_shape"])
    assert resnet_core.count_hooks(model) == 0


def test_block_table_rows_are_each_blocks_own_counts_with_ten_or_more_blocks_per_stage() -> None:
    """ResNet-110 has 18 blocks per stage: ``layer1.1`` must not absorb ``layer1.10`` ... ``layer1.17``."""
    from torch.utils.flop_counter import FlopCounterMode

    model = _meta("resnet110")
    layers = describe(model, 32)
    blocks = block_table(model, 32, layers=layers).set_index("block")
    assert len(blocks) == 54 and {"layer1.1", "layer1.10", "layer3.17"} <= set(blocks.index)
    own_macs = {}
    with torch.no_grad():
        x = model.forward_stem(torch.zeros(1, 3, 32, 32, device="meta"))
        for stage in model.stages():
            for block in stage:
                with FlopCounterMode(display=False) as counter:
                    x = block(x)
                own_macs[block] = counter.get_total_flops() // 2
    names = {module: name for name, module in model.named_modules()}
    for block, macs in own_macs.items():
        row = blocks.loc[names[block]]
        assert row["params"] == sum(p.numel() for p in block.parameters()), names[block]
        assert row["macs"] == macs, names[block]
    inside = layers[layers["stage"].str.startswith("layer")]
    assert blocks["params"].sum() == inside["params"].sum() == sum(
        sum(p.numel() for p in block.parameters()) for block in own_macs)
    assert blocks["macs"].sum() == inside["macs"].sum() == sum(own_macs.values())


def _flop_counter_mode_per_leaf(model: nn.Module, size: int) -> dict[str, int]:
    """Each leaf's MACs as FlopCounterMode sees them, the reference the hook formulas must match."""
    from torch.utils.flop_counter import FlopCounterMode

    started, macs = {}, {}
    handles = []
    counter = FlopCounterMode(display=False)
    for name, module in model.named_modules():
        if name and not list(module.children()):
            handles.append(module.register_forward_pre_hook(
                lambda _m, _a, name=name: started.__setitem__(name, counter.get_total_flops())))
            handles.append(module.register_forward_hook(
                lambda _m, _a, _o, name=name: macs.__setitem__(
                    name, macs.get(name, 0) + (counter.get_total_flops() - started[name]) // 2)))
    try:
        with counter, torch.no_grad():
            model.eval()(torch.zeros(1, 3, size, size, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    return macs


# One net per kind of block and stem: the deeper ones repeat these blocks (ResNet-101/152 are ResNet-50's
# bottlenecks, ResNet-1202 and -44 ResNet-110's and -56's), and their hooked reference passes cost seconds each.
HOOK_COUNTED = ["resnet18", "resnet34", "resnet50", "resnext50_32x4d", "wide_resnet50_2", "resnet18_cifar",
                "resnet34_cifar", "resnet50_cifar", "resnet20", "resnet32", "resnet56", "resnet110"]


def test_the_hook_counted_nets_cover_every_kind_of_architecture() -> None:
    """Every family, block and stem of the registry has a net in the sweep below."""
    kinds = {(spec.family, spec.block, spec.stem) for spec in resnet_core.ARCHITECTURES.values()}
    swept = {(spec.family, spec.block, spec.stem) for name, spec in resnet_core.ARCHITECTURES.items()
             if name in HOOK_COUNTED}
    assert swept == kinds and set(HOOK_COUNTED) <= set(resnet_core.ARCHITECTURES)


@pytest.mark.parametrize("name", HOOK_COUNTED)
def test_the_hook_formulas_count_what_flop_counter_mode_counts_on_every_architecture(name: str) -> None:
    """Our nets are counted by torch.utils.flop_counter's formulas in hooks on their convolutions and fc layer;
    every leaf and the total must equal FlopCounterMode's count of one pass, for the residual net and its plain
    twin, whether the model runs on the meta device or (small nets) as a zero-filled CPU copy."""
    spec = resnet_core.ARCHITECTURES[name]
    size = spec.input_size if spec.input_size <= 64 else 64  # ImageNet nets at 64 px: the same layers, quicker
    for residual in (True, False):
        model = _meta(name, residual=residual)
        reference = _flop_counter_mode_per_leaf(model, size)
        layers = describe(model, size).set_index("module")
        assert {m: int(v) for m, v in layers["macs"].items()} == {m: reference[m] for m in layers.index}, name
        assert resnet_core.count_macs(model, size) == sum(reference.values()), (name, residual)
        assert next(model.parameters()).device.type == "meta" and resnet_core.count_hooks(model) == 0


def test_a_module_of_unknown_make_is_counted_by_flop_counter_mode() -> None:
    """A module whose forward computes outside convolution or linear modules (here ``F.conv2d`` on its own
    weight) is not ours to count by hooks: the whole pass goes to FlopCounterMode, which sees every op."""

    class FunctionalConv(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(8, 3, 3, 3))
            self.head = nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = nn.functional.conv2d(x, self.weight, padding=1)
            return self.head(y.mean(dim=(2, 3)))

    model = FunctionalConv()
    shape = (1, 3, 16, 16)
    assert resnet_core.count_macs(model, shape) == 8 * 3 * 3 * 3 * 16 * 16 + 8 * 2
    rows = describe(model, shape).set_index("module")
    assert list(rows.index) == ["head"] and rows.loc["head", "macs"] == 8 * 2


def test_a_cifar_net_is_described_without_importing_torch_dynamo() -> None:
    """The landing page's report of ResNet-20 and Plain-20 in a fresh interpreter: a meta forward (batch norm and
    ReLU go through Python decompositions) or a FlopCounterMode would import torch._dynamo, a second of the cold
    start; the small nets run as zero-filled CPU copies and are counted by hooks instead."""
    import subprocess
    import sys

    script = (
        "import sys, torch\n"
        "from resnet_core import build\n"
        "from resnet_core.describe import architecture_report\n"
        "with torch.device('meta'):\n"
        "    model, twin = build('resnet20'), build('resnet20', residual=False)\n"
        "report = architecture_report(model, twin, 32)\n"
        "print(int(report.twin.loc[0, 'macs']), 'torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300)
    macs, dynamo = out.stdout.split()
    assert int(macs) == resnet_core.count_macs(_meta("resnet20"), 32) > 40_000_000
    assert dynamo == "False", out.stderr


@pytest.mark.parametrize("name,size", [("resnet20", 32), ("resnet18", 64)])
def test_a_batch_counts_each_image_on_the_cpu_copy_and_on_meta(name: str, size: int) -> None:
    """Four images cost four times one (the fc layer's rows included), on ResNet-20's zero-filled CPU copy and on
    ResNet-18's meta pass alike, and both agree with FlopCounterMode on the same batch."""
    from torch.utils.flop_counter import FlopCounterMode

    model = _meta(name)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.zeros(4, 3, size, size, device="meta"))
    batch = resnet_core.count_macs(model, (4, 3, size, size))
    assert batch == 4 * resnet_core.count_macs(model, size) == counter.get_total_flops() // 2
    assert describe(model, (4, 3, size, size))["macs"].sum() == batch
