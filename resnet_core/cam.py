"""Grad-CAM and friends through Captum, overlays, and the checks that the maps are right.

``explain(model, image, target, layer, method)`` is the one call shape for every method:

``"gradcam"``
    Captum's ``LayerGradCam`` at any named layer (block, stage or tap point): channel weights are the
    spatially mean-pooled gradients of the target at that layer, the map is ReLU(sum of weight x
    activation), bilinearly upsampled to the input (Selvaraju et al. 2017);
``"guided_gradcam"``
    Captum's ``GuidedGradCam``: guided backpropagation times the upsampled Grad-CAM map (pixel-sharp);
``"integrated_gradients"``
    Captum's ``IntegratedGradients`` on the input pixels from a black-mean baseline (Sundararajan et al.
    2017); ``layer`` is ignored.

Instrument rules (../shared/DESIGN.md): every call holds the model's lock through ``preserved_state``
(train/eval flags, ``requires_grad`` and parameter ``.grad`` restored), Captum differentiates with
``torch.autograd.grad`` (parameter gradients untouched) and removes its hooks in ``finally``. Checks that
change weights (the randomisation cascade) work on a private deep copy, never on the shared model.

Localisation is proven two ways: the pointing game on held-out Shapes images with object masks, against
the chance of hitting the mask at random, and the model-randomisation cascade of Adebayo et al. (2018).
"""

from __future__ import annotations

import copy
import io
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .blocks import TAP_NAMES
from .describe import estimate_memory, require_within_budget, scale_to_budget
from .hooks import model_lock, preserved_state, taps
from .models import iter_blocks
from .targets import Target, as_target

METHODS: dict[str, str] = {
    "gradcam": "Grad-CAM",
    "guided_gradcam": "Guided Grad-CAM",
    "integrated_gradients": "Integrated gradients (input)",
}
LAYER_METHODS = ("gradcam", "guided_gradcam")
COLORMAPS = ("Jet", "Turbo", "Viridis", "Inferno", "Hot")
NO_EVIDENCE = ("No positive evidence: the map is zero everywhere, so no region of the image raises this class's "
               "score at this layer; try another class or layer.")


class CamError(ValueError):
    """A user-facing problem with an explanation request; ``str(error)`` is one sentence."""


@dataclass
class Explanation:
    """One saliency map for one image.

    ``heatmap``: float32 (H, W) in [0, 1], the map normalised by its maximum (all zeros when there is no
    positive evidence, never NaN). ``raw``: float32 (H, W), the same map before normalisation, at input
    resolution. ``layer_map``: Grad-CAM at the layer's own resolution (h, w), before upsampling (None for
    input-space methods).
    """

    heatmap: np.ndarray
    raw: np.ndarray
    method: str
    layer: str | None
    class_index: int
    score: float
    layer_map: np.ndarray | None = None
    no_positive_evidence: bool = False
    class_name: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def message(self) -> str | None:
        return NO_EVIDENCE if self.no_positive_evidence else None

    @property
    def peak(self) -> tuple[int, int]:
        """(row, column) of the map's maximum (the pointing-game guess)."""
        row, col = np.unravel_index(int(np.argmax(self.raw)), self.raw.shape)
        return int(row), int(col)


# -------------------------------------------------------------------------------------------------- layers
def layer_choices(model: nn.Module) -> list[str]:
    """Every layer Grad-CAM can address: stem, each stage, each block and each of its tap points."""
    names = dict(model.named_modules())
    choices = [n for n in ("conv1", "bn1", "relu", "maxpool") if n in names and not isinstance(names[n], nn.Identity)]
    blocks = iter_blocks(model)
    stages: list[str] = []
    for block_name, block in blocks:
        stage = block_name.split(".")[0]
        if stage not in stages:
            stages.append(stage)
            choices.append(stage)
        choices.append(block_name)
        choices += [f"{block_name}.{tap}" for tap in TAP_NAMES if hasattr(block, tap)]
    return choices


