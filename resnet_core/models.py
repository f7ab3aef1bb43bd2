"""One ``ResNet`` class for every depth, and the registry of named architectures.

``build("resnet50")`` is torchvision's ResNet-50, key for key; ``build("resnet50", residual=False)`` is its
plain twin (the same layers without shortcuts). The plain twin is always spelled ``residual=False``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from .blocks import (
    BLOCK_TYPES,
    SHORTCUT_OPTIONS,
    STRIDE_PLACEMENTS,
    ResidualBlock,
    make_shortcut,
    relu_where_unseen,
)
from .card import ModelCard

STEMS = ("imagenet", "cifar")
BASE_WIDTHS = {"imagenet": 64, "cifar": 16}  # the first stage's channels at full width, by stem
# Top-level module names outside the stages (every other top-level name is in the head).
STEM_MODULES = ("conv1", "bn1", "relu", "maxpool")


@dataclass(frozen=True)
class ArchSpec:
    """A named architecture: its block, stage plan and the paper it comes from."""

    name: str
    family: str
    block: str
    layers: tuple[int, ...]
    stem: str
    groups: int = 1
    width_per_group: int = 64
    paper: str = ""
    torchvision: bool = False
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def depth(self) -> int:
        per_block = 2 if self.block == "basic" else 3
        return per_block * sum(self.layers) + 2

    @property
    def input_size(self) -> int:
        return 224 if self.stem == "imagenet" else 32

    @property
    def num_classes(self) -> int:
        return 1000 if self.stem == "imagenet" else 10

    @property
    def base_width(self) -> int:
        """Channels of the first stage at full width: 64 for ImageNet stems, 16 for CIFAR stems (64 for the
        ImageNet depths with a CIFAR stem, whose ``defaults`` say so)."""
        return int(self.defaults.get("width", BASE_WIDTHS[self.stem]))

    @property
    def strides(self) -> tuple[int, ...]:
        """Each stage's stride: 1 for the first, 2 for every later one."""
        return tuple(1 if index == 0 else 2 for index in range(len(self.layers)))

    def stage_widths(self, width: int | None = None) -> tuple[int, ...]:
        """Each stage's output channels for a base ``width`` (default: the full base width)."""
        base = self.base_width if width is None else int(width)
        expansion = 1 if self.block == "basic" else 4
        return tuple(base * 2**index * expansion for index in range(len(self.layers)))


_HE2015 = "He et al. 2015, Deep Residual Learning for Image Recognition (arXiv:1512.03385)"
_XIE2017 = "Xie et al. 2017, Aggregated Residual Transformations (arXiv:1611.05431)"
_ZAG2016 = "Zagoruyko & Komodakis 2016, Wide Residual Networks (arXiv:1605.07146)"


def _imagenet(name: str, block: str, layers: Sequence[int], family: str = "ResNet", paper: str = _HE2015,
              groups: int = 1, width_per_group: int = 64) -> ArchSpec:
    return ArchSpec(name, family, block, tuple(layers), "imagenet", groups, width_per_group, paper,
                    torchvision=True, defaults={"shortcut": "B"})


def _cifar(n: int) -> ArchSpec:
    return ArchSpec(f"resnet{6 * n + 2}", "CIFAR ResNet", "basic", (n, n, n), "cifar", paper=_HE2015,
                    defaults={"shortcut": "A", "num_classes": 10})


CIFAR_STEM_FAMILY = "ImageNet-depth ResNet"  # with a CIFAR stem: the sidebar adds "cifar stem"


def _cifar_stem(depth: int, block: str, layers: Sequence[int]) -> ArchSpec:
    """ImageNet depths with a CIFAR stem (3x3 conv, no max-pool, 32 px): ResNet18 ... ResNet152 as the most
    popular CIFAR training repositories define them (64 base channels, projection shortcuts, 10 classes)."""
    return ArchSpec(f"resnet{depth}_cifar", CIFAR_STEM_FAMILY, block, tuple(layers), "cifar", paper=_HE2015,
                    defaults={"shortcut": "B", "width": 64, "num_classes": 10})


