"""Which explanation to trust, in Quantus's six categories of evidence, measured on the user's own image.

``trust_scores(model, image, methods)`` explains the image with each method, then re-explains it as each metric
needs (noisy copies, randomised weights, another class, a shifted input) and returns one row per method and
metric: ``method``, ``category``, ``metric``, ``value``, ``better`` ("higher" or "lower"). The metrics follow
Quantus 0.6 (Hedström et al. 2023), which the tests check them against on the same inputs:

faithfulness
    deletion and insertion AUC and average drop (``faithfulness``; Petsiuk et al. 2018, Chattopadhyay et al. 2018).
robustness
    max-sensitivity and average sensitivity (Yeh et al. 2019): the Frobenius norm of the change of the
    max-normalised map under uniform noise in [-``noise``, ``noise``] on every input value, over the map's norm;
    the maximum and the mean over ``samples`` noisy copies, each explained for the same class.
localisation (only where object masks exist, e.g. Shapes; on a photo the rows are empty and the table says why)
    relevance mass in the mask (Arras et al. 2022) and the pointing game on this one image (Zhang et al. 2018):
    1 when the map's maximum lies in the mask, else 0: one image's hit, not a rate.
complexity
    sparseness, the Gini index of the map (Chalasani et al. 2020), and complexity, the entropy of its
    normalised values (Bhatt et al. 2020).
randomisation
    model-parameter randomisation (Adebayo et al. 2018): the mean Spearman correlation of the map with the
    trained model's over the top-down cascade (``randomization_cascade``, on a private copy); random logit
    (Sixt et al. 2020): SSIM between the map for the class and for a random other class (2-D windows; Quantus
    compares the maps flattened to 1-D).
axiomatic
    completeness (Sundararajan et al. 2017) for the gradient-times-input family: the gap between the signed
    attributions' sum and what they must add up to (integrated gradients: f(x) - f(baseline); LRP: f(x)), over
    the latter; the other methods do not claim it (no value). Input invariance (Kindermans et al. 2019): the
    relative change of the map when the input is shifted by a constant and the first layer takes the shift
    back, so that the model computes exactly what it did.

Lower-is-better values are marked so; the page colours each metric on its own scale.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..costs import MemoryEstimate, net_cost, require_within_budget
from ..hooks import model_lock, preserved_state
from ..models import InputSize
from ..targets import ClassTarget
from .checks import cam_batch, cascade_steps, randomization_cascade
from .core import CamError, _check_image, resolve_layer
from .explaining import explain, layer_channels
from .faithfulness import faithfulness
from .methods import METHODS, REGISTRY

Progress = Callable[[int, int], None]
TRUST_CATEGORIES = ("faithfulness", "robustness", "localisation", "complexity", "randomisation", "axiomatic")
TRUST_COLUMNS = ["method", "category", "metric", "value", "better"]
# (category, metric, better): the rows every method gets, in order
TRUST_METRICS: tuple[tuple[str, str, str], ...] = (
    ("faithfulness", "deletion AUC", "lower"),
    ("faithfulness", "insertion AUC", "higher"),
    ("faithfulness", "average drop (%)", "lower"),
    ("robustness", "max-sensitivity", "lower"),
    ("robustness", "average sensitivity", "lower"),
    ("localisation", "relevance mass in the mask", "higher"),
    ("localisation", "pointing hit (this image)", "higher"),
    ("complexity", "sparseness (Gini)", "higher"),
    ("complexity", "complexity (entropy)", "lower"),
    ("randomisation", "model-parameter randomisation (Spearman)", "lower"),
    ("randomisation", "random logit (SSIM)", "lower"),
    ("axiomatic", "completeness gap", "lower"),
    ("axiomatic", "input invariance (relative change)", "lower"),
)
INPUT_SHIFT = -1.0  # Quantus's default shift for input invariance
NOISE = 0.2  # Quantus's default bound for the sensitivity metrics' uniform noise
NO_MASKS = ("Localisation needs object masks: this image has none, so its rows are empty (the Shapes check has "
            "masks).")
SIGNED_FAMILY = {"integrated_gradients": "f(x) - f(black)", "lrp": "f(x)"}  # completeness: the sum's target


# ------------------------------------------------------------------------------------------ the metrics
def sensitivities(map_: np.ndarray, perturbed: Sequence[np.ndarray]) -> np.ndarray:
    """||a - a_k||_F / ||a||_F for each perturbed map a_k (maps max-normalised by the caller)."""
    norm = float(np.linalg.norm(map_.ravel()))
    if norm == 0:
        return np.full(len(perturbed), np.nan)
    return np.array([float(np.linalg.norm((map_ - p).ravel())) / norm for p in perturbed])


def sparseness(map_: np.ndarray) -> float:
    """The Gini index of the map's values (1: all relevance on one pixel; 0: spread evenly), as Quantus."""
    a = np.sort(np.abs(map_).ravel().astype(np.float64) + 1e-7)
    n = a.size
    return float(((2 * np.arange(1, n + 1) - n - 1) * a).sum() / (n * a.sum()))


