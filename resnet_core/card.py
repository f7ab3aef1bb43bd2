"""``ModelCard``: the one place the package records what it knows about a model beyond its layers.

A ``ResNet`` carries ``model.card`` from birth (``build`` fills the architecture; ``load_model`` and the
checkpoint reader fill the weights, classes and preprocessing). Everything that used to be set as a loose
attribute (``model.class_names``, ``model.arch_label`` ...) is a property of ``ResNet`` that reads and writes
the card, so old code keeps working and new code reads one typed object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .images import Preprocessing


@dataclass
class ModelCard:
    """What the rest of the package may know about a model.

    arch: the zoo name it was built as (``"resnet56"``), ``"custom"`` for an inferred layout, None unknown.
    arch_options: the ``build`` options beyond the zoo's defaults (``{"residual": False}`` ...).
    label: the human name shown beside it (``"Plain-56"``).
    weights_id / weights_label: where its values came from (``"random"``, ``"tv:IMAGENET1K_V1"``,
        ``"ckpt:/path"``, ``"demo:resnet20"``) and the words the app shows for that.
    class_names: one name per output, when the weights say what the outputs mean.
    preprocessing: how an image becomes its input, when the weights define it.
    notes: what was renamed, ignored or inferred while loading (shown beside the model and by the CLI).
    checkpoint_meta: the checkpoint's own record (run id, step, metrics) when it came from one.
    trained_on: what its weights were trained on, one of ``TRAINED_ON`` ("imagenet" for torchvision's weights,
        the data set a checkpoint records, "unknown" when it records none); None for random weights.
    """

    arch: str | None = None
    arch_options: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    weights_id: str = "random"
    weights_label: str = "random init"
    class_names: list[str] | None = None
    preprocessing: Preprocessing | None = None
    notes: list[str] = field(default_factory=list)
    checkpoint_meta: dict[str, Any] = field(default_factory=dict)
    trained_on: str | None = None


# What a card may say its weights were trained on, with the words the app uses for each.
TRAINED_ON: dict[str, str] = {
    "imagenet": "ImageNet photos (1,000 classes)",
    "shapes": "the Shapes set (ten synthetic shapes)",
    "cifar10": "CIFAR-10 (32 px photos of ten classes)",
    "mnist": "MNIST (handwritten digits)",
    "fashion_mnist": "Fashion-MNIST (pictures of ten kinds of clothing)",
    "unknown": "a data set its file does not record",
}


def trained_on_for(dataset: Any) -> str:
    """The card's ``trained_on`` for a checkpoint's recorded data set ("shapes", "cifar10"...; anything else,
    an image folder or nothing recorded, is "unknown": the app does not guess from the weights or the images)."""
    return dataset if isinstance(dataset, str) and dataset in TRAINED_ON else "unknown"


# ResNet's compatibility properties: old attribute name -> card field.
CARD_ATTRIBUTES: dict[str, str] = {
    "arch_name": "arch",
    "arch_options": "arch_options",
    "arch_label": "label",
    "weights_id": "weights_id",
    "weights_label": "weights_label",
    "class_names": "class_names",
    "preprocessing": "preprocessing",
    "weights_notes": "notes",
    "checkpoint_meta": "checkpoint_meta",
}


def card_of(model: Any) -> ModelCard:
    """``model.card`` for our nets; an empty card for any other module (a torchvision or user network)."""
    card = getattr(model, "card", None)
    return card if isinstance(card, ModelCard) else ModelCard()


@dataclass(frozen=True)
class SourceMismatch:
    """An image source the model was not trained for: one sentence for above the map, and the one change that
    fixes it (``fix_source``: the image source to switch to, with its button's words), or None where no source
    the app offers suits the model."""

    sentence: str
    fix_source: str | None = None
    fix_label: str = ""


def source_mismatch(trained_on: str | None, image_kind: str) -> SourceMismatch | None:
    """Whether an image of ``image_kind`` ("photo", "upload" or "shapes") suits a model ``trained_on`` (its card's
    field). Decided from the card and the source only, never from the image's content: a photo or an upload on
    a Shapes, CIFAR-10 or MNIST-like model, a Shapes image on any model but a Shapes one. Random weights and
    unknown data: None."""
    what = {"photo": "a photo", "upload": "an uploaded image", "shapes": "a Shapes image"}.get(image_kind)
    if what is None or trained_on is None or trained_on == "unknown" or trained_on not in TRAINED_ON:
        return None
    trained = f"This model was trained on {TRAINED_ON[trained_on]}"
    if trained_on == "shapes":
        return None if image_kind == "shapes" else SourceMismatch(
            f"{trained}, so on {what} it can only answer with a shape, however confident it looks.", "shapes",
            "Use a Shapes image")
    if trained_on == "imagenet":
        return None if image_kind != "shapes" else SourceMismatch(
            f"{trained}: a Shapes image is none of its classes, so its answer says little.", "photo",
            "Use a sample photo")
    return SourceMismatch(f"{trained}: on {what} it answers with one of its own classes whatever the image shows, "
                          "and this app has no image of that kind to offer, so read its answer with care.")
