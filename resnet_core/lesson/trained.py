"""The lesson's instruments on any trained net: the landscape and the lesion study of a finished run's
checkpoint, an uploaded checkpoint or an embedded demo model, on the data it was trained on, costed first.

Split from ``resnet_core.lesson`` (which still answers these names); the pages and the CLI call them there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from ..data import dataset_title
from ..weights.checkpoints import checkpoint_id, checkpoint_title
from .steps import forward_seconds, landscape_passes, lesion_passes_of, seeded_batch
from .store import fetch_or_measure, tensor_digests, weights_digest
from .words import duration


class AnyNetError(ValueError):
    """The instruments cannot be run on the chosen model as asked; ``str(error)`` is one sentence."""


@dataclass(frozen=True)
class TrainedModel:
    """A trained model the instruments can measure: its weights id (``ckpt:<path>`` of a run's or an uploaded
    checkpoint, ``demo:<key>`` of an embedded demo), the words shown for it, where it comes from (``"run"``,
    ``"upload"``, ``"demo"``) and the data set it was trained on when that is known without opening it."""

    weights: str
    label: str
    source: str
    dataset: str | None = None


def trained_checkpoints(runs_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Every checkpoint of every finished or stopped run, newest first (``runs.list_checkpoints``): path, run_id,
    label, arch, options, created."""
    from ..runs import list_checkpoints

    return list_checkpoints(runs_dir)


def _uploaded_checkpoints(folder: Path) -> list[Path]:
    from ..weights.checkpoints import CHECKPOINT_SUFFIXES

    try:
        files = [f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")
                 and f.suffix.lower() in CHECKPOINT_SUFFIXES]
    except OSError:  # no uploads folder yet
        return []
    return sorted(files, key=lambda f: (f.stat().st_mtime, f.name), reverse=True)


def trained_models(runs_dir: str | Path | None = None) -> list[TrainedModel]:
    """Every trained model there is: the checkpoints of finished (and stopped) runs, newest first; the uploaded
    checkpoints in the uploads folder, newest first; then the embedded demo models (when installed)."""

    from ..runs import list_runs
    from ..settings import runs_dir as default_runs_dir
    from ..weights.demo import DEMO_MODELS, demo_metrics

    runs = list_runs(runs_dir)
    datasets = dict(zip(runs.get("run_id", []), runs.get("dataset", []), strict=True))
    found = [TrainedModel(checkpoint_id(c["path"], runs_dir), checkpoint_title(c["path"]), "run",
                          datasets.get(c["run_id"]) or None) for c in trained_checkpoints(runs_dir)]
    base = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    for path in _uploaded_checkpoints(base / "uploads"):
        found.append(TrainedModel(checkpoint_id(path, base), f"{checkpoint_title(path)} "
                                  f"({path.stat().st_size / 2**20:.1f} MB)", "upload"))
    try:
        demo_metrics()  # the embedded files are installed
    except ValueError:
        return found
    found += [TrainedModel(demo.weights_id, demo.weights_label, "demo", "shapes") for demo in DEMO_MODELS.values()]
    return found


def open_trained(source: str) -> nn.Module:
    """The model of a weights id (``ckpt:<path>`` inside the runs or uploads folder, ``demo:<key>``) in eval
    mode, or of a checkpoint file at a local path (trusted callers: the command line, a notebook)."""
    from ..weights import load_model
    from ..weights.checkpoints import load_checkpoint_file

    if source.startswith(("ckpt:", "demo:")):
        return load_model("resnet20", None, source)
    return load_checkpoint_file(source)


def _classes(model: nn.Module) -> int:
    fc = getattr(model, "fc", None)
    return int(fc.out_features) if isinstance(fc, nn.Linear) else 0


def data_for(model: nn.Module, dataset: str | None = None) -> str:
    """The data set to measure ``model`` on: ``dataset`` when given, else the one its checkpoint records, else
    Shapes for a net whose classes are the Shapes classes; otherwise AnyNetError saying what to choose."""
    from ..card import card_of
    from ..data import SHAPES_CLASSES

    if dataset:
        return dataset
    card = card_of(model)
    recorded = card.checkpoint_meta.get("dataset")
    if isinstance(recorded, str) and recorded:
        return recorded
    if card.class_names is not None and tuple(card.class_names) == SHAPES_CLASSES:
        return "shapes"
    raise AnyNetError(f"The checkpoint ({card.label or f'{_classes(model)} classes'}) does not record the data "
                      "set it was trained on, so there are no images to measure it on; choose the data set it was "
                      "trained on (shapes, cifar10, mnist, fashion_mnist).")