ARCHITECTURES: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in [
        _imagenet("resnet18", "basic", (2, 2, 2, 2)),
        _imagenet("resnet34", "basic", (3, 4, 6, 3)),
        _imagenet("resnet50", "bottleneck", (3, 4, 6, 3)),
        _imagenet("resnet101", "bottleneck", (3, 4, 23, 3)),
        _imagenet("resnet152", "bottleneck", (3, 8, 36, 3)),
        _imagenet("resnext50_32x4d", "bottleneck", (3, 4, 6, 3), "ResNeXt", _XIE2017, 32, 4),
        _imagenet("resnext101_32x8d", "bottleneck", (3, 4, 23, 3), "ResNeXt", _XIE2017, 32, 8),
        _imagenet("resnext101_64x4d", "bottleneck", (3, 4, 23, 3), "ResNeXt", _XIE2017, 64, 4),
        _imagenet("wide_resnet50_2", "bottleneck", (3, 4, 6, 3), "Wide ResNet", _ZAG2016, 1, 128),
        _imagenet("wide_resnet101_2", "bottleneck", (3, 4, 23, 3), "Wide ResNet", _ZAG2016, 1, 128),
        *(_cifar(n) for n in (3, 5, 7, 9, 18, 200)),
        _cifar_stem(18, "basic", (2, 2, 2, 2)),
        _cifar_stem(34, "basic", (3, 4, 6, 3)),
        _cifar_stem(50, "bottleneck", (3, 4, 6, 3)),
        _cifar_stem(101, "bottleneck", (3, 4, 23, 3)),
        _cifar_stem(152, "bottleneck", (3, 8, 36, 3)),
    ]
}


def _card_property(field_name: str) -> property:
    """A ResNet attribute that reads and writes ``self.card.<field_name>``."""

    def read(self: ResNet) -> Any:
        return getattr(self.card, field_name)

    def write(self: ResNet, value: Any) -> None:
        setattr(self.card, field_name, value)

    return property(read, write, doc=f"``self.card.{field_name}`` (see ``ModelCard``).")


