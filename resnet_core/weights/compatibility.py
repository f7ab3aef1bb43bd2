"""Which weights fit which net: the decision behind the app's weights picker, as plain functions.

A weights id (``random``, ``tv:<member>``, ``ckpt:<path>``; see ``weights.parse_weights_id``) fits an
architecture and its build options when loading it cannot fail or silently mean something else: torchvision's
weights fit only the standard net they were trained as; a checkpoint fits the architecture it holds (read from
our own format, or inferred from a foreign file's tensors).

The sidebar offers the width as a factor of the architecture's base width; ``WIDTH_FACTORS`` is that list, the
only one (the URL, the budget notice and the picker all read it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..models import ARCHITECTURES, display_name, get_spec
from .checkpoints import checkpoint_file, infer_checkpoint, read_checkpoint
from .demo import demo_fit
from .ids import parse_weights_id, weights_choices
from .torchvision_hub import TORCHVISION_OPTIONS

# Sidebar width factor -> divisor of the base width (64 for ImageNet stems, 16 for CIFAR stems).
WIDTH_FACTORS: dict[str, int] = {"full": 1, "half": 2, "quarter": 4}


def base_width(arch: str) -> int:
    """Channels of ``arch``'s first stage at full width: 64 for ImageNet stems, 16 for CIFAR stems."""
    return get_spec(arch).base_width


def width_for(arch: str, factor: str) -> int | None:
    """The ``width`` build option of a sidebar factor ("full", "half", "quarter"); None for full width."""
    if factor not in WIDTH_FACTORS:
        raise ValueError(f"width factor must be one of {tuple(WIDTH_FACTORS)}, got {factor!r}.")
    return None if factor == "full" else base_width(arch) // WIDTH_FACTORS[factor]


def build_options(arch: str, *, residual: bool = True, shortcut: str = "B", stride_on: str = "3x3",
                  preact: bool = False, width_factor: str = "full") -> dict[str, Any]:
    """The build options of the sidebar's choices (the app's sidebar and every notebook make them here): the
    stride placement only for bottleneck nets, the width only when it is not full."""
    options: dict[str, Any] = {"residual": residual, "shortcut": shortcut, "preact": preact}
    if get_spec(arch).block == "bottleneck":
        options["stride_on"] = stride_on
    width = width_for(arch, width_factor)
    if width is not None:
        options["width"] = width
    return options


def width_factor(arch: str, width: int | None) -> str | None:
    """The sidebar factor that builds ``width`` channels for ``arch`` ("full" for None); None if none does."""
    base = base_width(arch)
    width = width or base
    for factor, divisor in WIDTH_FACTORS.items():
        if base % divisor == 0 and base // divisor == width:
            return factor
    return None


@dataclass(frozen=True)
class CheckpointConfig:
    """What a checkpoint holds: ``arch`` (a registered name, or None when unknown), build options, a display
    label and the notes on what was renamed or inferred while reading it."""

    arch: str | None
    options: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"arch": self.arch, "options": dict(self.options), "label": self.label, "notes": list(self.notes)}


def checkpoint_config(path: str | os.PathLike[str]) -> CheckpointConfig:
    """Read the checkpoint at ``path`` (safely, ``weights.read_checkpoint``) and say which net it holds.

    Raises ``weights.WeightsError`` (a ValueError) for a file that is not a usable checkpoint, OSError when
    it cannot be read.
    """
    ckpt = read_checkpoint(os.fspath(path))
    if ckpt.arch in ARCHITECTURES:
        options = dict(ckpt.options)
        return CheckpointConfig(ckpt.arch, options, display_name(ckpt.arch, options.get("residual", True)),
                                tuple(ckpt.notes))
    inferred = infer_checkpoint(ckpt)  # what was renamed (ckpt.notes), then what was inferred
    options = inferred.build_options() if inferred.name else {}
    return CheckpointConfig(inferred.name, options, inferred.label, (*ckpt.notes, *inferred.notes))


def _as_config(config: CheckpointConfig | Mapping[str, Any]) -> CheckpointConfig:
    if isinstance(config, CheckpointConfig):
        return config
    return CheckpointConfig(config["arch"], dict(config.get("options") or {}), config.get("label", ""),
                            tuple(config.get("notes") or ()))


def weights_fit(weights: str, arch: str, options: Mapping[str, Any],
                checkpoint: CheckpointConfig | Mapping[str, Any] | None = None) -> str | None:
    """None when ``weights`` can be loaded into ``arch`` built with ``options``; else why not, as a sentence.

    For a checkpoint id, ``checkpoint`` is its ``checkpoint_config`` when the caller has it already (the app
    caches it per file); otherwise the file is read here. A checkpoint whose architecture could not be
    inferred fits nothing in particular and is left to the loader, which explains any mismatch key by key.
    """
    kind, value = parse_weights_id(weights)
    if kind == "tv":
        if weights not in weights_choices(arch):
            return f"{display_name(arch)} has no torchvision weights {value}; showing random weights."
        clash = [k for k, v in TORCHVISION_OPTIONS.items() if options.get(k, v) != v]
        clash += ["width"] if options.get("width") else []
        if clash:
            return (f"torchvision weights fit only the standard {display_name(arch)} (not {', '.join(clash)}); "
                    "showing random weights for this variant.")
        return None
    if kind == "ckpt":
        config = (_as_config(checkpoint) if checkpoint is not None
                  else checkpoint_config(checkpoint_file(value)))
        residual = bool(options.get("residual", True))
        same = config.arch == arch and residual == bool(config.options.get("residual", True))
        if config.arch is not None and not same:
            return (f"The checkpoint holds {config.label}, not {display_name(arch, residual)}; "
                    "showing random weights for this net.")
    if kind == "demo":
        return demo_fit(value, arch, dict(options))
    return None


def effective_weights(weights: str, arch: str, options: Mapping[str, Any],
                      checkpoint: CheckpointConfig | Mapping[str, Any] | None = None) -> str:
    """The weights to load: ``weights`` when they fit the net, else the seeded random init (``"random"``)."""
    if weights == "random" or weights_fit(weights, arch, options, checkpoint) is None:
        return weights
    return "random"
