"""Weights for every net: seeded random init, torchvision ImageNet weights, checkpoint files.

Weights ids (strings, also in the app's URL as ``weights=``):

``"random"``
    the seeded random initialisation of ``build(name, seed=0)``;
``"tv:<ENUM MEMBER>"``
    torchvision's ImageNet weights, e.g. ``"tv:IMAGENET1K_V2"``, through torchvision's weight enums and
    torch.hub's cache (``torch.hub.get_dir()/checkpoints``): used from the cache, downloaded when the
    network allows, otherwise a sentence naming the file and the folder where it can be placed;
``"ckpt:<absolute path>"``
    a checkpoint file, always read with ``torch.load(weights_only=True)`` so a pickle cannot run code.

Checkpoints may be a bare state_dict, ``{"state_dict": ...}``, ``{"model": ...}`` (``module.`` prefixes from
DataParallel/DDP stripped), or the project's own format (``{"format": "resnet-explorer/1", "arch", "options",
"state_dict", "classes", "preprocessing", ...}``). Without a config the architecture is inferred from the
tensors' names and shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

from torch import nn

FORMAT = "resnet-explorer/1"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".tar")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


# --------------------------------------------------------------------------------------------- preprocessing
@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes model input: resize the shorter side, centre-crop, normalise per channel."""

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    IMAGENET: ClassVar[Preprocessing]
    CIFAR: ClassVar[Preprocessing]

    def __post_init__(self) -> None:
        if self.crop < 1 or self.resize < self.crop:
            raise ValueError(f"Preprocessing needs 1 <= crop <= resize, got resize={self.resize}, crop={self.crop}.")
        if len(self.mean) != len(self.std) or any(s <= 0 for s in self.std):
            raise ValueError("Preprocessing needs one positive std per mean.")
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    @classmethod
    def shapes(cls, image_size: int = 32) -> Preprocessing:
        """The built-in Shapes set at ``image_size`` px, normalised with its own training statistics."""
        mean, std = _shapes_stats(image_size)
        return cls(image_size, image_size, mean, std)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        return cls(int(data["resize"]), int(data["crop"]), tuple(data["mean"]), tuple(data["std"]))

    def to_dict(self) -> dict[str, Any]:
        return {"resize": self.resize, "crop": self.crop, "mean": list(self.mean), "std": list(self.std)}

    def describe(self) -> str:
        mean = ", ".join(f"{m:.3f}" for m in self.mean)
        std = ", ".join(f"{s:.3f}" for s in self.std)
        return f"resize {self.resize}, centre crop {self.crop}, mean ({mean}), std ({std})"


Preprocessing.IMAGENET = Preprocessing(256, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
Preprocessing.CIFAR = Preprocessing(32, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


@lru_cache(maxsize=8)
def _shapes_stats(image_size: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    from .data import shapes_split  # local: data is optional for everything else here

    train = shapes_split("train", 256, image_size=image_size)
    return tuple(float(m) for m in train.mean), tuple(float(s) for s in train.std)


def preprocessing_for(model: nn.Module) -> Preprocessing:
    """``model.preprocessing`` when weights/checkpoint set it; else ImageNet 224 or CIFAR 32 by the stem."""
    prep = getattr(model, "preprocessing", None)
    if isinstance(prep, Preprocessing):
        return prep
    if isinstance(prep, Mapping):
        return Preprocessing.from_dict(prep)
    return Preprocessing.CIFAR if getattr(model, "stem_kind", "imagenet") == "cifar" else Preprocessing.IMAGENET


def _num_classes(model: nn.Module) -> int:
    fc = getattr(model, "fc", None)
    return int(fc.out_features) if isinstance(fc, nn.Linear) else 0


def class_names_for(model: nn.Module) -> list[str]:
    """Class names: from the weights/checkpoint if set, else ImageNet / CIFAR-10 names by class count."""
    names = getattr(model, "class_names", None)
    count = _num_classes(model)
    if names is not None and (count == 0 or len(names) == count):
        return list(names)
    if count == 1000:
        from torchvision.models._meta import _IMAGENET_CATEGORIES

        return list(_IMAGENET_CATEGORIES)
    if count == 10 and getattr(model, "stem_kind", "") == "cifar":
        return list(CIFAR10_CLASSES)
    return [f"class {i}" for i in range(count)]