def stage_last_blocks(model: nn.Module) -> list[str]:
    """The last block of each stage, e.g. ["layer1.1", "layer2.1", "layer3.1", "layer4.1"]."""
    last: dict[str, str] = {}
    for block_name, _ in iter_blocks(model):
        last[block_name.split(".")[0]] = block_name
    return list(last.values())


def default_layer(model: nn.Module) -> str:
    """The classic Grad-CAM layer: the output of the last block (the last convolutional features)."""
    blocks = stage_last_blocks(model)
    if not blocks:
        raise CamError("This model has no residual blocks to explain.")
    return blocks[-1]


def resolve_layer(model: nn.Module, layer: str | None) -> tuple[str, nn.Module]:
    name = layer or default_layer(model)
    modules = dict(model.named_modules())
    if name not in modules or name == "":
        raise CamError(f"This model has no layer named '{name}'; choose one of the listed layers "
                       f"(e.g. {default_layer(model)}).")
    return name, modules[name]


# ---------------------------------------------------------------------------------------------- prediction
def predict(model: nn.Module, image: torch.Tensor, class_names: Sequence[str] | None = None,
            k: int = 5) -> pd.DataFrame:
    """Top-``k`` classes for one image (1, 3, H, W): rank, index, class, probability, logit."""
    _check_image(image)
    with preserved_state(model, train=False), torch.no_grad():
        logits = model(image)[0].float()
    probs = logits.softmax(0)
    top = probs.topk(min(k, probs.numel()))
    names = list(class_names) if class_names is not None else [f"class {i}" for i in range(probs.numel())]
    return pd.DataFrame({
        "rank": range(1, top.indices.numel() + 1),
        "index": top.indices.tolist(),
        "class": [names[i] for i in top.indices.tolist()],
        "probability": top.values.tolist(),
        "logit": logits[top.indices].tolist(),
    })


def _check_image(image: torch.Tensor) -> None:
    if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[1] < 1:
        raise CamError("The image must be a (N, C, H, W) tensor; preprocess it with resnet_core.images.preprocess.")
    if not torch.isfinite(image).all():
        raise CamError("The image tensor contains NaN or infinite values; reload the image.")


class _TargetModel(nn.Module):
    """``model`` followed by the target: (N, C, H, W) -> (N,) scalars (what Captum differentiates)."""

    def __init__(self, model: nn.Module, target: Target) -> None:
        super().__init__()
        self.model, self.target = model, target
        self.first_logits: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        if self.first_logits is None:  # the plain input's logits: class and score without an extra forward
            self.first_logits = logits.detach()
        return self.target(logits)