def complexity(map_: np.ndarray) -> float:
    """The entropy of the map's normalised absolute values (natural log), as Quantus."""
    a = np.abs(map_).ravel().astype(np.float64)
    total = a.sum()
    if total == 0:
        return float("nan")
    a = a / total
    return float(-(a * np.log(a + 1e-12)).sum())


def relevance_mass(map_: np.ndarray, mask: np.ndarray) -> float:
    """The share of the map's relevance inside the mask (NaN for an empty mask)."""
    mask = mask.astype(bool)
    if not mask.any():
        return float("nan")
    total = float(map_.sum())
    return float(map_[mask].sum()) / total if total != 0 else float("nan")


def pointing_hit(map_: np.ndarray, mask: np.ndarray) -> float:
    """1.0 when a maximum of the map lies in the mask (any of them, as Quantus), else 0.0; NaN for an empty mask."""
    mask = mask.astype(bool)
    if not mask.any():
        return float("nan")
    return float(np.any(mask & (map_ == map_.max())))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity of two maps on 2-D 7x7 windows, the data range spanning both (as Quantus's ``ssim``)."""
    from skimage.metrics import structural_similarity

    both = np.concatenate([a.ravel(), b.ravel()])
    span = float(abs(both.max() - both.min()))
    if span == 0:
        return 1.0
    return float(structural_similarity(a.astype(np.float64), b.astype(np.float64), data_range=span))


def invariance_change(map_: np.ndarray, moved: np.ndarray, rounding: float = 1e-4) -> float:
    """||a - a_shifted||_F / ||a||_F; below ``rounding`` it is float rounding (the same activations computed in
    another order), reported as 0 so that it cannot rank one invariant method above another."""
    norm = float(np.linalg.norm(map_.ravel()))
    if norm == 0:
        return float("nan")
    change = float(np.linalg.norm((map_ - moved).ravel())) / norm
    return 0.0 if change < rounding else change


def _max_normalised(maps: torch.Tensor) -> np.ndarray:
    """(N, H, W) raw maps -> per-map division by the largest absolute value (all-zero maps stay zero)."""
    peak = maps.flatten(1).abs().amax(dim=1).clamp(min=1e-12)
    return (maps / peak[:, None, None]).float().cpu().numpy()


# ------------------------------------------------------------------------------------------ cost and plan
def trust_explanations(model: nn.Module, samples: int) -> int:
    """Explanations per method: the map, ``samples`` noisy copies, one per cascade step, another class, the
    shifted input, and (gradient-times-input family) the signed attribution."""
    return 1 + samples + len(cascade_steps(model)) + 1 + 1


def estimate_trust(model: nn.Module | str, *, batch: int = 1, image_size: InputSize | None = None,
                   options: dict[str, Any] | None = None, builds: bool | None = None,
                   methods: Sequence[str] = ("gradcam",), samples: int = 10) -> MemoryEstimate:
    """The memory ``trust_scores`` needs: the costliest method's explanation of ``samples`` noisy copies at once,
    two private copies of the weights (the randomisation cascade, the shifted input) and the faithfulness
    batches (each step scales its own batch to the budget, so the costliest is what is held at once)."""
    net = net_cost(model, batch=batch, image_size=image_size, options=options, builds=builds,
                   methods=tuple(methods), samples=samples)
    runners = [REGISTRY[m] for m in methods if m in REGISTRY]
    explaining = max((r.cost(model, batch=1 if r.own_batching else max(1, samples), image_size=image_size,
                             options=options, builds=False).total for r in runners), default=0)
    parts = {**net.inputs(), "the costliest explanation": explaining,
             "private copies of the weights": 2 * net.model_bytes}
    return net.estimate("trust", f"Trust scores for {len(runners)} methods on {net.net} at {net.px} px", parts,
                        estimate_trust)


def trust_plan(model: nn.Module, image: torch.Tensor, methods: Sequence[str], layer: str | None = None,
               samples: int = 10, steps: int = 10) -> pd.DataFrame:
    """Before anything heavy runs: per method, its explanations, their forward passes and the seconds they should
    take here (one forward pass of this model on this image is timed and multiplied); a last row for the
    faithfulness scores. Columns: method, label, explanations, forward_passes, seconds."""
    _check_image(image)
    chosen = _check_methods(methods)
    channels = layer_channels(model, layer, tuple(image.shape[1:]))
    height, width = image.shape[-2:]
    with preserved_state(model, train=False), torch.no_grad():
        model(image)  # warm: the first pass pays one-off costs
        start = time.perf_counter()
        model(image)
        per_forward = time.perf_counter() - start
    count = trust_explanations(model, samples)
    rows = []
    for method in chosen:
        passes = REGISTRY[method].forward_passes(channels=channels, height=height, width=width) * count
        rows.append({"method": method, "label": METHODS[method], "explanations": count, "forward_passes": passes,
                     "seconds": passes * per_forward})
    faith = 1 + len(chosen) * (2 * (steps + 1) + 1)
    rows.append({"method": "", "label": "faithfulness scores", "explanations": 0, "forward_passes": faith,
                 "seconds": faith * per_forward / 2})  # batched: about half a pass each
    return pd.DataFrame(rows)


def trust_plan_sentence(plan: pd.DataFrame, slow: float = 10.0) -> str:
    """What the trust scores will cost, said before they run: the total, and each method slower than ``slow``
    seconds by name."""
    total = float(plan["seconds"].sum())
    said = f"Trust scores take about {total:.0f} s here ({int(plan['forward_passes'].sum())} forward passes)"
    heavy = plan[(plan["method"] != "") & (plan["seconds"] > slow)]
    if not heavy.empty:
        said += "; the slow ones: " + ", ".join(f"{r.label} about {r.seconds:.0f} s ({r.forward_passes} passes)"
                                                 for r in heavy.itertuples())
    return said + "."


def _check_methods(methods: Sequence[str]) -> list[str]:
    chosen = list(dict.fromkeys(methods))
    if not chosen:
        raise CamError("Choose at least one method to score.")
    unknown = [m for m in chosen if m not in REGISTRY]
    if unknown:
        raise CamError(f"Unknown method '{unknown[0]}'; choose one of {', '.join(METHODS)}.")
    return chosen


# ------------------------------------------------------------------------------------------ the scores
def trust_scores(model: nn.Module, image: torch.Tensor, methods: Sequence[str], target: int | None = None,
                 layer: str | None = None, masks: np.ndarray | torch.Tensor | None = None, samples: int = 10, *,
                 noise: float = NOISE, steps: int = 10, seed: int = 0, progress: Progress | None = None
                 ) -> pd.DataFrame:
    """Every metric of the six categories for each method on one image (1, C, H, W); see the module docstring.

    ``target``: the class (default: the top-1 class of the image, fixed for every re-explanation). ``masks``:
    the object's mask (H, W) where one exists. ``samples`` noisy copies for robustness, ``steps`` deletion and
    insertion steps. Costed first (``estimate_trust``); ``progress(done, total)`` after each method's step.
    Returns the rows of ``TRUST_COLUMNS``; ``attrs["notes"]`` holds what the table cannot show (no masks).
    """
    _check_image(image)
    if image.shape[0] != 1:
        raise CamError("trust_scores() scores the maps of one image (1, C, H, W).")
    chosen = _check_methods(methods)
    samples = max(1, int(samples))
    require_within_budget(estimate_trust(model, image_size=tuple(image.shape[1:]), methods=chosen,
                                         samples=samples))
    mask = None if masks is None else np.asarray(masks, dtype=bool).reshape(image.shape[-2:])
    if target is None:
        with preserved_state(model, train=False), torch.no_grad():
            target = int(model(image).argmax(dim=1)[0])
    layer_name = resolve_layer(model, layer)[0]
    total = len(chosen) * 4 + 1
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    image = image.detach()
    maps: dict[str, np.ndarray] = {}
    values: dict[tuple[str, str], float] = {}
    rng = np.random.RandomState(seed)
    noisy = torch.stack([image[0] + torch.from_numpy(rng.uniform(-noise, noise, size=tuple(image.shape[1:])))
                         .to(image) for _ in range(samples)])
    labels = torch.full((samples,), target, dtype=torch.long)
    other = _other_class(model, image, target, seed)
    shifted_model = _shifted_input_model(model, INPUT_SHIFT)
    for method in chosen:
        layer_arg = layer_name if REGISTRY[method].uses_layer else None
        explanation = explain(model, image, target, layer_arg, method)
        heat = explanation.heatmap
        maps[method] = heat
        step()
        perturbed = _max_normalised(cam_batch(model, noisy, labels, layer_arg, method))
        found = sensitivities(heat, list(perturbed))
        values[(method, "max-sensitivity")] = float(np.nanmax(found)) if np.isfinite(found).any() else np.nan
        values[(method, "average sensitivity")] = float(np.nanmean(found)) if np.isfinite(found).any() else np.nan
        step()
        values[(method, "sparseness (Gini)")] = sparseness(heat)
        values[(method, "complexity (entropy)")] = complexity(heat)
        if mask is not None:
            values[(method, "relevance mass in the mask")] = relevance_mass(heat, mask)
            values[(method, "pointing hit (this image)")] = pointing_hit(heat, mask)
        cascade = randomization_cascade(model, image, torch.tensor([target]), layer_name, seed=seed, method=method)
        values[(method, "model-parameter randomisation (Spearman)")] = float(
            cascade.loc[cascade["step"] != "trained", "rank_correlation"].mean())
        values[(method, "random logit (SSIM)")] = ssim(heat, explain(model, image, other, layer_arg, method).heatmap)
        step()
        if method in SIGNED_FAMILY:
            values[(method, "completeness gap")] = completeness_gap(model, image, target, method)
        moved = explain(shifted_model, image + INPUT_SHIFT, target, layer_arg, method).heatmap
        values[(method, "input invariance (relative change)")] = invariance_change(heat, moved)
        step()
    faith = faithfulness(model, image, maps, target, steps=steps).set_index("method")
    for method in chosen:
        values[(method, "deletion AUC")] = float(faith.loc[method, "deletion_auc"])
        values[(method, "insertion AUC")] = float(faith.loc[method, "insertion_auc"])
        values[(method, "average drop (%)")] = float(faith.loc[method, "average_drop"])
    step()
    rows = [{"method": method, "category": category, "metric": metric,
             "value": values.get((method, metric), float("nan")), "better": better}
            for method in chosen for category, metric, better in TRUST_METRICS]
    table = pd.DataFrame(rows, columns=TRUST_COLUMNS)
    notes = [] if mask is not None else [NO_MASKS]
    if not any(m in SIGNED_FAMILY for m in chosen):
        notes.append("Completeness applies to the gradient-times-input family (integrated gradients, LRP); none "
                     "of the chosen methods is one, so its rows are empty.")
    table.attrs["notes"] = notes
    table.attrs["class_index"] = target
    return table


def _other_class(model: nn.Module, image: torch.Tensor, target: int, seed: int) -> int:
    """A random class other than ``target`` (seeded), for the random-logit test."""
    with preserved_state(model, train=False), torch.no_grad():
        classes = int(model(image).shape[1])
    if classes < 2:
        raise CamError("The random-logit test needs a model with at least two classes.")
    choices = [c for c in range(classes) if c != target]
    return int(choices[np.random.RandomState(seed).randint(0, len(choices))])


class _ShiftedBack(nn.Module):
    """A first layer that takes the input's shift back before it computes: layer(x - shift)."""

    def __init__(self, layer: nn.Module, shift: float) -> None:
        super().__init__()
        self.layer, self.shift = layer, shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x - self.shift)