def model_batch(model: nn.Module, dataset: str, split: str, n: int, *, download: bool | None = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images of ``split`` of ``dataset`` prepared as ``model`` expects (its input size and statistics), and
    their labels. Data sets other than Shapes are read from the data folder (``download``: fetched first when
    True, or when None and the network allows); a missing one is a ``DataError`` naming the files to place.
    AnyNetError when the model's outputs are not the data set's classes."""
    from ..card import card_of
    from ..data import load_splits

    prep = card_of(model).preprocessing
    size = int(getattr(prep, "crop", 0) or 32)
    train, test = load_splits(dataset, size, n_train=n, n_test=n, download=download)
    data = train if split == "train" else test
    classes = len(data.classes)
    if _classes(model) != classes:
        raise AnyNetError(f"{card_of(model).label or 'This model'} has {_classes(model)} outputs but {dataset_title(dataset)} has "
                          f"{classes} classes, so it was not trained on it; choose the data set it was trained on.")
    mean = torch.tensor(getattr(prep, "mean", None) or data.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(getattr(prep, "std", None) or data.std, dtype=torch.float32).view(1, -1, 1, 1)
    images = data.images[:n]
    images = images.float().div(255) if images.dtype == torch.uint8 else images.float()
    return (images - mean) / std, data.labels[:n]


@dataclass
class AnyNetPlan:
    """What measuring one trained model will cost, said before any work: the data set, the forward passes of
    the landscape (surface and slice) and of the lesion study (study and curve), the memory the larger of the
    two needs (within the budget: a plan over it is refused) and the time, from a timed forward pass."""

    model: nn.Module
    label: str
    residual: bool
    dataset: str
    classes: int
    image_size: int
    steps: int
    landscape_batch: int
    lesion_batch: int
    max_removed: int
    samples: int
    seed: int
    landscape_passes: int
    lesion_passes: int
    memory_bytes: int
    seconds: float

    @property
    def chance(self) -> float:
        return 1.0 / max(1, self.classes)

    def sentence(self) -> str:
        from ..settings import format_bytes

        took = duration(self.seconds)
        return (f"{self.label} on {dataset_title(self.dataset)} ({self.image_size} px): a {self.steps} x {self.steps} landscape "
                f"costs {self.landscape_passes} forward passes of {self.landscape_batch} training images, the "
                f"lesion study {self.lesion_passes} of {self.lesion_batch} held-out images; at most "
                f"{format_bytes(self.memory_bytes)} of memory, about {took} here (timed).")


def plan_any(model: nn.Module, *, dataset: str | None = None, steps: int = 11, landscape_batch: int = 64,
             lesion_batch: int = 128, max_removed: int = 4, samples: int = 6, seed: int = 0,
             label: str | None = None) -> AnyNetPlan:
    """Cost the landscape and lesion study of ``model`` before any work (see :class:`AnyNetPlan`): the data set
    (:func:`data_for`), the passes, the memory (``BudgetError`` when even one image does not fit) and the time
    (a no-grad forward of 8 random images timed on a private copy, scaled to the batches)."""
    from ..card import card_of
    from ..landscape import estimate as landscape_estimate
    from ..lesion import estimate as lesion_estimate

    chosen = data_for(model, dataset)
    size = int(getattr(card_of(model).preprocessing, "crop", 0) or 32)
    memory = max(landscape_estimate(model, (landscape_batch, 3, size, size)).total,
                 lesion_estimate(model, (lesion_batch, 3, size, size)).total)
    land, lesion = landscape_passes(steps), lesion_passes_of(model, max_removed, samples)
    probe = seeded_batch(8, size, seed)
    per_image = forward_seconds(model, probe) / 8
    seconds = per_image * (land * landscape_batch + lesion * lesion_batch)
    return AnyNetPlan(model, label or card_of(model).label or "This model", bool(getattr(model, "residual", True)),
                      chosen, _classes(model), size, steps, landscape_batch, lesion_batch, max_removed, samples,
                      seed, land, lesion, memory, seconds)


@dataclass
class AnyNetResult:
    """The four tables of one trained model (each with ``net`` and ``residual`` columns, as the lesson's), its
    accuracy on the lesion batch, and chance (one over its classes)."""

    label: str
    dataset: str
    chance: float
    accuracy: float
    surface: pd.DataFrame
    line: pd.DataFrame
    study: pd.DataFrame
    curve: pd.DataFrame
    lesion_batch: int

    def headline(self) -> str:
        """The line above the charts, e.g. "**Plain-20** on 128 held-out CIFAR-10 images: accuracy 61.7% ..."."""
        return (f"**{self.label}** on {self.lesion_batch} held-out {dataset_title(self.dataset)} images: accuracy "
                f"{self.accuracy:.1%} with every block (chance is {self.chance:.0%}).")


def measure_any(plan: AnyNetPlan, *, on_progress: Callable[[int, int], None] | None = None,
                download: bool | None = False) -> AnyNetResult:
    """Steps 6 and 7 on the plan's model: the surface and slice on training images, the lesion study and the
    k-blocks-removed curve on held-out images. ``on_progress(done, total)`` after every forward pass, or once
    at the end when the same model on the same batches was measured before on this machine (kept: .store)."""
    from ..landscape import line, surface
    from ..lesion import lesion_curve, lesion_study

    model = plan.model
    x, y = model_batch(model, plan.dataset, "train", plan.landscape_batch, download=download)
    xt, yt = model_batch(model, plan.dataset, "test", plan.lesion_batch, download=download)
    total = plan.landscape_passes + plan.lesion_passes
    done = [0]

    def tick(_done: int, _total: int) -> None:
        done[0] += 1
        if on_progress is not None:
            on_progress(min(done[0], total), total)

    tag = {"net": plan.label, "residual": plan.residual}

    def measure() -> tuple[pd.DataFrame, ...]:
        grid = surface(model, x, y, steps=plan.steps, seed=plan.seed, on_progress=tick).assign(**tag)
        cut = line(model, x, y, steps=plan.steps, seed=plan.seed, on_progress=tick).assign(**tag)
        study = lesion_study(model, xt, yt, on_progress=tick).assign(**tag)
        curve = lesion_curve(model, xt, yt, max_removed=plan.max_removed, samples=plan.samples, seed=plan.seed,
                             on_progress=tick).assign(**tag)
        return grid, cut, study, curve

    # Kept on disk like the lesson pair's (store.py): the same model on the same batches is measured once.
    settings = tuple(sorted({"steps": plan.steps, "max_removed": plan.max_removed, "samples": plan.samples,
                             "seed": plan.seed, "residual": plan.residual}.items()))  # the batches: by digest
    grid, cut, study, curve = fetch_or_measure(
        (weights_digest({plan.label: model}), "any net", tensor_digests((x, y, xt, yt)), settings), measure)
    if on_progress is not None:
        on_progress(total, total)  # the curve's own full-model pass reports no progress
    return AnyNetResult(plan.label, plan.dataset, plan.chance, float(study["full_accuracy"].iloc[0]), grid, cut,
                        study, curve, plan.lesion_batch)


def landscape_of(path: str, *, steps: int = 11, batch: int = 128, dataset: str | None = None, seed: int = 0,
                 on_progress: Callable[[int, int], None] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Step 6 on the trained model ``path`` (a checkpoint file, or a weights id ``ckpt:``/``demo:``; training
    images of ``dataset``, default the one it was trained on): (surface, line), each with ``net`` and
    ``residual`` columns for ``plots.landscape``."""
    from ..landscape import line, surface

    model = open_trained(path)
    x, y = model_batch(model, data_for(model, dataset), "train", batch, download=None)
    label = _checkpoint_label(model, path)
    residual = bool(getattr(model, "residual", True))
    total = landscape_passes(steps)
    done = [0]

    def tick(_done: int, _total: int) -> None:
        done[0] += 1
        if on_progress is not None:
            on_progress(done[0], total)

    grid = surface(model, x, y, steps=steps, seed=seed, on_progress=tick)
    cut = line(model, x, y, steps=steps, seed=seed, on_progress=tick)
    return grid.assign(net=label, residual=residual), cut.assign(net=label, residual=residual)


def lesion_of(path: str, *, batch: int = 256, dataset: str | None = None, max_removed: int = 4, samples: int = 6,
              seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Step 7 on the trained model ``path`` (a checkpoint file, or a weights id; held-out images of ``dataset``,
    default the one it was trained on): (study, curve), each with ``net`` and ``residual`` columns for
    ``plots.lesion``."""
    from ..lesion import lesion_curve, lesion_study

    model = open_trained(path)
    x, y = model_batch(model, data_for(model, dataset), "test", batch, download=None)
    label = _checkpoint_label(model, path)
    residual = bool(getattr(model, "residual", True))
    study = lesion_study(model, x, y).assign(net=label, residual=residual)
    curve = lesion_curve(model, x, y, max_removed=max_removed, samples=samples, seed=seed)
    return study, curve.assign(net=label, residual=residual)


def _checkpoint_label(model: nn.Module, path: str) -> str:
    card = getattr(model, "card", None)
    return str(getattr(card, "label", None) or Path(path).stem)
