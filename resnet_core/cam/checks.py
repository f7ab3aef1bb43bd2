"""Proving the maps right: the pointing game, the model-randomisation cascade (Adebayo et al. 2018), Grad-CAM
written out by hand, and the end-to-end localisation check on a Shapes-trained model (the embedded demo
ResNet-20 unless the user has one)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..costs import require_within_budget, scale_to_budget
from ..hooks import model_lock, preserved_state, taps
from ..targets import ClassTarget
from .core import CamError, TargetModel, _check_image, _normalise, resolve_layer
from .methods import METHODS, REGISTRY, GradCam
from .overlays import overlay


def gradcam_batch(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, layer: str | None = None,
                  batch_size: int = 64) -> torch.Tensor:
    """Grad-CAM maps (N, H, W), unnormalised, for a batch of normalised images and their class labels."""
    _check_image(images)
    _, module = resolve_layer(model, layer)
    # Over the memory budget, fewer images at a time (the maps are the same).
    cost = scale_to_budget(GradCam.cost(model, batch=max(1, min(batch_size, images.shape[0])),
                                        image_size=tuple(images.shape[1:])), "batch")
    batch_size = cost.request["batch"]

    maps = []
    with preserved_state(model, train=False):
        for start in range(0, images.shape[0], batch_size):
            chunk = images[start:start + batch_size].detach()
            chunk_labels = labels[start:start + batch_size]
            target = _LabelTarget(chunk_labels) if chunk_labels.numel() > 1 else ClassTarget(int(chunk_labels[0]))
            raw, _ = GradCam().attribute(TargetModel(model, target), chunk, module, cost=cost, ig_steps=0)
            maps.append(raw)
    return torch.cat(maps)


def cam_batch(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, layer: str | None = None,
              method: str = "gradcam", batch_size: int = 64) -> torch.Tensor:
    """Any registered method's maps (N, H, W), unnormalised, for a batch of images and their class labels.

    ``"gradcam"`` is ``gradcam_batch``; every other method runs its ``attribute`` on chunks of ``batch_size``
    images (scaled to the memory budget), under the model's lock with its state restored, without gradients
    where the method needs none.
    """
    if method == "gradcam":
        return gradcam_batch(model, images, labels, layer, batch_size)
    runner = REGISTRY.get(method)
    if runner is None:
        raise CamError(f"Unknown method '{method}'; choose one of {', '.join(METHODS)}.")
    _check_image(images)
    _, module = resolve_layer(model, layer) if runner.uses_layer else (None, None)
    size = tuple(images.shape[1:])
    cost = runner.fit_budget(runner.estimate(model, size))
    if runner.own_batching:  # integrated gradients and Score-CAM batch their own passes: one image at a time
        batch_size = 1
    else:
        wanted = runner.cost(model, image_size=size, batch=max(1, min(batch_size, images.shape[0])))
        batch_size = scale_to_budget(wanted, "batch").request["batch"]
    maps = []
    with preserved_state(model, train=False), torch.set_grad_enabled(runner.needs_gradient):
        for start in range(0, images.shape[0], batch_size):
            chunk = images[start:start + batch_size].detach().clone()
            chunk_labels = labels[start:start + batch_size]
            # One image: a class target, which also holds for the scaled copies integrated gradients stacks.
            target = _LabelTarget(chunk_labels) if chunk_labels.numel() > 1 else ClassTarget(int(chunk_labels[0]))
            wrapped = TargetModel(model, target)
            maps.append(runner.attribute(wrapped, chunk, module, cost=cost, ig_steps=16)[0].detach())
    return torch.cat(maps)


@dataclass(frozen=True)
class _LabelTarget:
    """Each sample's own label logit (per-sample scalar)."""

    labels: torch.Tensor

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.gather(1, self.labels.to(logits.device)[:, None])[:, 0]

    def class_indices(self, logits: torch.Tensor) -> torch.Tensor:
        return self.labels.to(logits.device)


