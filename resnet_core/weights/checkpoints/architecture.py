"""From a checkpoint's tensors to a model: the architecture read off names and shapes, the fit checked key
by key (:class:`CheckpointMismatch` names every key that does not fit), and the model built and loaded."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from ...card import trained_on_for
from ...costs import estimate_memory, require_within_budget
from ...errors import WeightsError, clip, some
from ...models import ARCHITECTURES, BASE_WIDTHS, ResNet, build, display_name, get_spec, instantiate
from ...settings import ENV_MEMORY_BUDGET, BudgetError, format_bytes
from .conventions import conventions_tried, unbuildable_variants
from .format import (
    MAX_BLOCKS_PER_STAGE,
    MAX_CLASSES,
    MAX_GROUPS,
    MAX_IN_CHANNELS,
    MAX_PARAMETERS,
    MAX_STAGES,
    MAX_WIDTH,
    Checkpoint,
)


class CheckpointMismatch(WeightsError):
    """The checkpoint's tensors do not fit the model: missing, unexpected and wrong-shape keys."""

    MAX_ROWS = 200

    def __init__(self, message: str, *, missing: list[str], unexpected: list[str],
                 wrong_shape: list[tuple[str, tuple[int, ...], tuple[int, ...]]]) -> None:
        super().__init__(message)
        self.missing, self.unexpected, self.wrong_shape = missing, unexpected, wrong_shape

    def table(self) -> pd.DataFrame:
        """One row per problem key: key, problem, checkpoint shape, model shape."""
        rows = [{"key": k, "problem": "missing from the checkpoint", "checkpoint shape": "",
                 "model shape": ""} for k in self.missing]
        rows += [{"key": k, "problem": "not in the model", "checkpoint shape": "", "model shape": ""}
                 for k in self.unexpected]
        rows += [{"key": k, "problem": "wrong shape", "checkpoint shape": clip(tuple(a)),
                  "model shape": str(tuple(b))} for k, a, b in self.wrong_shape]
        if len(rows) > self.MAX_ROWS:  # a page shows this table: keep it readable and small
            rows = [*rows[: self.MAX_ROWS], {"key": f"... and {len(rows) - self.MAX_ROWS} more", "problem": "",
                                             "checkpoint shape": "", "model shape": ""}]
        return pd.DataFrame(rows, columns=["key", "problem", "checkpoint shape", "model shape"])


