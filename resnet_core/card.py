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