@dataclass
class PointingResult:
    """The pointing game: per-image rows and the summary the page shows."""

    table: pd.DataFrame  # index, label, predicted, correct, hit, mask_share, object_share, peak_row, peak_col
    layer: str
    tolerance: int = 0

    @property
    def hit_rate(self) -> float:
        return float(self.table["hit"].mean())

    @property
    def chance(self) -> float:
        """Expected hit rate of a uniformly random point: the mean share of the image within tolerance of the object."""
        return float(self.table["mask_share"].mean())

    @property
    def accuracy(self) -> float:
        return float(self.table["correct"].mean())

    def summary(self) -> pd.DataFrame:
        return pd.DataFrame([
            {"measure": f"pointing-game hit rate (map peak within {self.tolerance} px of the object)",
             "value": self.hit_rate},
            {"measure": "chance (a random point: share of the image that counts as a hit)", "value": self.chance},
            {"measure": "strict chance (object's share of the image)",
             "value": float(self.table["object_share"].mean())},
            {"measure": "classification accuracy", "value": self.accuracy},
            {"measure": "images", "value": float(len(self.table))},
        ])


def pointing_tolerance(image_size: int) -> int:
    """The pointing game's tolerance in pixels: 15 px at 224 (Zhang et al. 2016, used by the Grad-CAM paper),
    scaled to the image size (2 px at 32)."""
    return int(round(15 * image_size / 224))


def pointing_game(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor,
                  layer: str | None = None, tolerance: int | None = None, method: str = "gradcam"
                  ) -> PointingResult:
    """Does the map's peak for the true class fall on the object? (the pointing game, Grad-CAM paper 6.1)

    ``method``: any name from ``METHODS`` (default Grad-CAM).
    ``images`` normalised (N, 3, H, W); ``labels`` (N,); ``masks`` bool (N, H, W). A hit is a peak within
    ``tolerance`` pixels of the mask (default ``pointing_tolerance(H)``: the paper's 15 px at 224, scaled).
    A map with no positive evidence has no peak and counts as a miss. Chance is the share of the image
    within the tolerance of the object: the hit rate of a uniformly random point, measured the same way.
    """
    if masks.shape[0] != images.shape[0] or masks.shape[-2:] != images.shape[-2:]:
        raise CamError("Masks must be (N, H, W) matching the images.")
    tolerance = pointing_tolerance(images.shape[-1]) if tolerance is None else int(tolerance)
    if tolerance < 0:
        raise CamError(f"The tolerance must be zero or more pixels, got {tolerance}.")
    layer_name, _ = resolve_layer(model, layer)
    maps = cam_batch(model, images, labels, layer_name, method)
    with preserved_state(model, train=False), torch.no_grad():
        predicted = torch.cat([model(images[i:i + 256]).argmax(1) for i in range(0, images.shape[0], 256)])
    # "Within tolerance of the mask" = inside the mask dilated by a (2t+1)-square: a max-pool does it exactly.
    near = F.max_pool2d(masks.float()[:, None], 2 * tolerance + 1, 1, tolerance)[:, 0] > 0 if tolerance else masks
    flat = maps.flatten(1)
    peak = flat.argmax(dim=1)
    width = maps.shape[-1]
    rows, cols = peak // width, peak % width
    hit = near.flatten(1).gather(1, peak[:, None])[:, 0] & (flat.amax(dim=1) > 0)
    table = pd.DataFrame({
        "index": range(images.shape[0]),
        "label": labels.tolist(),
        "predicted": predicted.tolist(),
        "correct": (predicted == labels).tolist(),
        "hit": hit.tolist(),
        "mask_share": near.float().flatten(1).mean(1).tolist(),
        "object_share": masks.float().flatten(1).mean(1).tolist(),
        "peak_row": rows.tolist(),
        "peak_col": cols.tolist(),
    })
    return PointingResult(table, layer_name, tolerance)