class NotAResNet(WeightsError):
    """The tensors are not laid out like any ResNet this project reads (no stem, classifier or stages);
    ``reason`` is the phrase that says what is missing."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class UnbuildableVariant(WeightsError):
    """The tensors are a ResNet variant this project cannot build (a timm deep stem, avg-pool shortcuts ...);
    ``variants`` names what was recognised (``conventions.UNBUILDABLE``)."""

    def __init__(self, message: str, variants: list[str] | None = None) -> None:
        super().__init__(message)
        self.variants = list(variants or [])

    @staticmethod
    def sentence(subject: str, variants: list[str]) -> str:
        return (f"{subject} a ResNet variant with {' and '.join(variants)}, which ResNet Explorer cannot build "
                "(it builds torchvision's layout: one-convolution stem, projection shortcuts as downsample.0/1); "
                "choose a plain ResNet checkpoint such as timm's resnet50.a1_in1k or torchvision's.")


@dataclass(frozen=True)
class InferredArchitecture:
    """An architecture read off a state_dict's names and shapes."""

    block: str
    layers: tuple[int, ...]
    stem: str
    width: int
    groups: int
    width_per_group: int
    num_classes: int
    in_channels: int
    residual: bool
    shortcut: str
    preact: bool
    name: str | None  # the registered architecture with this plan, if any
    notes: tuple[str, ...] = ()

    def build_options(self) -> dict[str, Any]:
        """Options for ``build(self.name, **options)`` (only meaningful when ``name`` is set)."""
        spec = get_spec(self.name) if self.name else None
        opts: dict[str, Any] = {"residual": self.residual, "shortcut": self.shortcut, "preact": self.preact,
                                "num_classes": self.num_classes}
        if self.in_channels != 3:
            opts["in_channels"] = self.in_channels
        if spec is None or self.width != spec.base_width:
            opts["width"] = self.width
        return opts

    def build(self) -> ResNet:
        """The (randomly initialised, seed 0) model this state_dict belongs to."""
        if self.name is not None:
            return build(self.name, seed=0, **self.build_options())
        model = instantiate(lambda: ResNet(self.block, self.layers, stem=self.stem, num_classes=self.num_classes,
                                           in_channels=self.in_channels, width=self.width, groups=self.groups,
                                           width_per_group=self.width_per_group, residual=self.residual,
                                           shortcut=self.shortcut, preact=self.preact), seed=0)
        model.card.arch, model.card.arch_options, model.card.label = "custom", {}, self.label
        return model

    def build_meta(self) -> ResNet:
        """The same network on the meta device (shapes only, nothing allocated, no initialisation)."""
        with torch.device("meta"):
            if self.name is not None:
                return build(self.name, **self.build_options())
            return ResNet(self.block, self.layers, stem=self.stem, num_classes=self.num_classes,
                          in_channels=self.in_channels, width=self.width, groups=self.groups,
                          width_per_group=self.width_per_group, residual=self.residual,
                          shortcut=self.shortcut, preact=self.preact)

    @property
    def label(self) -> str:
        if self.name is not None:
            base = display_name(self.name, self.residual)
        else:
            depth = (2 if self.block == "basic" else 3) * sum(self.layers) + 2
            base = f"{'ResNet' if self.residual else 'Plain'}-{depth} ({'-'.join(map(str, self.layers))})"
        base_width = get_spec(self.name).base_width if self.name is not None else BASE_WIDTHS[self.stem]
        extras = [f"width {self.width}"] if self.stem == "cifar" and self.width != base_width else []
        extras += ["pre-activation"] if self.preact else []
        extras += [f"shortcut {self.shortcut}"] if self.residual else []
        extras += [f"{self.num_classes} classes"]
        return f"{base}, {', '.join(extras)}"


_BLOCK_KEY = re.compile(r"^layer(\d+)\.(\d+)\.")


def infer_architecture(state_dict: Mapping[str, torch.Tensor]) -> InferredArchitecture:
    """Read block type, blocks per stage, width, groups/width_per_group, classes, stem, pre-activation and
    shortcut option off the tensors. Raises WeightsError when the state_dict is not a ResNet's (also when a
    tensor it needs is missing or has the wrong shape)."""
    try:
        return _infer_architecture(state_dict)
    except WeightsError:
        raise
    except KeyError as exc:
        raise WeightsError(f"The weights lack the tensor {clip(repr(exc.args[0]))} that a ResNet of this kind has, so the "
                           "architecture cannot be read off them; choose a complete ResNet checkpoint.") from None
    except Exception as exc:  # noqa: BLE001 - odd shapes (0-d tensors, zero channels) mean "not a ResNet"
        raise WeightsError(f"The weights' tensors do not have a ResNet's shapes ({type(exc).__name__}: {clip(exc)}); "
                           "choose a ResNet checkpoint.") from None


def _tensor_summary(state_dict: Mapping[str, torch.Tensor], shown: int = 3) -> str:
    """"'a.weight' (64, 3, 7, 7), 'b' (10,) ... (120 tensors)": the first tensors, named with their shapes."""
    items = list(state_dict.items())
    listed = ", ".join(f"'{clip(k, 60)}' {tuple(v.shape)}" for k, v in items[:shown])
    return listed + (f" ... ({len(items)} tensors)" if len(items) > shown else "")