class ResNet(nn.Module):
    """A ResNet (or its plain twin) with an ImageNet or CIFAR stem and any stage plan.

    Module names follow torchvision (``conv1``, ``bn1``, ``relu``, ``maxpool``, ``layer1`` ... ``layer4``,
    ``avgpool``, ``fc``), so torchvision state_dicts load with ``strict=True``. CIFAR nets have three stages
    of ``width``, 2x, 4x channels and no max-pool (paper section 4.2).

    Args:
        block: "basic" or "bottleneck".
        layers: blocks per stage.
        stem: "imagenet" (7x7/2 conv + 3x3/2 max-pool) or "cifar" (3x3 conv).
        residual: False builds the plain twin: every shortcut removed, nothing else changed.
        shortcut: "A" zero-padded identity, "B" projection where the shape changes, "C" projection everywhere.
        stride_on: "3x3" (torchvision, v1.5) or "1x1" (the paper) for bottleneck blocks.
        preact: pre-activation blocks (He et al. 2016), with a final BN-ReLU before pooling.
        zero_init_residual: start each residual branch's last BN (or conv, pre-activation) at zero.
        width: base channel count (64 ImageNet, 16 CIFAR); slimmer nets for CPU demos.
        groups, width_per_group: ResNeXt cardinality and width, Wide ResNet width.
    """

    def __init__(
        self,
        block: str,
        layers: Sequence[int],
        *,
        stem: str = "imagenet",
        num_classes: int = 1000,
        in_channels: int = 3,
        width: int | None = None,
        groups: int = 1,
        width_per_group: int = 64,
        residual: bool = True,
        shortcut: str = "B",
        stride_on: str = "3x3",
        preact: bool = False,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        self.card = ModelCard()
        if block not in BLOCK_TYPES:
            raise ValueError(f"block must be 'basic' or 'bottleneck', got {block!r}.")
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {stem!r}.")
        if shortcut not in SHORTCUT_OPTIONS:
            raise ValueError(f"shortcut must be 'A', 'B' or 'C', got {shortcut!r}.")
        if stride_on not in STRIDE_PLACEMENTS:
            raise ValueError(f"stride_on must be '3x3' or '1x1', got {stride_on!r}.")
        if block == "basic" and (groups != 1 or width_per_group != 64):
            raise ValueError("Grouped or widened blocks (ResNeXt, Wide ResNet) need the bottleneck block.")
        if not layers or any(int(n) < 1 for n in layers):
            raise ValueError(f"every stage needs at least one block, got {list(layers)}.")
        if num_classes < 1 or in_channels < 1:
            raise ValueError("num_classes and in_channels must be positive.")
        width = width if width is not None else BASE_WIDTHS[stem]
        if width < 1:
            raise ValueError(f"width must be a positive channel count, got {width}.")

        self.block_kind, self.stem_kind, self.residual, self.preact = block, stem, residual, preact
        self.shortcut_option, self.stride_on = shortcut, stride_on
        self.zero_init_residual = zero_init_residual
        block_cls = BLOCK_TYPES[block][preact]
        self.inplanes, self.groups, self.base_width = width, groups, width_per_group
        # feature_info, recorded while building (timm's idea): where each stage ends, its channels and stride.
        self.feature_info: list[dict[str, Any]] = []

        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
            reduction = 4
        else:
            self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
            reduction = 1
        if not preact:
            self.bn1 = nn.BatchNorm2d(width)
            self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if stem == "imagenet" else nn.Identity()
        self.feature_info.append({"module": "maxpool" if stem == "imagenet" else "conv1", "stage": "stem",
                                  "channels": width, "reduction": reduction})

        for index, blocks in enumerate(layers):
            stride = 1 if index == 0 else 2
            reduction *= stride
            planes = width * 2**index
            layer = self._make_layer(block_cls, planes, int(blocks), stride)
            self.add_module(f"layer{index + 1}", layer)
            self.feature_info.append({"module": f"layer{index + 1}", "stage": f"layer{index + 1}",
                                      "channels": self.inplanes, "reduction": reduction})
        self.num_stages = len(layers)
        if preact:
            self.bn_final = nn.BatchNorm2d(self.inplanes)
            self.relu_final = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(self.inplanes, num_classes)
        self.num_features = self.inplanes

        if self.fc.weight.is_meta:
            return  # meta-device models carry no values: skip the (slow, pointless) initialisation
        self._init_weights(generator=None, zero_init_residual=zero_init_residual)

    def _init_weights(self, generator: torch.Generator | None, zero_init_residual: bool) -> None:
        """torchvision's initialisation. With a ``generator`` every value is drawn from it alone (fc too, with
        ``nn.Linear``'s own rule), so a seeded build never reads or advances the global random state."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu", generator=generator)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)
                module.reset_running_stats()
            elif isinstance(module, nn.Linear) and generator is not None:
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                bound = 1 / math.sqrt(module.in_features)
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)
        if zero_init_residual and self.residual:
            for module in self.modules():
                if isinstance(module, ResidualBlock):
                    last = module.last_bn() if hasattr(module, "last_bn") else module.last_conv()
                    nn.init.constant_(last.weight, 0)

    def _make_layer(self, block_cls: type[ResidualBlock], planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for index in range(blocks):
            block_stride = stride if index == 0 else 1
            out_channels = planes * block_cls.expansion
            downsample = (
                make_shortcut(self.shortcut_option, self.inplanes, out_channels, block_stride, self.preact)
                if self.residual
                else None
            )
            layers.append(
                block_cls(self.inplanes, planes, block_stride, downsample, self.groups, self.base_width,
                          residual=self.residual, stride_on=self.stride_on)
            )
            self.inplanes = out_channels
        return nn.Sequential(*layers)

    # The card's fields under the names they had as loose attributes (public since the first release).
    arch_name = _card_property("arch")
    arch_options = _card_property("arch_options")
    arch_label = _card_property("label")
    weights_id = _card_property("weights_id")
    weights_label = _card_property("weights_label")
    class_names = _card_property("class_names")
    preprocessing = _card_property("preprocessing")
    weights_notes = _card_property("notes")
    checkpoint_meta = _card_property("checkpoint_meta")

    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]

    def stage_names(self) -> list[str]:
        """``["stem", "layer1", ..., "layerN"]``, read from the feature info recorded while building."""
        return [info["stage"] for info in self.feature_info]

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) image -> the first stage's input (N, width, H/4, W/4 ImageNet; H, W CIFAR)."""
        x = self.conv1(x)
        if not self.preact:
            # In place where no hook can see the batch-norm output (a fresh 25 MB map for ResNet-50 at batch 8,
            # 224 px: 1-2 % of the forward, and one map less at the peak), as torchvision's inplace ReLU.
            x = relu_where_unseen(self.relu, self.bn1(x), x, (self.bn1,))
        return self.maxpool(x)

    def forward_final(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's output -> the feature map that is pooled (final BN-ReLU for pre-activation)."""
        if self.preact:
            x = self.relu_final(self.bn_final(x))
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) features -> (N, num_classes) logits: global average pool, then fc."""
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_stem(x)
        for stage in self.stages():
            x = stage(x)
        return self.forward_final(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


InputSize = int | Sequence[int]


def input_shape(model: nn.Module, input_size: InputSize) -> tuple[int, ...]:
    """The (N, C, H, W) shape a size means for ``model``: 224 -> (1, C, 224, 224), (H, W) -> (1, C, H, W),
    (C, H, W) -> (1, C, H, W); a 4-tuple is taken as it is. C is the first convolution's input channels."""
    if isinstance(input_size, int):
        in_channels = next(m for m in model.modules() if isinstance(m, nn.Conv2d)).in_channels
        return (1, in_channels, input_size, input_size)
    shape = tuple(int(s) for s in input_size)
    if len(shape) == 2:
        in_channels = next(m for m in model.modules() if isinstance(m, nn.Conv2d)).in_channels
        return (1, in_channels, *shape)
    if len(shape) == 3:
        return (1, *shape)
    return shape


def conv_layout(x: torch.Tensor) -> torch.Tensor:
    """``x`` in the memory layout convolutions run fastest in: channels_last for a batch of images on the CPU or
    CUDA (oneDNN, cuDNN), as it is otherwise. Measured on the CPU: a ResNet-20 forward at 32 px, 76 -> 63 ms; a
    ResNet-56 training step at 16 px, 97 -> 74 ms. The numbers agree with the default layout's to float rounding."""
    if x.dim() == 4 and x.device.type in ("cpu", "cuda"):
        return x.contiguous(memory_format=torch.channels_last)
    return x


def iter_blocks(model: nn.Module) -> list[tuple[str, ResidualBlock]]:
    """Every residual (or plain) block of ``model`` in forward order, with its qualified name."""
    return [(name, module) for name, module in model.named_modules() if isinstance(module, ResidualBlock)]


# ----------------------------------------------------------------------------- the layout: one rule for all
def _is_stage(top: str) -> bool:
    return top.startswith("layer") and top[5:].isdigit() and int(top[5:]) >= 1


def block_position(name: str) -> tuple[str, int | None]:
    """(stage, block index) of a qualified module or parameter name: ``"layer2.3.conv1"`` -> ("layer2", 3),
    ``"layer2"`` -> ("layer2", None), ``"conv1"``/``"bn1.weight"`` -> ("stem", None), ``"fc.bias"`` ->
    ("head", None). The one rule every instrument uses to place a name in the network."""
    parts = name.split(".")
    if _is_stage(parts[0]):
        index = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        return parts[0], index
    return ("stem" if parts[0] in STEM_MODULES else "head"), None


def stage_of(name: str) -> str:
    """The stage of a qualified name: ``"stem"``, ``"layer1"`` ... ``"layerN"`` or ``"head"``."""
    return block_position(name)[0]


def stage_names(model: nn.Module) -> list[str]:
    """``["stem", "layer1", ..., "layerN"]``: the model's recorded feature info, or its blocks' stages."""
    if isinstance(model, ResNet):
        return model.stage_names()
    return ["stem", *dict.fromkeys(stage_of(name) for name, _ in iter_blocks(model))]


def stage_last_blocks(model: nn.Module) -> list[str]:
    """The last block of each stage, e.g. ["layer1.1", "layer2.1", "layer3.1", "layer4.1"]."""
    last: dict[str, str] = {}
    for block_name, _ in iter_blocks(model):
        last[stage_of(block_name)] = block_name
    return list(last.values())


def get_spec(name: str) -> ArchSpec:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        known = ", ".join(ARCHITECTURES)
        raise ValueError(f"Unknown architecture {name!r}. Choose one of: {known}.") from None


def instantiate(factory: Callable[[], ResNet], seed: int | None) -> ResNet:
    """``factory()`` with torchvision's initialisation; with a ``seed``, drawn from a generator of its own.

    A seeded net is made on the meta device (no global random draws) and then filled from
    ``torch.Generator().manual_seed(seed)``: builds with different seeds on concurrent threads each get
    exactly their weights, and the global random state is never read or advanced.
    """
    if seed is None:
        return factory()
    device = torch.get_default_device()
    with torch.device("meta"):
        model = factory()
    if device.type == "meta":
        return model
    model = model.to_empty(device=device)
    model._init_weights(torch.Generator(device=device).manual_seed(int(seed)), model.zero_init_residual)
    return model


def build(name: str, *, seed: int | None = None, **options: Any) -> ResNet:
    """Build a named architecture. ``build("resnet56", residual=False)`` is the plain-56 of the paper.

    Options: residual, shortcut ("A"/"B"/"C"), stride_on ("3x3"/"1x1"), preact, zero_init_residual,
    num_classes, in_channels, width. Defaults follow torchvision for ImageNet nets (shortcut "B") and the
    paper for CIFAR nets (shortcut "A", 10 classes). ``seed`` makes the random initialisation repeatable
    without touching the global random state.
    """
    spec = get_spec(name)
    allowed = {"residual", "shortcut", "stride_on", "preact", "zero_init_residual", "num_classes",
               "in_channels", "width"}
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(f"Unknown option(s) {sorted(unknown)} for build(); allowed: {sorted(allowed)}.")
    kwargs: dict[str, Any] = {"num_classes": spec.num_classes, **spec.defaults, **options}
    if kwargs.get("width") is None:  # width=None means full width: the spec's own (64 for CIFAR-stem ImageNet depths)
        kwargs["width"] = spec.base_width
    model = instantiate(lambda: ResNet(spec.block, spec.layers, stem=spec.stem, groups=spec.groups,
                                       width_per_group=spec.width_per_group, **kwargs), seed)
    model.card.arch, model.card.arch_options = name, dict(options)
    model.card.label = display_name(name, options.get("residual", True))
    return model


def display_name(name: str, residual: bool = True) -> str:
    """Human label: "ResNet-56" / "Plain-56", "ResNeXt-50 32x4d", "Plain Wide ResNet-50-2"."""
    spec = get_spec(name)
    if spec.family == "ResNeXt":
        label = f"ResNeXt-{spec.depth} {name.split('_')[1]}"
    elif spec.family == "Wide ResNet":
        label = f"Wide ResNet-{spec.depth}-2"
    elif spec.family == CIFAR_STEM_FAMILY:
        return f"{'ResNet' if residual else 'Plain'}-{spec.depth} (CIFAR stem)"
    else:
        return f"ResNet-{spec.depth}" if residual else f"Plain-{spec.depth}"
    return label if residual else f"Plain {label}"


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def spec_dict(name: str) -> dict[str, Any]:
    return asdict(get_spec(name))