def _randomise_(module: nn.Module, generator_seed: int) -> None:
    """Re-initialise every weight in ``module`` in place (a private copy), repeatably."""
    generator = torch.Generator().manual_seed(generator_seed)  # never the global random state
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, nn.modules.batchnorm._BatchNorm):
                sub.reset_running_stats()
                if sub.affine:
                    # Random affine too (all-ones/zeros would keep the trained map's structure).
                    sub.weight.copy_(torch.rand(sub.weight.shape, generator=generator) + 0.5)
                    sub.bias.copy_(torch.randn(sub.bias.shape, generator=generator) * 0.1)
            elif isinstance(sub, (nn.Conv2d, nn.Linear)):
                # The layers' own reset_parameters rule (kaiming-uniform, a=sqrt(5)), from our generator.
                nn.init.kaiming_uniform_(sub.weight, a=math.sqrt(5), generator=generator)
                if sub.bias is not None:
                    fan_in = sub.weight[0].numel()
                    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                    nn.init.uniform_(sub.bias, -bound, bound, generator=generator)


def cascade_steps(model: nn.Module) -> list[tuple[str, list[str]]]:
    """Top-down randomisation steps: ("fc", [...]), ("layer4", [...]), ... ("stem", [...]), cumulative."""
    steps: list[tuple[str, list[str]]] = [("fc", ["fc"])]
    stages = [f"layer{i + 1}" for i in range(getattr(model, "num_stages", 0))]
    for stage in reversed(stages):
        steps.append((stage, [stage]))
    stem = [n for n in ("conv1", "bn1") if hasattr(model, n)]
    steps.append(("stem", stem))
    return steps


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two flattened maps (average ranks for ties); 0 when one is constant."""
    from scipy.stats import rankdata

    ra, rb = rankdata(a.flatten().numpy()), rankdata(b.flatten().numpy())
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def randomization_cascade(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, layer: str | None = None,
                          seed: int = 0, keep_maps: int = 0, method: str = "gradcam") -> pd.DataFrame:
    """Adebayo et al. 2018: randomise weights from the top layer down and compare the map (``method``, default
    Grad-CAM) with the trained model's.

    Works on a private deep copy (the given, possibly shared, model is never changed). For each cumulative
    step ("trained", then fc, last stage, ..., stem) returns one row: step, randomised modules, the mean
    Spearman rank correlation with the trained maps over the images (and its min/max), and, for the first
    ``keep_maps`` images, their normalised maps (column "maps", a list of (H, W) arrays).
    A map that still looks the same after randomisation would explain the architecture, not the model.
    """
    layer_name, _ = resolve_layer(model, layer)
    with model_lock(model):
        private = copy.deepcopy(model)
    private.eval()
    maps = cam_batch(private, images, labels, layer_name, method)
    trained = maps
    rows: list[dict[str, Any]] = []

    def record(step: str, randomised: list[str], current: torch.Tensor) -> None:
        corr = [_spearman(trained[i], current[i]) for i in range(current.shape[0])]
        kept = [_normalise(current[i:i + 1])[0][0].numpy() for i in range(min(keep_maps, current.shape[0]))]
        rows.append({"step": step, "randomised": ", ".join(randomised) or "nothing",
                     "rank_correlation": float(np.mean(corr)), "min": float(np.min(corr)),
                     "max": float(np.max(corr)), "maps": kept})

    record("trained", [], maps)
    done: list[str] = []
    modules = dict(private.named_modules())
    for offset, (step, names) in enumerate(cascade_steps(private)):
        for name in names:
            _randomise_(modules[name], seed + 1000 * (offset + 1))
        done += names
        record(step, list(done), cam_batch(private, images, labels, layer_name, method))
    return pd.DataFrame(rows)


def method_checks(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor,
                  methods: list[str] | tuple[str, ...] | None = None, layer: str | None = None,
                  cascade_images: int = 8, seed: int = 0,
                  progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """The pointing game and the randomisation cascade for every method (default: all registered), one row each.

    Columns: method, label, pointing (hit rate), chance, pointing_vs_chance, then the mean rank correlation with
    the trained map once the head and the last stage are randomised (``cascade_top``) and once everything is
    (``cascade_all``). A trustworthy method scores well above chance and falls towards 0 in the cascade.
    ``progress(done, total)`` after each method.
    """
    chosen = list(methods or METHODS)
    unknown = [m for m in chosen if m not in REGISTRY]
    if unknown:
        raise CamError(f"Unknown method '{unknown[0]}'; choose one of {', '.join(METHODS)}.")
    layer_name, _ = resolve_layer(model, layer)
    rows = []
    for index, method in enumerate(chosen):
        pointing = pointing_game(model, images, labels, masks, layer_name, method=method)
        cascade = randomization_cascade(model, images[:cascade_images], labels[:cascade_images], layer_name,
                                        seed=seed, method=method)
        rows.append({"method": method, "label": METHODS[method], "pointing": pointing.hit_rate,
                     "chance": pointing.chance, "pointing_vs_chance": pointing.hit_rate - pointing.chance,
                     "cascade_top": float(cascade.iloc[2]["rank_correlation"]),
                     "cascade_all": float(cascade.iloc[-1]["rank_correlation"])})
        if progress is not None:
            progress(index + 1, len(chosen))
    return pd.DataFrame(rows)


def shapes_examples(model: nn.Module, images: torch.Tensor, raw_images: torch.Tensor, labels: torch.Tensor,
                    layer: str | None = None, colormap: str = "Jet", opacity: float = 0.5,
                    count: int = 6) -> list[np.ndarray]:
    """Overlays for the first ``count`` images (``raw_images`` unnormalised (N, 3, H, W) in [0, 1])."""
    maps = gradcam_batch(model, images[:count], labels[:count], layer)
    heat, _ = _normalise(maps)
    out = []
    for i in range(heat.shape[0]):
        pixels = (raw_images[i].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        out.append(overlay(pixels, heat[i].numpy(), colormap, opacity))
    return out


def direct_gradcam(model: nn.Module, image: torch.Tensor, class_index: int, layer: str) -> torch.Tensor:
    """Grad-CAM written out by hand, for checking Captum: ReLU(sum_c mean_hw(dy/dA_c) * A_c), (h, w).

    Uses a forward hook that keeps the layer output and ``torch.autograd.grad`` (no parameter .grad);
    the hook is registered under the model's lock and removed in ``finally`` before the lock is released.
    """
    _, module = resolve_layer(model, layer)
    require_within_budget(GradCam.cost(model, image_size=tuple(image.shape[1:])))
    with taps(model, train=False) as tapped:  # hooks go on under the model's lock, and come off inside it
        kept = tapped.record(module, detach=False)  # differentiated with respect to: kept in the graph
        logits = model(image.detach())
        output = next(iter(kept.values()))
        (grads,) = torch.autograd.grad(logits[0, class_index], output)
    activations = output.detach()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    return F.relu((weights * activations).sum(dim=1))[0]



# ---------------------------------------------------------------------------- the check, end to end on Shapes
# One sample for every view of the check (the Grad-CAM page, the lesson's step 8, the notebook, the README): the
# first SHAPES_CHECK_IMAGES held-out Shapes images for the pointing game, the first SHAPES_CASCADE_IMAGES of them
# for the cascade. The same model then gives the same numbers wherever they are shown.
SHAPES_CHECK_IMAGES = 200
SHAPES_CASCADE_IMAGES = 32


@dataclass
class LocalisationReport:
    """The page's "is the map right?" section: pointing game, randomisation cascade, example overlays."""

    pointing: PointingResult
    cascade: pd.DataFrame
    examples: list[np.ndarray]
    example_labels: list[str]
    cascade_images: int

    def sample_text(self) -> str:
        """Names the sample every view of the check quotes with its numbers."""
        return (f"the first {len(self.pointing.table)} held-out Shapes images (the cascade: the first "
                f"{self.cascade_images})")

    def cascade_sentence(self) -> str:
        """The cascade's number the page quotes: the rank correlation once the head and the last stage are
        randomised (its third row), as measured."""
        row = self.cascade.iloc[2]
        return (f"Measured here: rank correlation {row['rank_correlation']:.2f} once fc and {row['step']} are "
                "randomised (1.00 = unchanged).")