def _shifted_input_model(model: nn.Module, shift: float) -> nn.Module:
    """A private copy of ``model`` whose first convolution takes an input shifted by ``shift`` back, so that
    copy(x + shift) computes exactly model(x) (Kindermans et al.'s mean shift, exact under zero padding)."""
    with model_lock(model):
        private = copy.deepcopy(model)
    name = next((n for n, m in private.named_modules() if isinstance(m, nn.Conv2d)), None)
    if name is None:
        raise CamError("Input invariance needs a model whose first layer is a convolution.")
    parent_name, _, child = name.rpartition(".")
    parent = private.get_submodule(parent_name) if parent_name else private
    setattr(parent, child, _ShiftedBack(getattr(parent, child), shift))
    return private.eval()


def completeness_gap(model: nn.Module, image: torch.Tensor, target: int, method: str, ig_steps: int = 16) -> float:
    """|sum of the signed attributions - what they must add up to| / |the latter| for the gradient-times-input
    family: integrated gradients (f(x) - f(black), the baseline it integrates from) and LRP (f(x))."""
    from .core import TargetModel
    from .relevance import lrp_relevance

    goal = ClassTarget(int(target))
    with preserved_state(model, train=False):
        with torch.no_grad():
            logit = float(model(image)[0, target])
            baseline = float(model(torch.zeros_like(image))[0, target])
        if method == "lrp":
            attributed, expected = float(lrp_relevance(model, image, target).sum()), logit
        elif method == "integrated_gradients":
            from captum.attr import IntegratedGradients

            attr = IntegratedGradients(TargetModel(model, goal)).attribute(
                image.detach().clone().requires_grad_(True), baselines=torch.zeros_like(image), n_steps=ig_steps)
            attributed, expected = float(attr.detach().sum()), logit - baseline
        else:
            raise CamError(f"Completeness applies to the gradient-times-input family, not {METHODS[method]}.")
    return abs(attributed - expected) / abs(expected) if expected != 0 else float("nan")


