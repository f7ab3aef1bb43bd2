"""Every key convention of ``resnet_core.weights.checkpoints.conventions``: the network re-implemented here in the layout
its public training code uses, saved the way that code saves it, loaded through the public paths (the file
loader the CLI uses, ``fit.checkpoint_config`` the app's picker uses, and the app's upload path), and its
outputs compared with the defining code's to 1e-5.

Reduced sizes by default (ResNet-18 with a CIFAR stem runs at full width); every depth at full width with
``RESNET_EXPLORER_FULL_CHECKPOINTS=1``. ``-s`` prints each layout's measured max output difference.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file
from torch import nn
from torchvision.models.resnet import BasicBlock as TvBasic
from torchvision.models.resnet import Bottleneck as TvBottleneck

import resnet_core
from resnet_core.errors import WeightsError
from resnet_core.models import ARCHITECTURES, build, count_params, display_name
from resnet_core.weights import checkpoint_config, load_model, width_for
from resnet_core.weights.checkpoints import (
    KEY_CONVENTIONS,
    NotAResNet,
    UnbuildableVariant,
    load_checkpoint_file,
    read_checkpoint,
    save_uploaded_checkpoint,
)

FULL = os.environ.get("RESNET_EXPLORER_FULL_CHECKPOINTS", "").strip() in ("1", "true", "yes")
TOLERANCE = 1e-5
MEASURED: dict[str, float] = {}


# ------------------------------------------------------------------------------------------------ helpers
def randomized(model: nn.Module, seed: int) -> nn.Module:
    """Every BatchNorm's affine parameters and running statistics and the classifier drawn from a generator of
    its own (convolutions keep their init): a tensor read under the wrong name changes the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.copy_(1 + 0.2 * torch.randn(module.weight.shape, generator=g))
                module.bias.copy_(0.2 * torch.randn(module.bias.shape, generator=g))
                module.running_mean.copy_(0.2 * torch.randn(module.running_mean.shape, generator=g))
                module.running_var.copy_(0.5 + torch.rand(module.running_var.shape, generator=g))
            elif isinstance(module, nn.Linear):
                module.weight.copy_(0.1 * torch.randn(module.weight.shape, generator=g))
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=g))
    return model.eval()


def check_layout(layout: str, path: Path, reference: nn.Module, size: int, arch: str | None,
                 notes: list[str]) -> float:
    """Load ``path`` through the file loader, ``fit.checkpoint_config`` and the upload path; compare every
    loaded model's outputs with ``reference``'s; return (and record) the largest difference."""
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        want = reference.eval()(x)
    loaded = load_checkpoint_file(path)
    config = checkpoint_config(path)
    stored = save_uploaded_checkpoint(path.read_bytes(), path.name)
    uploaded = load_model(config.arch or "resnet18", config.options, f"ckpt:{stored}")
    assert config.arch == arch and loaded.card.arch == (arch or "custom")
    for note in notes:
        assert note in loaded.card.notes, (note, loaded.card.notes)
        assert note in config.notes and note in uploaded.card.notes
    with torch.no_grad():
        diff = max(float((model(x) - want).abs().max()) for model in (loaded, uploaded))
    MEASURED[layout] = diff
    print(f"\n{layout}: max |output difference| = {diff:.2e} (outputs up to {float(want.abs().max()):.2f})")
    assert diff <= TOLERANCE
    return diff