def infer_checkpoint(ckpt: Checkpoint) -> InferredArchitecture:
    """:func:`infer_architecture` on a checkpoint's tensors (after its key conventions were applied). When no
    ResNet layout fits, the one-sentence message says what the file holds (its top-level keys, the first
    tensors with their shapes) and which key conventions were tried."""
    try:
        return infer_architecture(ckpt.state_dict)
    except UnbuildableVariant as exc:
        raise UnbuildableVariant(UnbuildableVariant.sentence(f"The {ckpt.source} holds", exc.variants),
                                 exc.variants) from None
    except NotAResNet as exc:
        reason = exc.reason or "not a ResNet's tensors"
        wrapper = f"under the top-level keys {some(list(ckpt.wrapper_keys), 6)}, " if ckpt.wrapper_keys else ""
        renames = [note for note in ckpt.notes if not note.startswith("read the tensors under")]
        renamed = f" (after: {'; '.join(renames)})" if renames else ""
        raise NotAResNet(
            f"The {ckpt.source} does not look like a ResNet ResNet Explorer reads ({clip(reason, 120)}): it holds, "
            f"{wrapper}the tensors {_tensor_summary(ckpt.state_dict)}{renamed}, and none of the key conventions "
            f"tried fits ({conventions_tried()}); save a torchvision-layout ResNet's state_dict (conv1, bn1, "
            "layer1 ..., fc).") from None


def _shortcuts(blocks_with_projection: set[tuple[int, int]], layers: tuple[int, ...], width: int, block: str,
               stem: str, notes: list[str]) -> tuple[bool, str]:
    """(residual, shortcut option) from the blocks that carry projection weights; what was assumed is noted."""
    expansion = 4 if block == "bottleneck" else 1
    shape_changes: set[tuple[int, int]] = set()
    inplanes = width
    for stage in range(len(layers)):
        out = width * 2**stage * expansion
        if stage > 0 or inplanes != out:
            shape_changes.add((stage, 0))
        inplanes = out
    every_block = {(s, i) for s, n in enumerate(layers) for i in range(n)}
    residual = True
    if blocks_with_projection == every_block:
        shortcut = "C"
    elif blocks_with_projection == shape_changes:
        shortcut = "B"
    elif not blocks_with_projection:
        # Option-A shortcuts and no shortcuts both leave no tensors: the tensors cannot tell them apart.
        if stem == "cifar":
            shortcut = "A"
            notes.append("no projection weights: assumed option-A (zero-padded identity) shortcuts, "
                         "which hold no weights; a plain twin would look the same")
        else:
            residual, shortcut = False, "B"
            notes.append("no projection weights: assumed the plain twin (no shortcuts); option-A shortcuts "
                         "would look the same")
    else:
        shortcut = "B"
        notes.append("projection weights in an irregular set of blocks; assumed option B")
    return residual, shortcut