def _normalise(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample max normalisation of non-negative (N, H, W) maps. An all-zero map stays zero (no 0/0)."""
    raw = torch.nan_to_num(raw.float(), nan=0.0, posinf=0.0, neginf=0.0)
    peak = raw.flatten(1).amax(dim=1)
    positive = peak > 0
    safe = torch.where(positive, peak, torch.ones_like(peak))
    return raw / safe[:, None, None], ~positive


def _gradcam_raw(wrapped: _TargetModel, images: torch.Tensor, layer: nn.Module
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Captum LayerGradCam for a batch: (layer-resolution maps (N, h, w), upsampled maps (N, H, W)).

    One forward pass and a backward pass that stops at ``layer`` (torch.autograd.grad w.r.t. its output).
    """
    from captum.attr import LayerAttribution, LayerGradCam

    cam = LayerGradCam(wrapped, layer)
    layer_maps = cam.attribute(images, relu_attributions=True)
    if not isinstance(layer_maps, torch.Tensor) or layer_maps.dim() != 4:
        raise CamError("Grad-CAM needs a layer with a spatial (N, C, h, w) output; choose a block or a tap point.")
    upsampled = LayerAttribution.interpolate(layer_maps, tuple(images.shape[-2:]), interpolate_mode="bilinear")
    return layer_maps[:, 0].detach(), upsampled[:, 0].detach()


def explain(model: nn.Module, image: torch.Tensor, target: int | Target | None = None, layer: str | None = None,
            method: str = "gradcam", *, class_names: Sequence[str] | None = None, ig_steps: int = 16
            ) -> Explanation:
    """Explain ``target`` (class index, Target, or None for the top-1 class) for one image (1, 3, H, W).

    ``layer`` is any name from ``layer_choices(model)`` (default: the last block). Returns an Explanation
    whose maps have the image's H x W. The model is used under its lock and left exactly as it was.
    """
    if method not in METHODS:
        raise CamError(f"Unknown method '{method}'; choose one of {', '.join(METHODS)}.")
    _check_image(image)
    if image.shape[0] != 1:
        raise CamError("explain() takes one image (1, C, H, W); use pointing_game for batches.")
    goal = as_target(target)
    layer_name, module = resolve_layer(model, layer) if method in LAYER_METHODS else (None, None)
    # Costed before anything runs: over budget, integrated gradients takes fewer steps at a time (and says so),
    # the others raise BudgetError.
    cost = estimate_memory(model, method, image_size=tuple(image.shape[1:]), ig_steps=ig_steps)
    cost = scale_to_budget(cost, "ig_chunk") if method == "integrated_gradients" else require_within_budget(cost)
    image = image.detach().clone()
    wrapped = _TargetModel(model, goal)
    layer_map = None
    with preserved_state(model, train=False):
        try:
            if method == "gradcam":
                layer_maps, raw = _gradcam_raw(wrapped, image, module)
                layer_map = layer_maps[0].cpu().numpy().astype(np.float32)
            elif method == "guided_gradcam":
                from captum.attr import GuidedGradCam

                with warnings.catch_warnings():
                    # Captum announces that it hooks the ReLUs (and removes the hooks): expected, not news.
                    warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
                    attr = GuidedGradCam(wrapped, module).attribute(image.requires_grad_(True),
                                                                    interpolate_mode="bilinear")
                # A pixel-resolution map: the magnitude of the guided, CAM-weighted gradient over channels.
                raw = attr.detach().abs().sum(dim=1)
            else:
                from captum.attr import IntegratedGradients

                with torch.no_grad():
                    wrapped(image)  # IG only sees scaled inputs: record the plain input's logits first
                attr = IntegratedGradients(wrapped).attribute(
                    image.requires_grad_(True), baselines=torch.zeros_like(image), n_steps=ig_steps,
                    internal_batch_size=cost.request["ig_chunk"])
                # Positive evidence only, summed over channels: the pixels that raise the target's score.
                raw = attr.detach().sum(dim=1).clamp(min=0)
        except CamError:
            raise
        except ValueError as exc:  # e.g. a class index outside the model's classes, raised by the target
            raise CamError(str(exc)) from None
    logits = wrapped.first_logits
    index = int(goal.class_indices(logits)[0]) if hasattr(goal, "class_indices") else -1
    score = float(goal(logits)[0])
    heat, empty = _normalise(raw)
    names = list(class_names) if class_names is not None else None
    return Explanation(
        heatmap=heat[0].cpu().numpy().astype(np.float32), raw=raw[0].float().cpu().numpy(), method=method,
        layer=layer_name, class_index=index, score=score, layer_map=layer_map,
        no_positive_evidence=bool(empty[0]),
        class_name=names[index] if names is not None and 0 <= index < len(names) else "",
        notes=[cost.note] if cost.note else [],
    )


def explain_layers(model: nn.Module, image: torch.Tensor, target: int | Target | None = None,
                   layers: Sequence[str] | None = None, method: str = "gradcam",
                   class_names: Sequence[str] | None = None) -> list[Explanation]:
    """The same explanation at several layers (default: the last block of each stage), shallow to deep."""
    return [explain(model, image, target, name, method, class_names=class_names)
            for name in (layers or stage_last_blocks(model))]


# ------------------------------------------------------------------------------------------ overlays, files
@lru_cache(maxsize=16)
def colormap_lut(name: str = "Jet") -> np.ndarray:
    """A (256, 3) uint8 lookup table sampled from Plotly's colorscale ``name`` (Jet, Turbo, Viridis...)."""
    from plotly.colors import sample_colorscale

    if name not in COLORMAPS:
        raise CamError(f"Unknown colormap '{name}'; choose one of {', '.join(COLORMAPS)}.")
    colors = sample_colorscale(name, list(np.linspace(0.0, 1.0, 256)), colortype="tuple")
    lut = np.array([[float(c) for c in color] for color in colors])
    if lut.max() <= 1.0:
        lut = lut * 255
    return lut.round().clip(0, 255).astype(np.uint8)


def colorize(heatmap: np.ndarray, colormap: str = "Jet") -> np.ndarray:
    """(H, W) map in [0, 1] -> (H, W, 3) uint8 colours."""
    index = (np.nan_to_num(np.clip(heatmap, 0.0, 1.0)) * 255).round().astype(np.intp)
    return colormap_lut(colormap)[index]


def overlay(image: Image.Image | np.ndarray, heatmap: np.ndarray, colormap: str = "Jet",
            opacity: float = 0.5) -> np.ndarray:
    """Blend the coloured map over the image: (H, W, 3) uint8 = (1 - opacity) * image + opacity * colour.

    The image must be the model's view (``images.model_view``) so map and pixels align; opacity in [0, 1].
    """
    if not 0.0 <= opacity <= 1.0:
        raise CamError(f"Opacity must be between 0 and 1, got {opacity}.")
    base = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.float32)
    if base.shape[:2] != heatmap.shape:
        raise CamError(f"The map is {heatmap.shape[1]}x{heatmap.shape[0]} but the image is "
                       f"{base.shape[1]}x{base.shape[0]}; overlay the map on the model's view of the image.")
    if base.max(initial=0) <= 1.0 and base.dtype != np.uint8:
        base = base * 255
    blended = (1.0 - opacity) * base + opacity * colorize(heatmap, colormap).astype(np.float32)
    return blended.round().clip(0, 255).astype(np.uint8)


