"""Residual blocks and their plain twins.

Every block exposes parameter-free tap points (``nn.Identity`` subclasses) so instruments can address
the tensors the papers talk about by name:

``tap_branch_in`` / ``tap_shortcut_in``
    the block input as it enters the residual branch and the shortcut (the same tensor; probes hook these
    to split the input gradient exactly between the two paths),
``tap_branch``
    the residual branch output F(x),
``tap_shortcut``
    the shortcut output (identity, zero-padded identity or projection),
``tap_sum``
    F(x) + shortcut, before the final ReLU,
``tap_out``
    the block output.

Plain blocks (``residual=False``) have no shortcut at all, so they have no ``tap_shortcut_in`` and no
``tap_shortcut``; ``tap_sum`` then holds the branch output before the final ReLU.

State-dict keys match torchvision's ``BasicBlock`` / ``Bottleneck`` (``conv1``, ``bn1``, ..., ``downsample.0``,
``downsample.1``): taps and ReLUs hold no parameters, so they add no keys. Every ReLU is its own module.

Two paths, same numbers. Where no hook could see an intermediate tensor (none on any submodule, no backward
hook on the block, no global module hook) the block runs torchvision's fast path: in-place ReLUs and an
in-place residual add, each only on a tensor the block just made and autograd does not keep. Otherwise every
ReLU and the add are out of place, so a hooked tensor is never overwritten later. Forward hooks on the block
itself keep the fast path: they see only its input and output, which the block never overwrites.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SHORTCUT_OPTIONS = ("A", "B", "C")
STRIDE_PLACEMENTS = ("3x3", "1x1")


# Autograd nodes that do not keep their output for backward: overwriting that output leaves gradients intact.
_OUTPUT_NOT_SAVED = ("BatchNorm", "Convolution", "AddBackward")


def _global_hooks() -> bool:
    """True when a module hook registered for every module (``register_module_forward_hook`` ...) is active."""
    module = torch.nn.modules.module
    return bool(module._global_forward_hooks or module._global_forward_pre_hooks
                or module._global_backward_hooks or getattr(module, "_global_backward_pre_hooks", None))


def _hooked(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
                or module._backward_pre_hooks)


def _can_overwrite(t: torch.Tensor, block_input: torch.Tensor) -> bool:
    """True when ``t`` is a fresh tensor that neither the block's input nor autograd still needs."""
    if t.requires_grad:
        fn = t.grad_fn
        if fn is None or not any(kind in type(fn).__name__ for kind in _OUTPUT_NOT_SAVED):
            return False
    # A replaced or removed layer (nn.Identity) could hand back the input itself: never overwrite that.
    return t._base is None and t.untyped_storage().data_ptr() != block_input.untyped_storage().data_ptr()


def relu_where_unseen(relu: nn.Module, t: torch.Tensor, keep: torch.Tensor, watchers: tuple[nn.Module, ...]) -> torch.Tensor:
    """``relu(t)``; in place (torchvision's ``inplace=True``) when no hook can see ``t``: none on ``relu`` or on
    ``watchers`` (the modules whose output ``t`` is), no global one, and ``t`` is a fresh tensor that neither
    ``keep`` nor autograd still needs. The stem's ReLU, whose batch-norm output is a whole map of the first stage."""
    if type(relu) is nn.ReLU and not (_global_hooks() or _hooked(relu) or any(_hooked(m) for m in watchers)) \
            and _can_overwrite(t, keep):
        return t.relu_()
    return relu(t)


class Tap(nn.Identity):
    """A named, parameter-free point in the forward pass where instruments attach hooks."""


