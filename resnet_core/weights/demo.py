"""Embedded demo models: ResNet-20 and its plain twin, trained on the built-in Shapes set, shipped in the package.

Every page that shows a model can then show a *trained* one from the first click, offline. The files are made
by ``make demo-models`` (``tools/make_demo_models.py``): the project's own trainer (``resnet_core.train``) with
a fixed seed, on the CPU. They are ordinary checkpoints in our format (``checkpoints.make_checkpoint``, without
the optimizer's resume state, which only a continued race needs), so loading one is the ordinary checkpoint
code: ``read_checkpoint`` (``torch.load(weights_only=True)``) then ``model_from_checkpoint``. They are read
from the package with ``importlib.resources``, never through a path a link could name: ``ckpt:`` ids stay
confined to the runs and uploads folders.

Weights ids: ``demo:resnet20`` and ``demo:plain20``. ``metrics.json`` beside the checkpoints records the
recipe, each net's held-out accuracy and the training time; ``history.csv`` the training curves.

Which weights a page starts with is decided here too (:func:`best_weights`, :func:`best_model`), from files on
disk only: no network is touched, so choosing a default is instant offline.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from torch import nn

from ..card import card_of
from ..data import SHAPES_CLASSES
from ..errors import WeightsError
from ..errors import clip as _clip
from ..models import display_name, get_spec
from .checkpoints import Checkpoint, model_from_checkpoint, read_checkpoint, require_rgb

DEMO_PACKAGE = "resnet_core.weights.demo_models"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
# The localisation check of the demo model the views explain (cam.localisation_numbers; make demo-models).
CHECKS_FILE = "checks.json"
DEMO_CHECK_MODEL = "resnet20"
# The sentence shown beside the Shapes demo where a photo would need ImageNet weights (README: "Preparing an
# offline classroom").
PHOTO_WEIGHTS_HINT = ("This demo knows the ten Shapes, not photos: for photos, run `resnet-weights fetch resnet18` "
                      "once while online (README, \"Preparing an offline classroom\") and reload.")


@dataclass(frozen=True)
class DemoModel:
    """One embedded model: its id's key (``demo:<key>``), the architecture it was trained as, and its file."""

    key: str
    arch: str
    residual: bool
    file: str

    @property
    def weights_id(self) -> str:
        return f"demo:{self.key}"

    @property
    def label(self) -> str:
        """The net's name, e.g. ``"Plain-20"``."""
        return display_name(self.arch, self.residual)

    @property
    def options(self) -> dict[str, Any]:
        """The ``build`` options it was trained with (full width, the architecture's default shortcut)."""
        return {"residual": self.residual, "num_classes": len(SHAPES_CLASSES)}

    @property
    def weights_label(self) -> str:
        return f"{self.label} trained on Shapes (embedded demo)"


# The pair the lesson and the race compare: one depth with and without shortcuts.
DEMO_MODELS: dict[str, DemoModel] = {
    "resnet20": DemoModel("resnet20", "resnet20", True, "resnet20.pt"),
    "plain20": DemoModel("plain20", "resnet20", False, "plain20.pt"),
}


def demo_model(key: str) -> DemoModel:
    """The embedded model ``key`` (``"resnet20"``, ``"plain20"``); WeightsError naming the choices otherwise."""
    try:
        return DEMO_MODELS[key]
    except KeyError:
        choices = ", ".join(d.weights_id for d in DEMO_MODELS.values())
        raise WeightsError(f"'demo:{_clip(key, 60)}' is not an embedded demo model; choose one of {choices}.") from None


def demo_ids(arch: str | None = None, options: dict[str, Any] | None = None) -> list[str]:
    """The demo weights ids for ``arch`` (all of them when None), and for ``options`` when given: the same
    residual/plain choice and full width (the demo nets were trained at the architecture's base width)."""
    found = []
    for demo in DEMO_MODELS.values():
        if arch is not None and demo.arch != arch:
            continue
        if options is not None and (bool(options.get("residual", True)) != demo.residual
                                    or options.get("width") not in (None, get_spec(demo.arch).base_width)):
            continue
        found.append(demo.weights_id)
    return found