def heatmap_png(explanation: Explanation) -> bytes:
    """The normalised map as a 16-bit greyscale PNG (0..65535 = 0..1), at input resolution."""
    array = (np.clip(explanation.heatmap, 0, 1) * 65535).round().astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def heatmap_npy(explanation: Explanation) -> bytes:
    """The raw (unnormalised) float32 map (H, W) as a .npy file (``np.load`` reads it back)."""
    buffer = io.BytesIO()
    np.save(buffer, explanation.raw.astype(np.float32), allow_pickle=False)
    return buffer.getvalue()


def image_png(array: np.ndarray) -> bytes:
    """(H, W, 3) uint8 -> PNG bytes (overlay download)."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


# --------------------------------------------------------------------------------------- proving it right
def gradcam_batch(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, layer: str | None = None,
                  batch_size: int = 64) -> torch.Tensor:
    """Grad-CAM maps (N, H, W), unnormalised, for a batch of normalised images and their class labels."""
    _check_image(images)
    _, module = resolve_layer(model, layer)
    from .targets import ClassTarget

    # Over the memory budget, fewer images at a time (the maps are the same).
    batch_size = scale_to_budget(estimate_memory(model, "gradcam", batch=max(1, min(batch_size, images.shape[0])),
                                                 image_size=tuple(images.shape[1:])), "batch").request["batch"]

    maps = []
    with preserved_state(model, train=False):
        for start in range(0, images.shape[0], batch_size):
            chunk = images[start:start + batch_size].detach()
            chunk_labels = labels[start:start + batch_size]
            target = _LabelTarget(chunk_labels) if chunk_labels.numel() > 1 else ClassTarget(int(chunk_labels[0]))
            maps.append(_gradcam_raw(_TargetModel(model, target), chunk, module)[1])
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
                  layer: str | None = None, tolerance: int | None = None) -> PointingResult:
    """Does the Grad-CAM peak for the true class fall on the object? (the pointing game, Grad-CAM paper 6.1)

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
    maps = gradcam_batch(model, images, labels, layer_name)
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
                          seed: int = 0, keep_maps: int = 0) -> pd.DataFrame:
    """Adebayo et al. 2018: randomise weights from the top layer down and compare Grad-CAM with the trained map.

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
    maps = gradcam_batch(private, images, labels, layer_name)
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
        record(step, list(done), gradcam_batch(private, images, labels, layer_name))
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
    require_within_budget(estimate_memory(model, "gradcam", image_size=tuple(image.shape[1:])))
    with taps(model, train=False) as tapped:  # hooks go on under the model's lock, and come off inside it
        kept = tapped.record(module, detach=False)  # differentiated with respect to: kept in the graph
        logits = model(image.detach())
        output = next(iter(kept.values()))
        (grads,) = torch.autograd.grad(logits[0, class_index], output)
    activations = output.detach()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    return F.relu((weights * activations).sum(dim=1))[0]



# ---------------------------------------------------------------------------- the check, end to end on Shapes
SHAPES_CHECK = {"steps": 600, "image_size": 32, "width": 8, "batch_size": 64, "lr": 0.1, "seed": 0}


def train_shapes_model(steps: int = 600, image_size: int = 32, width: int = 8, batch_size: int = 64,
                       lr: float = 0.1, seed: int = 0, device: str = "cpu", n_train: int = 4000) -> nn.Module:
    """A small ResNet-20 trained on the built-in Shapes set by the training engine (seeded), in eval mode.

    Defaults (:data:`SHAPES_CHECK`): 600 steps, about a minute on one CPU core; measured while building it,
    90% held-out accuracy and a 96% pointing game (tests assert >= 60% and >= 85%). The returned model
    carries ``class_names``, ``preprocessing`` and ``arch_label`` like any loaded checkpoint.
    """
    from .train import Race, RaceConfig, RacerSpec
    from .weights import extract_state_dict, model_from_checkpoint

    config = RaceConfig(racers=(RacerSpec("resnet20"),), dataset="shapes", image_size=image_size, steps=steps,
                        batch_size=batch_size, lr=lr, width=width, warmup_steps=min(30, steps // 4),
                        schedule="cosine", eval_every=10**9, n_train=n_train, n_test=64, seed=seed, device=device,
                        name="Grad-CAM localisation check")
    race = Race(config).train()
    # Round-trip through the checkpoint format: the check then sees exactly what a user's checkpoint gives.
    return model_from_checkpoint(extract_state_dict(race.checkpoint(race.racers[0]), "trained Shapes model"))


@dataclass
class LocalisationReport:
    """The page's "is the map right?" section: pointing game, randomisation cascade, example overlays."""

    pointing: PointingResult
    cascade: pd.DataFrame
    examples: list[np.ndarray]
    example_labels: list[str]