def shapes_check_images(model: nn.Module, n: int = SHAPES_CHECK_IMAGES) -> tuple[torch.Tensor, Any]:
    """The check's sample for ``model``: the first ``n`` held-out Shapes images at the model's size, normalised as
    its ``preprocessing`` says (a Shapes checkpoint carries both), and the split itself (labels, masks, raw)."""
    from ..data import SHAPES_CLASSES, shapes_split
    from ..weights import class_names_for, preprocessing_for

    if tuple(class_names_for(model)) != tuple(SHAPES_CLASSES):
        raise CamError("The localisation check needs a model trained on the Shapes set (its classes are "
                       f"{', '.join(SHAPES_CLASSES)}); use the embedded demo ResNet-20 or train one on the Training "
                       "page.")
    prep = preprocessing_for(model)
    test = shapes_split("test", n, image_size=prep.crop)
    mean = torch.tensor(prep.mean).view(1, -1, 1, 1)
    std = torch.tensor(prep.std).view(1, -1, 1, 1)
    return (test.images - mean) / std, test


def shapes_pointing(model: nn.Module, n: int = SHAPES_CHECK_IMAGES, layer: str | None = None) -> PointingResult:
    """The pointing game of a Shapes model on the check's sample: the one call behind every view of the number."""
    x, test = shapes_check_images(model, n)
    return pointing_game(model, x, test.labels, test.masks, layer)