def demo_config(key: str) -> dict[str, Any]:
    """What the demo ``key`` holds, as ``fit.checkpoint_config`` says it for a file: arch, options, label, notes."""
    demo = demo_model(key)
    return {"arch": demo.arch, "options": demo.options, "label": demo.label, "notes": []}


def demo_fit(key: str, arch: str, options: dict[str, Any] | None = None) -> str | None:
    """None when the demo ``key`` is the net ``arch``/``options`` describe (same architecture, same residual or
    plain choice); else why not, as a sentence (the sidebar then shows random weights, as for a checkpoint)."""
    demo = demo_model(key)
    residual = bool((options or {}).get("residual", True))
    if demo.arch == arch and demo.residual == residual:
        return None
    return (f"The embedded demo holds {demo.label}, not {display_name(arch, residual)}; "
            "showing random weights for this net.")


def _resource(name: str) -> bytes:
    try:
        return (resources.files(DEMO_PACKAGE) / name).read_bytes()
    except (FileNotFoundError, ModuleNotFoundError, OSError):
        raise WeightsError(f"The embedded demo file {name} is missing from this installation of resnet_core; "
                           "reinstall the package, or run `make demo-models` in a source checkout.") from None


def read_demo_checkpoint(key: str) -> Checkpoint:
    """The demo ``key``'s checkpoint, read from the package by the ordinary, safe checkpoint reader."""
    demo = demo_model(key)
    return read_checkpoint(_resource(demo.file), name=demo.file)


def load_demo_model(key: str) -> nn.Module:
    """The embedded model ``key`` in eval mode, its card filled from the checkpoint (Shapes class names, the
    preprocessing it was trained with, the run's metrics) and named ``demo:<key>``."""
    demo = demo_model(key)
    ckpt = read_demo_checkpoint(key)
    model = model_from_checkpoint(ckpt)
    require_rgb(model, ckpt.source)
    card = card_of(model)
    card.weights_id, card.weights_label = demo.weights_id, demo.weights_label
    return model.eval()


@lru_cache(maxsize=1)
def _metrics_text() -> str:
    return _resource(METRICS_FILE).decode("utf-8")


def demo_metrics() -> dict[str, Any]:
    """``metrics.json``: the recipe (race config, seed, threads, torch version), per model its held-out
    accuracy, final training loss/accuracy, steps, file size, and the training time. A fresh copy each call."""
    return json.loads(_metrics_text())


def demo_checks() -> dict[str, Any]:
    """``checks.json``: the localisation check of ``demo:resnet20`` (pointing game, its chance and sample, the
    randomisation cascade), as :func:`resnet_core.cam.localisation_numbers` measured it. A fresh copy each call."""
    return json.loads(_resource(CHECKS_FILE).decode("utf-8"))


def demo_history() -> list[dict[str, Any]]:
    """``history.csv`` as rows: step, racer, loss, acc, lr (the training curves of both nets)."""
    rows = []
    for row in csv.DictReader(io.StringIO(_resource(HISTORY_FILE).decode("utf-8"))):
        rows.append({"step": int(row["step"]), "racer": row["racer"], "loss": float(row["loss"]),
                     "acc": float(row["acc"]), "lr": float(row["lr"])})
    return rows


def demo_test_accuracy(key: str) -> float:
    """The held-out accuracy ``metrics.json`` recorded for the demo ``key`` (a fraction, e.g. 0.93)."""
    return float(demo_metrics()["models"][demo_model(key).key]["test_acc"])


def default_image_for(model: nn.Module) -> str:
    """Which image a page should preselect for ``model``: ``"shapes"`` when its classes are the Shapes classes
    (a Shapes-trained net, such as the embedded demo), else ``"photo"``."""
    names = card_of(model).class_names
    return "shapes" if names is not None and tuple(names) == SHAPES_CLASSES else "photo"


__all__ = [
    "CHECKS_FILE", "DEMO_CHECK_MODEL", "DEMO_MODELS", "DEMO_PACKAGE", "HISTORY_FILE", "METRICS_FILE",
    "PHOTO_WEIGHTS_HINT", "DemoModel", "default_image_for", "demo_checks", "demo_config", "demo_fit",
    "demo_history", "demo_ids", "demo_metrics", "demo_model", "demo_test_accuracy", "load_demo_model",
    "read_demo_checkpoint",
]