def localisation_check(model: nn.Module, n: int = 200, layer: str | None = None, cascade_images: int = 16,
                       examples: int = 6, colormap: str = "Jet", opacity: float = 0.5) -> LocalisationReport:
    """Pointing game on ``n`` held-out Shapes images and the randomisation cascade, for a Shapes-trained model.

    The model's ``preprocessing`` gives the image size and normalisation (a Shapes checkpoint carries both).
    """
    from .data import SHAPES_CLASSES, shapes_split
    from .weights import class_names_for, preprocessing_for

    names = class_names_for(model)
    if tuple(names) != tuple(SHAPES_CLASSES):
        raise CamError("The localisation check needs a model trained on the Shapes set (its classes are "
                       f"{', '.join(SHAPES_CLASSES)}); train one on the Training race page or run the check's own.")
    prep = preprocessing_for(model)
    test = shapes_split("test", n, image_size=prep.crop)
    mean = torch.tensor(prep.mean).view(1, -1, 1, 1)
    std = torch.tensor(prep.std).view(1, -1, 1, 1)
    x = (test.images - mean) / std
    pointing = pointing_game(model, x, test.labels, test.masks, layer)
    cascade = randomization_cascade(model, x[:cascade_images], test.labels[:cascade_images], layer,
                                    keep_maps=min(examples, cascade_images))
    overlays = shapes_examples(model, x, test.images, test.labels, layer, colormap, opacity, examples)
    labels = []
    for i in range(len(overlays)):
        row = pointing.table.iloc[i]
        labels.append(f"{names[int(row['label'])]}: {'hit' if row['hit'] else 'miss'}")
    return LocalisationReport(pointing, cascade, overlays, labels)