def method_checks_on_sample(model: nn.Module, images: int, cascade_images: int,
                            progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """:func:`method_checks` on the first ``images`` of the localisation check's sample (every method is slower
    than Grad-CAM, so the page checks fewer images), the cascade on the first ``cascade_images``."""
    x, test = shapes_check_images(model)
    return method_checks(model, x[:images], test.labels[:images], test.masks[:images],
                         cascade_images=cascade_images, progress=progress)


def localisation_check(model: nn.Module, n: int = SHAPES_CHECK_IMAGES, layer: str | None = None,
                       cascade_images: int = SHAPES_CASCADE_IMAGES,
                       examples: int = 6, colormap: str = "Jet", opacity: float = 0.5) -> LocalisationReport:
    """Pointing game on ``n`` held-out Shapes images (:func:`shapes_pointing`) and the randomisation cascade on the
    first ``cascade_images`` of them, for a Shapes-trained model."""
    from ..weights import class_names_for

    names = class_names_for(model)
    x, test = shapes_check_images(model, n)
    pointing = pointing_game(model, x, test.labels, test.masks, layer)
    cascade = randomization_cascade(model, x[:cascade_images], test.labels[:cascade_images], layer,
                                    keep_maps=min(examples, cascade_images))
    overlays = shapes_examples(model, x, test.images, test.labels, layer, colormap, opacity, examples)
    labels = []
    for i in range(len(overlays)):
        row = pointing.table.iloc[i]
        labels.append(f"{names[int(row['label'])]}: {'hit' if row['hit'] else 'miss'}")
    return LocalisationReport(pointing, cascade, overlays, labels, min(cascade_images, n))


def localisation_numbers(model: nn.Module) -> dict[str, Any]:
    """``model``'s localisation check as numbers, rounded to 4 places: the pointing game on the check's sample
    (hit rate, chance, accuracy, layer, tolerance) and the cascade's mean rank correlation after each step. For the
    demo ResNet-20, ``make demo-models`` writes them to ``demo_models/checks.json``, which the README quotes and a
    test measures again."""
    report = localisation_check(model, examples=1)
    pointing = report.pointing
    return {"images": len(pointing.table), "layer": pointing.layer, "tolerance_px": pointing.tolerance,
            "hit_rate": round(pointing.hit_rate, 4), "chance": round(pointing.chance, 4),
            "accuracy": round(pointing.accuracy, 4),
            "cascade_images": min(SHAPES_CASCADE_IMAGES, len(pointing.table)),
            "cascade": {str(row.step): round(float(row.rank_correlation), 4) for row in report.cascade.itertuples()}}