# ------------------------------------------------------------------------------------------ the verdict
def category_leaders(table: pd.DataFrame) -> dict[str, str]:
    """category -> the method with the best mean rank over that category's metrics (metrics without values
    left out), or "" where several share the best rank; categories with no values at all are left out."""
    leaders: dict[str, str] = {}
    for category in TRUST_CATEGORIES:
        part = table[(table["category"] == category) & table["value"].notna()]
        if part.empty or part["method"].nunique() < 1:
            continue
        ranks = []
        for _, rows in part.groupby("metric", sort=False):
            ascending = rows["better"].iloc[0] == "lower"
            ranks.append(rows.set_index("method")["value"].rank(ascending=ascending, method="average"))
        mean_rank = pd.concat(ranks, axis=1).mean(axis=1)
        best = mean_rank[mean_rank == mean_rank.min()]
        if len(best) == 1 or len(mean_rank) == 1:
            leaders[category] = str(best.index[0])
        else:
            leaders[category] = ""  # a tie at the top: nobody leads
    return leaders


def trust_verdict(table: pd.DataFrame, labels: dict[str, str] | None = None) -> str:
    """One sentence: which method leads in which category, and where the categories disagree."""
    leaders = category_leaders(table)
    if not leaders:
        return "No trust score was measured."
    names = labels or METHODS
    by_method: dict[str, list[str]] = {}
    for category, method in leaders.items():
        if method:
            by_method.setdefault(method, []).append(category)
    tied = [category for category, method in leaders.items() if not method]
    tie = f"; the methods tie in {_and(tied)}" if tied else ""
    parts = [f"{names.get(m, m)} leads in {_and(cats)}" for m, cats in by_method.items()]
    if not parts:
        return f"The methods tie in {_and(tied)}."
    if len(by_method) == 1:
        return f"{parts[0]}{tie}: no category measured disagrees."
    (_, first), (_, second) = list(by_method.items())[:2]
    return (f"{'; '.join(parts)}{tie}: the categories disagree, so no method is best by every standard (the "
            f"most {_ADJECTIVES[first[0]]} map is not the most {_ADJECTIVES[second[0]]} one).")


_ADJECTIVES = {"faithfulness": "faithful", "robustness": "robust", "localisation": "localised",
               "complexity": "concise", "randomisation": "model-dependent", "axiomatic": "axiom-abiding"}


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