def _infer_architecture(state_dict: Mapping[str, torch.Tensor]) -> InferredArchitecture:
    variants = unbuildable_variants(list(state_dict))
    if variants:
        raise UnbuildableVariant(UnbuildableVariant.sentence("These weights are", variants), variants)
    if "conv1.weight" not in state_dict or "fc.weight" not in state_dict:
        missing = " / ".join(k for k in ("conv1.weight", "fc.weight") if k not in state_dict)
        raise NotAResNet(f"These weights do not look like a ResNet (no {missing}; first keys: "
                         f"{some(list(state_dict), 4)}); choose a ResNet checkpoint.", f"no {missing}")
    conv1 = state_dict["conv1.weight"]
    if conv1.dim() != 4 or state_dict["fc.weight"].dim() != 2:
        raise WeightsError(f"conv1.weight has {conv1.dim()} dimensions and fc.weight "
                           f"{state_dict['fc.weight'].dim()} (a ResNet's have 4 and 2); choose a ResNet checkpoint.")
    width, in_channels, kernel = int(conv1.shape[0]), int(conv1.shape[1]), int(conv1.shape[-1])
    stems = {7: "imagenet", 3: "cifar"}
    if kernel not in stems:
        raise WeightsError(f"The first convolution is {kernel}x{kernel}; ResNet stems are 7x7 (ImageNet) or "
                           "3x3 (CIFAR), so these weights are not a ResNet's.")
    stem = stems[kernel]
    counts: dict[int, int] = {}
    blocks_with_projection: set[tuple[int, int]] = set()
    for key in state_dict:
        match = _BLOCK_KEY.match(key)
        if match:
            stage, index = int(match.group(1)), int(match.group(2))
            counts[stage] = max(counts.get(stage, 0), index + 1)
            if key.startswith(f"layer{stage}.{index}.downsample."):
                blocks_with_projection.add((stage - 1, index))
    if not counts or sorted(counts) != list(range(1, len(counts) + 1)):
        raise NotAResNet("The weights have no consecutive layer1, layer2, ... stages, so they are not a "
                         "ResNet's; choose a ResNet checkpoint.", "no consecutive layer1, layer2, ... stages")
    layers = tuple(counts[s] for s in sorted(counts))
    # Bounds before anything is built: a few-MB file must not be able to ask for a huge network.
    if len(layers) > MAX_STAGES or max(layers) > MAX_BLOCKS_PER_STAGE:
        raise WeightsError(f"The weights describe {len(layers)} stages of up to {max(layers):,} blocks, beyond "
                           f"the {MAX_STAGES} stages of {MAX_BLOCKS_PER_STAGE} blocks any ResNet here has; "
                           "choose a ResNet checkpoint.")
    if not 1 <= width <= MAX_WIDTH or not 1 <= in_channels <= MAX_IN_CHANNELS:
        raise WeightsError(f"The first convolution maps {in_channels} input channels to {width}, beyond the "
                           f"{MAX_IN_CHANNELS} inputs and {MAX_WIDTH} channels allowed; choose a ResNet checkpoint.")
    block = "bottleneck" if "layer1.0.conv3.weight" in state_dict else "basic"
    preact = "bn_final.weight" in state_dict or "bn1.weight" not in state_dict
    groups, width_per_group = 1, 64
    if block == "bottleneck":
        conv2 = state_dict["layer1.0.conv2.weight"]
        mid = int(conv2.shape[0])
        groups = max(1, mid // int(conv2.shape[1]))
        width_per_group = (mid // groups) * 64 // width
        if groups > MAX_GROUPS or not 1 <= width_per_group <= 64 * MAX_WIDTH // width:
            raise WeightsError(f"The first bottleneck has {mid} channels in {groups} groups, beyond what any "
                               "ResNet or ResNeXt here has; choose a ResNet checkpoint.")
    notes: list[str] = []
    residual, shortcut = _shortcuts(blocks_with_projection, layers, width, block, stem, notes)
    num_classes = int(state_dict["fc.weight"].shape[0])
    if not 1 <= num_classes <= MAX_CLASSES:
        raise WeightsError(f"The classifier (fc.weight) has {num_classes:,} outputs; a checkpoint may have 1 to "
                           f"{MAX_CLASSES:,} classes, so choose a classification ResNet checkpoint.")
    if stem == "cifar" and len(layers) == 4:
        notes.append("CIFAR stem (3x3 convolution, no max-pool): 32 px input")
    name = None
    for spec in ARCHITECTURES.values():
        if (spec.block, spec.layers, spec.stem, spec.groups, spec.width_per_group) == (
                block, layers, stem, groups, width_per_group):
            name = spec.name
            break
    return InferredArchitecture(block, layers, stem, width, groups, width_per_group, num_classes, in_channels,
                                residual, shortcut, preact, name, tuple(notes))


def _fit_problems(own: Mapping[str, torch.Tensor], state_dict: Mapping[str, torch.Tensor], label: str) -> None:
    """Raise CheckpointMismatch unless ``state_dict`` has ``own``'s keys and shapes (``own`` may be on meta)."""
    missing = [k for k in own if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in own]
    wrong = [(k, tuple(state_dict[k].shape), tuple(own[k].shape)) for k in own
             if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = [f"{len(missing)} missing", f"{len(unexpected)} unexpected", f"{len(wrong)} wrong-shape"]
        lists = [f"{what}: {some(keys)}" for what, keys in (
            ("missing", missing), ("unexpected", unexpected), ("wrong shape", [w[0] for w in wrong])) if keys]
        raise CheckpointMismatch(
            f"The weights do not fit {label}: {', '.join(parts)} keys ({'; '.join(lists)}); pick the "
            "matching architecture or a checkpoint saved from it.",
            missing=missing, unexpected=unexpected, wrong_shape=wrong)


def load_state_dict_checked(model: nn.Module, state_dict: Mapping[str, torch.Tensor], label: str) -> None:
    """``load_state_dict(strict=True)`` after listing every missing, unexpected and wrong-shape key.

    A BatchNorm ``num_batches_tracked`` counter absent from old checkpoints is not a mismatch (it is a
    step counter, not a weight). The error's message names at most three keys per kind ("... and N more").
    """
    own = model.state_dict()
    _fit_problems(own, state_dict, label)
    full = dict(state_dict)
    for key, value in own.items():
        if key.endswith("num_batches_tracked") and key not in full:
            full[key] = torch.zeros_like(value)
    model.load_state_dict(full, strict=True)


def model_from_checkpoint(ckpt: Checkpoint) -> nn.Module:
    """Build the checkpoint's architecture (its config, else inferred) and load its tensors (eval mode).

    Raises WeightsError (one sentence) for anything that does not fit; never a bare KeyError/TypeError.
    """
    try:
        return _model_from_checkpoint(ckpt)
    except WeightsError:
        raise
    except Exception as exc:  # noqa: BLE001 - a malformed checkpoint must not escape as a traceback
        raise WeightsError(f"The {ckpt.source} cannot be turned into a model ({type(exc).__name__}: {clip(exc)}); "
                           "save a state_dict with torch.save(model.state_dict(), path).") from None


def _input_channels(model: nn.Module) -> int:
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return int(conv.in_channels) if conv is not None else 3


def require_rgb(model: nn.Module, source: str = "checkpoint") -> None:
    """Refuse a model whose first convolution does not take 3 channels: every page feeds it RGB images."""
    channels = _input_channels(model)
    if channels != 3:
        raise WeightsError(f"The {source} holds a network for {channels}-channel input, but ResNet Explorer feeds "
                           "RGB images (3 channels); use a checkpoint trained on colour images.")


def _model_from_checkpoint(ckpt: Checkpoint) -> nn.Module:
    if isinstance(ckpt.arch, str) and ckpt.arch in ARCHITECTURES:
        arch, options = ckpt.arch, dict(ckpt.options)

        def make(seed: int | None) -> nn.Module:
            return build(arch, seed=seed, **options)

        label = display_name(ckpt.arch, ckpt.options.get("residual", True))
        notes = list(ckpt.notes)
    else:
        inferred = infer_checkpoint(ckpt)

        def make(seed: int | None) -> nn.Module:
            return inferred.build() if seed is not None else inferred.build_meta()

        label = inferred.label
        notes = [*ckpt.notes, "architecture inferred from the tensors", *inferred.notes]
    # Shapes first, on the meta device (no memory): the size and the fit are known before anything is allocated.
    try:
        with torch.device("meta"):
            skeleton = make(None)
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"The {ckpt.source} asks for {clip(label)} with options the project cannot build "
                           f"({clip(str(exc).rstrip('.'))}); re-save it with the trainer.") from None
    parameters = sum(p.numel() for p in skeleton.parameters())
    if parameters > MAX_PARAMETERS:
        raise WeightsError(f"The {ckpt.source} asks for {clip(label)} with {parameters / 1e6:,.0f} M parameters, "
                           f"above the {MAX_PARAMETERS / 1e6:.0f} M limit; choose a smaller network's checkpoint.")
    require_rgb(skeleton, ckpt.source)
    _fit_problems(skeleton.state_dict(), ckpt.state_dict, label)
    # The model's parameters and buffers under the memory budget, costed on meta; a WeightsError like every
    # other refusal of a checkpoint (the upload and picker paths catch those).
    try:
        require_within_budget(estimate_memory(skeleton, "build", builds=True, image_size=32), suggestions=[])
    except BudgetError as exc:
        raise WeightsError(f"The {ckpt.source} holds {clip(label)}, whose weights need about "
                           f"{format_bytes(exc.cost)} of memory, above the budget of {format_bytes(exc.budget)} "
                           f"per request; raise ${ENV_MEMORY_BUDGET} or choose a smaller network's checkpoint.") from None
    model = make(0)
    load_state_dict_checked(model, ckpt.state_dict, label)
    card = model.card
    card.class_names, card.label, card.notes, card.checkpoint_meta = ckpt.classes, label, notes, ckpt.meta
    card.trained_on = trained_on_for(ckpt.meta.get("dataset"))
    if ckpt.preprocessing is not None:
        card.preprocessing = ckpt.preprocessing
    return model.eval()