# ----------------------------------------------------------- akamaster/pytorch_resnet_cifar10: option A
class LambdaLayer(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class AkamasterBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:  # option A: subsample, zero-pad the new channels
            self.shortcut = LambdaLayer(lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4),
                                                        "constant", 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class AkamasterResNet(nn.Module):
    def __init__(self, n: int, num_classes: int = 10) -> None:
        super().__init__()
        self.in_planes = 16
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(16, n, 1)
        self.layer2 = self._make_layer(32, n, 2)
        self.layer3 = self._make_layer(64, n, 2)
        self.linear = nn.Linear(64, num_classes)

    def _make_layer(self, planes: int, n: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(AkamasterBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3])
        return self.linear(out.view(out.size(0), -1))


@pytest.mark.parametrize("depth, zipped", [(20, False), (56, True)])
def test_akamaster_option_a_dataparallel_th(tmp_path, depth, zipped):
    net = randomized(AkamasterResNet((depth - 2) // 6), seed=depth)
    wrapped = nn.DataParallel(net)  # the repository trains under DataParallel: every key gets 'module.'
    path = tmp_path / f"resnet{depth}-12fca82f.th"
    # Its released files predate torch.save's zip format: the legacy format is read too.
    torch.save({"state_dict": wrapped.state_dict(), "best_prec1": 92.1}, path, _use_new_zipfile_serialization=zipped)
    check_layout(f"akamaster ResNet-{depth} (option A, .th, DataParallel)", path, net, 32, f"resnet{depth}",
                 ["read the tensors under 'state_dict'", "removed the 'module.' prefix from every key",
                  "classifier 'linear' read as 'fc'"])
    assert any("option-A" in note for note in load_checkpoint_file(path).card.notes)


# --------------------------------------------------------------------- kuangliu/pytorch-cifar: CIFAR stem
class KuangliuBasic(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class KuangliuBottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, 4 * planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != 4 * planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, 4 * planes, 1, stride, bias=False),
                                          nn.BatchNorm2d(4 * planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += self.shortcut(x)
        return F.relu(out)


class KuangliuResNet(nn.Module):
    """kuangliu's ResNet (``width`` is its fixed 64, made a parameter for small test nets)."""

    def __init__(self, block: type[nn.Module], num_blocks: list[int], num_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        self.in_planes = width
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = self._make_layer(block, width, num_blocks[0], 1)
        self.layer2 = self._make_layer(block, 2 * width, num_blocks[1], 2)
        self.layer3 = self._make_layer(block, 4 * width, num_blocks[2], 2)
        self.layer4 = self._make_layer(block, 8 * width, num_blocks[3], 2)
        self.linear = nn.Linear(8 * width * block.expansion, num_classes)

    def _make_layer(self, block: type[nn.Module], planes: int, n: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(block(self.in_planes, planes, s))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.avg_pool2d(out, 4)
        return self.linear(out.view(out.size(0), -1))


KUANGLIU = {18: (KuangliuBasic, [2, 2, 2, 2]), 34: (KuangliuBasic, [3, 4, 6, 3]),
            50: (KuangliuBottleneck, [3, 4, 6, 3]), 101: (KuangliuBottleneck, [3, 4, 23, 3]),
            152: (KuangliuBottleneck, [3, 8, 36, 3])}
# kuangliu's README/paper counts for 10 classes.
KUANGLIU_PARAMS = {18: 11_173_962, 34: 21_282_122, 50: 23_520_842, 101: 42_512_970, 152: 58_156_618}


@pytest.mark.parametrize("depth", list(KUANGLIU))
def test_kuangliu_cifar_stem_nets_are_zoo_architectures(depth):
    """At full width the re-implemented net has the zoo's keys and shapes (after the conventions), and its
    architecture is inferred as the zoo's ``resnet{depth}_cifar``; counted on the meta device."""
    block, blocks = KUANGLIU[depth]
    with torch.device("meta"):
        theirs = KuangliuResNet(block, blocks)
        ours = build(f"resnet{depth}_cifar")
        plain = build(f"resnet{depth}_cifar", residual=False)
    assert count_params(theirs) == count_params(ours) == KUANGLIU_PARAMS[depth]
    assert count_params(plain) < count_params(ours) and plain.card.label == f"Plain-{depth} (CIFAR stem)"
    renamed = resnet_core.weights.checkpoints.apply_conventions(dict(theirs.state_dict()), [])
    own = ours.state_dict()
    assert {k: tuple(v.shape) for k, v in renamed.items()} == {k: tuple(v.shape) for k, v in own.items()}
    inferred = resnet_core.weights.checkpoints.infer_architecture(renamed)
    assert (inferred.name, inferred.build_options()["shortcut"]) == (f"resnet{depth}_cifar", "B")
    assert "width" not in inferred.build_options()
    assert inferred.label == f"ResNet-{depth} (CIFAR stem), shortcut B, 10 classes"
    spec = ARCHITECTURES[f"resnet{depth}_cifar"]
    assert (spec.input_size, spec.base_width, spec.num_classes) == (32, 64, 10)
    assert width_for(f"resnet{depth}_cifar", "half") == 32 and display_name(f"resnet{depth}_cifar") == (
        f"ResNet-{depth} (CIFAR stem)")


@pytest.mark.parametrize("depth", list(KUANGLIU))
def test_kuangliu_net_acc_epoch_wrapper(tmp_path, depth):
    block, blocks = KUANGLIU[depth]
    width = 64 if FULL or depth == 18 else 8  # ResNet-18 at full width always; deeper ones slim unless FULL
    net = randomized(KuangliuResNet(block, blocks, width=width), seed=depth)
    state = nn.DataParallel(net).state_dict() if depth % 2 else net.state_dict()  # with and without 'module.'
    path = tmp_path / "ckpt.pth"
    torch.save({"net": state, "acc": 95.1, "epoch": 199}, path)
    check_layout(f"kuangliu ResNet-{depth} CIFAR stem (width {width}, {{'net','acc','epoch'}})", path, net, 32,
                 f"resnet{depth}_cifar",
                 ["read the tensors under 'net'", "projection shortcuts 'shortcut.0/1' read as 'downsample.0/1'",
                  "classifier 'linear' read as 'fc'", "CIFAR stem (3x3 convolution, no max-pool): 32 px input"])


# --------------------------------------------------- option B, 100 classes, bare (torchvision's blocks)
class CifarOptionB(nn.Module):
    """A CIFAR ResNet with torchvision's blocks and projection shortcuts (``downsample.0/1``), as the
    CIFAR-100 model collections define it."""

    def __init__(self, n: int, num_classes: int = 100) -> None:
        super().__init__()
        self.inplanes = 16
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(16, n, 1)
        self.layer2 = self._make_layer(32, n, 2)
        self.layer3 = self._make_layer(64, n, 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64, num_classes)

    def _make_layer(self, planes: int, n: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        layers = [TvBasic(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [TvBasic(planes, planes) for _ in range(1, n)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def test_option_b_cifar100_bare_state_dict(tmp_path):
    net = randomized(CifarOptionB(5), seed=3)
    path = tmp_path / "cifar100_resnet32.pt"
    torch.save(net.state_dict(), path)
    check_layout("option-B CIFAR ResNet-32, 100 classes (bare state_dict)", path, net, 32, "resnet32", [])
    assert checkpoint_config(path).options == {"residual": True, "shortcut": "B", "preact": False,
                                               "num_classes": 100}


# ------------------------------------------------------------------ Lightning, torch.compile, DDP
def _tv_small(block: type[nn.Module] = TvBasic, num_classes: int = 7) -> nn.Module:
    """torchvision's ResNet class with one block per stage (a "ResNet-10"): small, still torchvision's code."""
    return torchvision.models.ResNet(block, [1, 1, 1, 1], num_classes=num_classes)


class LitClassifier(nn.Module):
    """What a LightningModule's state_dict looks like: the network under ``self.model`` (or ``self.net``)."""

    def __init__(self, attribute: str) -> None:
        super().__init__()
        self.attribute = attribute
        setattr(self, attribute, _tv_small())

    @property
    def network(self) -> nn.Module:
        return getattr(self, self.attribute)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)


@pytest.mark.parametrize("attribute", ["model", "net"])
def test_lightning_checkpoint(tmp_path, attribute):
    lit = LitClassifier(attribute)
    randomized(lit, seed=11)
    optimizer = torch.optim.SGD(lit.parameters(), lr=1e-4, momentum=0.9)
    lit(torch.zeros(2, 3, 32, 32)).sum().backward()
    optimizer.step()  # a real momentum buffer in optimizer_states
    lit.eval()
    path = tmp_path / "epoch=3-step=120.ckpt"
    torch.save({"epoch": 3, "global_step": 120, "pytorch-lightning_version": "2.4.0",
                "state_dict": lit.state_dict(), "hyper_parameters": {"lr": 0.1, "arch": "resnet10"},
                "optimizer_states": [optimizer.state_dict()], "lr_schedulers": [],
                "callbacks": {"ModelCheckpoint": {"best_model_score": torch.tensor(0.91)}},
                "loops": {"fit_loop": {"epoch_progress": {"current": {"completed": 3}}}}}, path)
    check_layout(f"PyTorch Lightning (.ckpt, '{attribute}.' beside hyper_parameters)", path, lit.network, 64, None,
                 ["read the tensors under 'state_dict'", f"removed the '{attribute}.' prefix from every key"])
    assert "architecture inferred from the tensors" in load_checkpoint_file(path).card.notes


def test_torch_compile_orig_mod(tmp_path):
    net = randomized(_tv_small(num_classes=5), seed=12)
    compiled = torch.compile(net)  # compiled lazily: nothing runs until it is called
    path = tmp_path / "compiled.pt"
    torch.save(compiled.state_dict(), path)
    assert next(iter(compiled.state_dict())).startswith("_orig_mod.")
    check_layout("torch.compile ('_orig_mod.')", path, net, 64, None,
                 ["removed the '_orig_mod.' prefix from every key"])


def test_ddp_module_prefix(tmp_path):
    import torch.distributed as dist

    net = randomized(_tv_small(TvBottleneck, num_classes=6), seed=13)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        state = nn.parallel.DistributedDataParallel(net).state_dict()
    finally:
        dist.destroy_process_group()
    path = tmp_path / "ddp.pth"
    torch.save({"model": state, "epoch": 90}, path)
    check_layout("DistributedDataParallel ('module.', bottleneck)", path, net, 64, None,
                 ["read the tensors under 'model'", "removed the 'module.' prefix from every key"])


# ---------------------------------------------------------------------- safetensors, Hugging Face
def test_safetensors_in_torchvision_and_timm_layout(tmp_path):
    """torchvision's ResNet-18 (whose keys timm's resnet18 shares) saved as model hubs serve it."""
    net = randomized(torchvision.models.resnet18(), seed=14)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path), metadata={"format": "pt"})
    check_layout("safetensors, torchvision/timm layout (ResNet-18)", path, net, 64, "resnet18",
                 ["read with safetensors"])


class HFConvLayer(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, activation: bool = True) -> None:
        super().__init__()
        self.convolution = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)
        self.normalization = nn.BatchNorm2d(cout)
        self.activation = nn.ReLU() if activation else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.normalization(self.convolution(x)))


class HFShortCut(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.convolution = nn.Conv2d(cin, cout, 1, stride, bias=False)
        self.normalization = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalization(self.convolution(x))


class HFBasicLayer(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        apply = cin != cout or stride != 1
        self.shortcut = HFShortCut(cin, cout, stride) if apply else nn.Identity()
        self.layer = nn.Sequential(HFConvLayer(cin, cout, stride=stride), HFConvLayer(cout, cout, activation=False))
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.layer(x) + self.shortcut(x))


class HFBottleNeckLayer(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        apply = cin != cout or stride != 1
        reduces = cout // 4
        self.shortcut = HFShortCut(cin, cout, stride) if apply else nn.Identity()
        self.layer = nn.Sequential(HFConvLayer(cin, reduces, kernel=1), HFConvLayer(reduces, reduces, stride=stride),
                                   HFConvLayer(reduces, cout, kernel=1, activation=False))
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.layer(x) + self.shortcut(x))


class HFResNetForImageClassification(nn.Module):
    """transformers' ResNetForImageClassification, module for module (embedder, encoder.stages, classifier)."""

    def __init__(self, layer_type: str, depths: list[int], hidden_sizes: list[int], num_labels: int) -> None:
        super().__init__()
        layer = HFBasicLayer if layer_type == "basic" else HFBottleNeckLayer
        self.resnet = nn.Module()
        self.resnet.embedder = nn.Module()
        self.resnet.embedder.embedder = HFConvLayer(3, 64, kernel=7, stride=2)
        self.resnet.embedder.pooler = nn.MaxPool2d(3, 2, 1)
        self.resnet.encoder = nn.Module()
        stages, cin = [], 64
        for index, (depth, cout) in enumerate(zip(depths, hidden_sizes, strict=True)):
            blocks = [layer(cin, cout, 1 if index == 0 else 2)] + [layer(cout, cout, 1) for _ in range(depth - 1)]
            stage = nn.Module()
            stage.layers = nn.Sequential(*blocks)
            stages.append(stage)
            cin = cout
        self.resnet.encoder.stages = nn.ModuleList(stages)
        self.resnet.pooler = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(cin, num_labels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.resnet.embedder.pooler(self.resnet.embedder.embedder(x))
        for stage in self.resnet.encoder.stages:
            x = stage.layers(x)
        return self.classifier(self.resnet.pooler(x))


@pytest.mark.parametrize("layer_type, depths, sizes, arch", [
    ("basic", [2, 2, 2, 2], [64, 128, 256, 512], "resnet18"),
    ("bottleneck", [1, 1, 1, 1], [256, 512, 1024, 2048], None),
])
def test_hugging_face_transformers_layout(tmp_path, layer_type, depths, sizes, arch):
    net = randomized(HFResNetForImageClassification(layer_type, depths, sizes, num_labels=10), seed=15)
    path = tmp_path / "model.safetensors"
    save_file(dict(net.state_dict()), str(path), metadata={"format": "pt"})
    check_layout(f"Hugging Face transformers layout ({layer_type}, safetensors)", path, net, 64, arch,
                 ["read with safetensors", "read the Hugging Face transformers layout (resnet.embedder, "
                  "resnet.encoder.stages.N.layers.M, classifier.1) as torchvision's"])


# ------------------------------------------------------------------------------ suffixes and messages
@pytest.mark.parametrize("suffix", [".pt", ".pth", ".th", ".tar", ".ckpt", ".bin", ".safetensors", ".weights", ""])
def test_every_suffix_is_read_by_its_content(tmp_path, suffix, capsys):
    from resnet_core.cli import weights_main

    net = build("resnet20", width=4, seed=1).eval()
    state = {f"module.{k}": v for k, v in net.state_dict().items()}
    path = tmp_path / f"net{suffix}"
    as_safetensors = suffix in (".safetensors", ".weights")
    if as_safetensors:
        save_file(state, str(path))
    else:
        torch.save({"state_dict": state, "best_prec1": 90.0}, path)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(load_checkpoint_file(path)(x), net(x))
        stored = save_uploaded_checkpoint(path.read_bytes(), path.name)  # the app's upload path
        assert torch.equal(load_model("resnet20", {}, f"ckpt:{stored}")(x), net(x))
    assert weights_main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ResNet-20, width 4, shortcut A, 10 classes:")
    assert "note: removed the 'module.' prefix from every key" in out
    assert ("note: read with safetensors" in out) == as_safetensors


def one_sentence(message: str) -> bool:
    return "\n" not in message and message.endswith(".") and "Traceback" not in message


@pytest.mark.parametrize("wrap", [False, True])
def test_a_pickled_model_gets_its_own_message(tmp_path, wrap):
    net = _tv_small()
    path = tmp_path / "whole.pth"
    torch.save({"model": net, "epoch": 3} if wrap else net, path, _use_new_zipfile_serialization=not wrap)
    with pytest.raises(WeightsError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert "holds a pickled model object" in message and "save model.state_dict()" in message
    assert "load it where it was made" in message and one_sentence(message)
    with pytest.raises(WeightsError, match="pickled model object"):
        save_uploaded_checkpoint(path.read_bytes(), "whole.pth")


def test_objects_that_are_not_a_model_keep_the_safety_message_and_are_named(tmp_path):
    import argparse

    path = tmp_path / "odd.pt"  # training scripts often save their argparse arguments beside the weights
    torch.save({"state_dict": {"a": torch.zeros(2)}, "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(WeightsError, match="refused for safety") as info:
        read_checkpoint(path)
    assert "besides tensors (argparse.Namespace)" in str(info.value) and one_sentence(str(info.value))
    assert "pickled model" not in str(info.value)


def test_nothing_fits_says_what_was_found_and_tried(tmp_path):
    state = {"features.0.weight": torch.zeros(8, 3, 3, 3), "features.1.weight": torch.zeros(8),
             "classifier.weight": torch.zeros(4, 8), "classifier.bias": torch.zeros(4)}
    path = tmp_path / "vgg.pt"
    torch.save({"state_dict": state, "epoch": 3, "arch": "vgg"}, path)
    with pytest.raises(NotAResNet) as info:
        load_checkpoint_file(path)
    message = str(info.value)
    assert one_sentence(message) and "does not look like a ResNet" in message
    assert "'state_dict', 'epoch', 'arch'" in message  # the wrapper's keys
    assert "'features.0.weight' (8, 3, 3, 3), 'features.1.weight' (8,), 'classifier.weight' (4, 8)" in message
    for convention in KEY_CONVENTIONS:
        assert convention.writer in message
    with pytest.raises(NotAResNet):
        checkpoint_config(path)
    with pytest.raises(NotAResNet):
        save_uploaded_checkpoint(path.read_bytes(), "vgg.pt")


def _timm_variant(kind: str) -> dict[str, torch.Tensor]:
    """A torchvision ResNet changed the way timm's variants are: deep stem (resnet*c/d), avg-pool shortcuts (d)."""
    net = _tv_small()
    if kind == "deep stem":
        net.conv1 = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                                  nn.Conv2d(32, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                                  nn.Conv2d(32, 64, 3, 1, 1, bias=False))
    else:
        net.layer2[0].downsample = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(64, 128, 1, bias=False),
                                                 nn.BatchNorm2d(128))
    return net.state_dict()


@pytest.mark.parametrize("kind, phrase", [("deep stem", "a deep stem"), ("avg-pool", "average-pool shortcuts")])
def test_timm_variants_that_cannot_be_built_are_named(tmp_path, kind, phrase):
    path = tmp_path / "timm.safetensors"
    save_file(_timm_variant(kind), str(path))
    with pytest.raises(UnbuildableVariant) as info:
        load_checkpoint_file(path)
    message = str(info.value)
    assert phrase in message and "timm" in message and "cannot build" in message and one_sentence(message)
    assert message.startswith("The file 'timm.safetensors' holds a ResNet variant with")


def test_conventions_are_a_table_applied_in_order():
    """Each row detects, renames and notes; nested wrappers unwrap row by row; the CIFAR rows stay off when the
    torchvision names are already there."""
    from resnet_core.weights.checkpoints import apply_conventions

    notes: list[str] = []
    keys = {"module._orig_mod.linear.weight": torch.zeros(1), "module._orig_mod.layer1.0.shortcut.0.weight":
            torch.zeros(1)}
    renamed = apply_conventions(dict(keys), notes)
    assert list(renamed) == ["fc.weight", "layer1.0.downsample.0.weight"]
    assert notes == ["removed the 'module.' prefix from every key", "removed the '_orig_mod.' prefix from every key",
                     "projection shortcuts 'shortcut.0/1' read as 'downsample.0/1'", "classifier 'linear' read as 'fc'"]
    untouched = {"fc.weight": torch.zeros(1), "linear.weight": torch.zeros(1)}
    assert list(apply_conventions(dict(untouched), notes := [])) == list(untouched) and notes == []


def test_a_checkpoint_over_the_memory_budget_is_refused_before_it_is_built(tmp_path, monkeypatch):
    path = tmp_path / "r18.pth"
    torch.save({"net": KuangliuResNet(KuangliuBasic, [2, 2, 2, 2]).state_dict(), "acc": 90.0, "epoch": 1}, path)
    monkeypatch.setenv("RESNET_EXPLORER_MEMORY_BUDGET", "20MB")  # ResNet-18 (CIFAR stem) needs about 45 MB
    with pytest.raises(WeightsError) as info:
        load_checkpoint_file(path)
    message = str(info.value)
    assert "holds ResNet-18 (CIFAR stem), shortcut B, 10 classes, whose weights need about" in message
    assert "above the budget of" in message and "RESNET_EXPLORER_MEMORY_BUDGET" in message and one_sentence(message)
    with pytest.raises(WeightsError, match="above the budget"):
        save_uploaded_checkpoint(path.read_bytes(), "r18.pth")
