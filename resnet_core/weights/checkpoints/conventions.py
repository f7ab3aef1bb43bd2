"""The key conventions of foreign checkpoints, as data: how to detect one, how to rename its keys, the note.

Every checkpoint's tensors end up in torchvision's names (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer2.0.downsample.0``, ``fc``), which our ``ResNet`` uses key for key. ``KEY_CONVENTIONS`` is applied in
order, again and again until no row matches (wrappers nest: ``module._orig_mod.``), and each row that matched
leaves its note on the model (``model.card.notes``). Adding a convention is one row here and one test in
``tests/core/test_conventions.py``.

``UNBUILDABLE`` is the other table: layouts recognised as a ResNet variant this project cannot build (timm's
deep stems, average-pool shortcuts, squeeze-excitation), named in the message instead of failing obscurely.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class KeyConvention:
    """One way another library writes a state_dict's keys: ``detect`` (do the keys show it?), ``rename``
    (one key in our names) and the ``note`` the user reads. A new convention is one row of
    ``KEY_CONVENTIONS``, not a new branch."""

    writer: str
    detect: Callable[[Sequence[str]], bool]
    rename: Callable[[str], str]
    note: str


def _prefixed(prefix: str, writer: str) -> KeyConvention:
    """The commonest convention: a wrapper's prefix on every key, removed."""
    return KeyConvention(writer, lambda keys: bool(keys) and all(k.startswith(prefix) for k in keys),
                         lambda key: key[len(prefix):], f"removed the '{prefix}' prefix from every key")


def _substituted(writer: str, pattern: str, replacement: str, note: str,
                 unless: str | None = None) -> KeyConvention:
    """Keys matching ``pattern`` (a regex) rewritten with ``replacement``; detected when any key matches and
    no key already has the name it would become (``unless``, a regex)."""
    compiled = re.compile(pattern)
    blocked = re.compile(unless) if unless else None

    def detect(keys: Sequence[str]) -> bool:
        if blocked is not None and any(blocked.search(k) for k in keys):
            return False
        return any(compiled.search(k) for k in keys)

    return KeyConvention(writer, detect, lambda key: compiled.sub(replacement, key), note)


# Hugging Face transformers' ResNet (ResNetForImageClassification): the same blocks under other names.
_HF_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p), r) for p, r in (
    (r"^resnet\.embedder\.embedder\.convolution\.", "conv1."),
    (r"^resnet\.embedder\.embedder\.normalization\.", "bn1."),
    (r"^resnet\.encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.convolution\.",
     lambda m: f"layer{int(m.group(1)) + 1}.{m.group(2)}.downsample.0."),
    (r"^resnet\.encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.normalization\.",
     lambda m: f"layer{int(m.group(1)) + 1}.{m.group(2)}.downsample.1."),
    (r"^resnet\.encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.(\d+)\.convolution\.",
     lambda m: f"layer{int(m.group(1)) + 1}.{m.group(2)}.conv{int(m.group(3)) + 1}."),
    (r"^resnet\.encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.(\d+)\.normalization\.",
     lambda m: f"layer{int(m.group(1)) + 1}.{m.group(2)}.bn{int(m.group(3)) + 1}."),
    (r"^classifier\.1\.", "fc."),
))


def _hugging_face(key: str) -> str:
    for pattern, replacement in _HF_RULES:
        renamed, count = pattern.subn(replacement, key)
        if count:
            return renamed
    return key


KEY_CONVENTIONS: tuple[KeyConvention, ...] = (
    _prefixed("module.", "DataParallel / DistributedDataParallel"),
    _prefixed("_orig_mod.", "torch.compile"),
    _prefixed("model.", "PyTorch Lightning"),
    _prefixed("net.", "PyTorch Lightning (self.net, lightning-hydra-template)"),
    KeyConvention("Hugging Face transformers",
                  lambda keys: any(k.startswith("resnet.embedder.embedder.") for k in keys), _hugging_face,
                  "read the Hugging Face transformers layout (resnet.embedder, resnet.encoder.stages.N.layers.M, "
                  "classifier.1) as torchvision's"),
    _substituted("CIFAR training repositories (projection shortcuts)", r"^(layer\d+\.\d+)\.shortcut\.(\d+)\.",
                 r"\1.downsample.\2.", "projection shortcuts 'shortcut.0/1' read as 'downsample.0/1'",
                 unless=r"^layer\d+\.\d+\.downsample\."),
    _substituted("CIFAR training repositories (classifier)", r"^linear\.", "fc.",
                 "classifier 'linear' read as 'fc'", unless=r"^fc\."),
)


def apply_conventions(state_dict: dict[str, torch.Tensor], notes: list[str],
                      conventions: Sequence[KeyConvention] | None = None) -> dict[str, torch.Tensor]:
    """Apply every matching row of ``conventions`` (default ``KEY_CONVENTIONS``), in order, until none
    matches, noting each. Wrappers may nest (``module._orig_mod.``); a row that changes nothing stops."""
    table = KEY_CONVENTIONS if conventions is None else conventions
    for _ in range(4 * len(table) + 4):  # bounded: nesting deeper than this is not a real checkpoint
        for convention in table:
            if convention.detect(list(state_dict)):
                renamed = {convention.rename(k): v for k, v in state_dict.items()}
                if list(renamed) == list(state_dict) or len(renamed) != len(state_dict):
                    continue  # nothing renamed, or two keys would become one: not this convention
                state_dict = renamed
                notes.append(convention.note)
                break
        else:
            return state_dict
    return state_dict


def conventions_tried(conventions: Sequence[KeyConvention] | None = None) -> str:
    """"DataParallel ... ('module.'), ...": what was tried, for a message about a file nothing fits."""
    table = KEY_CONVENTIONS if conventions is None else conventions
    return "; ".join(dict.fromkeys(c.writer for c in table))


# ------------------------------------------------------------------------------- layouts we cannot build
@dataclass(frozen=True)
class Unbuildable:
    """A ResNet variant recognised from its keys that this project cannot build: ``what`` names it."""

    detect: Callable[[Sequence[str]], bool]
    what: str


def _any(pattern: str) -> Callable[[Sequence[str]], bool]:
    compiled = re.compile(pattern)
    return lambda keys: any(compiled.search(k) for k in keys)


UNBUILDABLE: tuple[Unbuildable, ...] = (
    Unbuildable(_any(r"^conv1\.\d+\.weight$"),
                "a deep stem (three 3x3 convolutions, conv1.0/conv1.3/conv1.6: timm's resnet*c, resnet*d and "
                "resnet*s variants)"),
    Unbuildable(_any(r"^layer\d+\.\d+\.downsample\.2\."),
                "average-pool shortcuts (AvgPool, then the 1x1 convolution as downsample.1 and its BatchNorm "
                "as downsample.2: timm's resnet*d variants)"),
    Unbuildable(_any(r"^layer\d+\.\d+\.se\."), "squeeze-and-excitation modules (timm's seresnet*)"),
)


def unbuildable_variants(keys: Sequence[str]) -> list[str]:
    """What, in these (renamed) keys, is a ResNet variant this project cannot build; empty when nothing."""
    return [row.what for row in UNBUILDABLE if row.detect(keys)]


__all__ = ["KEY_CONVENTIONS", "UNBUILDABLE", "KeyConvention", "Unbuildable", "apply_conventions",
           "conventions_tried", "unbuildable_variants"]