class PadShortcut(nn.Module):
    """Option A shortcut (He et al. 2015, section 3.3): subsample, then zero-pad the new channels.

    Parameter-free, so CIFAR ResNets with option A have exactly the paper's parameter counts.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        extra = self.out_channels - self.in_channels
        if extra > 0:
            # Pad half before and half after, as in the reference CIFAR implementations.
            x = F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))
        return x

    def extra_repr(self) -> str:
        return f"{self.in_channels}->{self.out_channels}, stride={self.stride}, zero-padded"


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


def make_shortcut(
    option: str, in_channels: int, out_channels: int, stride: int, preact: bool = False
) -> nn.Module | None:
    """The shortcut module for one block, or ``None`` for a plain identity.

    A: identity, zero-padded where the shape changes. B: projection (1x1 conv + BN) where the shape changes,
    identity elsewhere (torchvision). C: projection in every block. Pre-activation blocks project without BN,
    as in "Identity Mappings in Deep Residual Networks".
    """
    if option not in SHORTCUT_OPTIONS:
        raise ValueError(f"shortcut must be one of {SHORTCUT_OPTIONS}, got {option!r}.")
    shape_changes = stride != 1 or in_channels != out_channels
    if option == "A":
        return PadShortcut(in_channels, out_channels, stride) if shape_changes else None
    if option == "B" and not shape_changes:
        return None
    if preact:
        return nn.Sequential(conv1x1(in_channels, out_channels, stride))
    return nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


class ResidualBlock(nn.Module):
    """Shared wiring: taps, the residual add (fast or safe path), and the plain-twin switch."""

    expansion = 1

    def _init_taps(self, residual: bool, downsample: nn.Module | None) -> None:
        self.residual = residual
        self.tap_branch_in = Tap()
        self.tap_branch = Tap()
        if residual:
            self.tap_shortcut_in = Tap()
            self.downsample = downsample
            self.tap_shortcut = Tap()
        else:
            self.downsample = None
        self.tap_sum = Tap()
        self.tap_out = Tap()

    @property
    def has_projection(self) -> bool:
        """True when the shortcut carries weights (drawn dashed in the paper's Fig. 3)."""
        return self.residual and self.downsample is not None and any(
            p.numel() for p in self.downsample.parameters()
        )

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        x = self.tap_shortcut_in(x)
        if self.downsample is not None:
            x = self.downsample(x)
        return self.tap_shortcut(x)

    def _fast(self) -> bool:
        """True when no hook can see an intermediate tensor, so in-place operations are unobservable.

        Checked on every call (hooks come and go between calls). Forward hooks on the block itself are
        allowed: they see only the block's input and output, which it never overwrites.
        """
        if self._backward_hooks or self._backward_pre_hooks or _global_hooks():
            return False
        return not any(_hooked(module) for module in self.modules() if module is not self)

    def _relu(self, relu: nn.Module, t: torch.Tensor, fast: bool, keep: torch.Tensor) -> torch.Tensor:
        """``relu(t)``; in place on the fast path (torchvision's inplace=True) when ``t`` is a fresh tensor.

        ``keep`` is the tensor the branch started from, which must survive (the shortcut still reads it).
        """
        if fast and type(relu) is nn.ReLU and _can_overwrite(t, keep):
            return t.relu_()
        return relu(t)

    def _merge(self, branch: torch.Tensor, x: torch.Tensor, fast: bool = False,
               block_input: torch.Tensor | None = None) -> torch.Tensor:
        """Branch plus shortcut of ``x`` (``block_input`` is the tensor the block was called with)."""
        branch = self.tap_branch(branch)
        if not self.residual:
            return self.tap_sum(branch)
        shortcut = self._shortcut(x)
        source = x if block_input is None else block_input
        if (fast and branch.shape == shortcut.shape and branch.dtype == shortcut.dtype
                and _can_overwrite(branch, source) and _can_overwrite(branch, shortcut)):
            return self.tap_sum(branch.add_(shortcut))  # torchvision's ``out += identity``
        return self.tap_sum(branch + shortcut)


class BasicBlock(ResidualBlock):
    """Two 3x3 convolutions (ResNet-18/34 and the CIFAR ResNets). ``groups``/``base_width`` as torchvision."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        *,
        residual: bool = True,
        stride_on: str = "3x3",
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock supports only groups=1 and base_width=64 (as in torchvision).")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu_out = nn.ReLU()
        self.stride = stride
        self._init_taps(residual, downsample)

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fast = self._fast()
        out = self.tap_branch_in(x)
        out = self._relu(self.relu1, self.bn1(self.conv1(out)), fast, x)
        out = self.bn2(self.conv2(out))
        return self.tap_out(self._relu(self.relu_out, self._merge(out, x, fast), fast, x))


def bottleneck_shape(planes: int, stride: int, groups: int, base_width: int, stride_on: str) -> tuple[int, int, int]:
    """A bottleneck's inner width (torchvision's rule: ResNeXt groups, Wide ResNet's base width) and the strides
    of its first 1x1 and its 3x3 convolution; the post- and pre-activation bottlenecks share it."""
    if stride_on not in STRIDE_PLACEMENTS:
        raise ValueError(f"stride_on must be one of {STRIDE_PLACEMENTS}, got {stride_on!r}.")
    width = int(planes * (base_width / 64.0)) * groups
    return (width, stride, 1) if stride_on == "1x1" else (width, 1, stride)


class Bottleneck(ResidualBlock):
    """1x1 reduce, 3x3 (grouped for ResNeXt, wider for Wide ResNet), 1x1 expand.

    ``stride_on="3x3"`` puts the stride on the 3x3 convolution (torchvision, "ResNet v1.5");
    ``"1x1"`` puts it on the first 1x1 convolution, as in the original paper.
    """

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        *,
        residual: bool = True,
        stride_on: str = "3x3",
    ) -> None:
        super().__init__()
        width, stride_1x1, stride_3x3 = bottleneck_shape(planes, stride, groups, base_width, stride_on)
        self.conv1 = conv1x1(inplanes, width, stride_1x1)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu1 = nn.ReLU()
        self.conv2 = conv3x3(width, width, stride_3x3, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU()
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu_out = nn.ReLU()
        self.stride = stride
        self._init_taps(residual, downsample)

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fast = self._fast()
        out = self.tap_branch_in(x)
        out = self._relu(self.relu1, self.bn1(self.conv1(out)), fast, x)
        out = self._relu(self.relu2, self.bn2(self.conv2(out)), fast, x)
        out = self.bn3(self.conv3(out))
        return self.tap_out(self._relu(self.relu_out, self._merge(out, x, fast), fast, x))


class PreActBasicBlock(ResidualBlock):
    """BN-ReLU-conv ordering of "Identity Mappings in Deep Residual Networks" (He et al. 2016).

    Nothing follows the add, so the shortcut is a clean identity. Where the shortcut projects, it reads the
    pre-activated input (as in the authors' code); the branch/shortcut split is then taken at that point.
    """

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        *,
        residual: bool = True,
        stride_on: str = "3x3",
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("PreActBasicBlock supports only groups=1 and base_width=64.")
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.relu1 = nn.ReLU()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.stride = stride
        self._init_taps(residual, downsample)

    def last_conv(self) -> nn.Conv2d:
        return self.conv2

    def _preact(self, x: torch.Tensor, fast: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        pre = self._relu(self.relu1, self.bn1(x), fast, x)
        # Projection shortcuts read the pre-activated input; identity shortcuts read the raw input.
        return pre, (pre if self.has_projection else x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fast = self._fast()
        pre, shortcut_source = self._preact(x, fast)
        out = self.tap_branch_in(pre)
        out = self.conv2(self._relu(self.relu2, self.bn2(self.conv1(out)), fast, pre))
        return self.tap_out(self._merge(out, shortcut_source, fast, x))


class PreActBottleneck(ResidualBlock):
    """Pre-activation bottleneck (BN-ReLU-conv1x1, BN-ReLU-conv3x3, BN-ReLU-conv1x1)."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        *,
        residual: bool = True,
        stride_on: str = "3x3",
    ) -> None:
        super().__init__()
        width, stride_1x1, stride_3x3 = bottleneck_shape(planes, stride, groups, base_width, stride_on)
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.relu1 = nn.ReLU()
        self.conv1 = conv1x1(inplanes, width, stride_1x1)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU()
        self.conv2 = conv3x3(width, width, stride_3x3, groups)
        self.bn3 = nn.BatchNorm2d(width)
        self.relu3 = nn.ReLU()
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.stride = stride
        self._init_taps(residual, downsample)

    def last_conv(self) -> nn.Conv2d:
        return self.conv3

    _preact = PreActBasicBlock._preact

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fast = self._fast()
        pre, shortcut_source = self._preact(x, fast)
        out = self.tap_branch_in(pre)
        out = self.conv2(self._relu(self.relu2, self.bn2(self.conv1(out)), fast, pre))
        out = self.conv3(self._relu(self.relu3, self.bn3(out), fast, pre))
        return self.tap_out(self._merge(out, shortcut_source, fast, x))


BLOCK_TYPES: dict[str, dict[bool, type[ResidualBlock]]] = {
    "basic": {False: BasicBlock, True: PreActBasicBlock},
    "bottleneck": {False: Bottleneck, True: PreActBottleneck},
}

TAP_NAMES = ("tap_branch_in", "tap_shortcut_in", "tap_branch", "tap_shortcut", "tap_sum", "tap_out")

