"""Which map to trust, measured on the user's own image: faithfulness metrics for any set of saliency maps.

``faithfulness(model, image, explanations)`` returns one row per map:

``deletion_auc`` (lower is better; Petsiuk et al. 2018, RISE)
    Pixels are removed most-salient first (replaced by ``deletion_baseline``, by default zero in the model's
    normalised space: the data set's mean colour) in ``steps`` equal shares; the target class's softmax
    probability is measured after each share and the area under that curve over [0, 1] is reported. A map that
    points at what the model uses makes the probability fall at once.
``insertion_auc`` (higher is better; RISE)
    The reverse: start from ``insertion_baseline`` (by default a Gaussian blur of the image, RISE's choice) and
    put the original pixels back most-salient first.
``average_drop`` (lower is better) and ``increase_in_confidence`` (Chattopadhyay et al. 2018)
    The probability on the image multiplied by the map (in [0, 1]) against the image's own: drop =
    max(0, p - p_masked) / p in percent; increase = 1 when p_masked > p, else 0.
``auc_difference``
    insertion_auc - deletion_auc, the summary used to rank the maps (``rank`` 1 is the most faithful).
``road_morf``, ``road_lerf``, ``road_combined`` (with ``road=True``; Rong et al. 2022, ROAD)
    Remove the most (MoRF, lower is better) or least (LeRF, higher is better) relevant ``p`` % of the pixels
    and fill them by noisy linear imputation from their neighbours (so the removal's shape leaks no class
    information), averaged over ``road_percentiles``; combined = (LeRF - MoRF) / 2, as pytorch-grad-cam.

Every perturbed image is built and scored in batches (``batch_size``, scaled to the memory budget) with
``progress(done, total)`` after each batch, on the image's device, under ``torch.no_grad()`` and the model's
lock with its state restored. Ties in a map are broken by pixel order (a stable sort), so results repeat.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..costs import estimate_forward, scale_to_budget
from ..hooks import preserved_state
from .core import CamError, Explanation, _check_image, resolve_layer

Progress = Callable[[int, int], None]
BASELINES = ("zero", "blur")
ROAD_PERCENTILES = (10, 30, 50, 70, 90)
ROAD_COLUMNS = ["road_morf", "road_lerf", "road_combined"]
COLUMNS = ["method", "deletion_auc", "insertion_auc", "auc_difference", "average_drop", "increase_in_confidence",
           "probability", "rank"]


def blurred(image: torch.Tensor, size: int = 11, nsig: float = 5.0) -> torch.Tensor:
    """RISE's insertion start: its Gaussian kernel (``size`` taps covering +-``nsig`` standard deviations, the
    reference code's gkern(11, 5)), applied per channel, with replicated borders."""
    edges = torch.linspace(-nsig, nsig, size + 1, dtype=torch.float64)
    cdf = 0.5 * (1 + torch.erf(edges / 2 ** 0.5))
    kernel = (cdf[1:] - cdf[:-1]).float().to(image.device)
    kernel = kernel / kernel.sum()
    channels = image.shape[1]
    padded = F.pad(image, (size // 2,) * 4, mode="replicate")
    out = F.conv2d(padded, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)


def _baseline(image: torch.Tensor, kind: str) -> torch.Tensor:
    if kind not in BASELINES:
        raise CamError(f"Unknown baseline '{kind}'; choose one of {', '.join(BASELINES)}.")
    return torch.zeros_like(image) if kind == "zero" else blurred(image)


def _auc(curve: np.ndarray) -> float:
    """Trapezoidal area under a curve sampled at equal steps over [0, 1]."""
    steps = len(curve) - 1
    return float((curve.sum() - (curve[0] + curve[-1]) / 2) / steps)


def _as_maps(maps: Mapping[str, np.ndarray] | Sequence[Explanation], target: int | None
             ) -> tuple[dict[str, np.ndarray], int]:
    if isinstance(maps, Mapping):
        if target is None:
            raise CamError("Give the target class index when the maps are plain arrays.")
        return {name: np.asarray(m, dtype=np.float32) for name, m in maps.items()}, int(target)
    explanations = list(maps)
    if not explanations:
        raise CamError("There are no maps to score; compute at least one explanation first.")
    classes = {e.class_index for e in explanations}
    if target is None and len(classes) != 1:
        raise CamError("The explanations are for different classes; score maps of one class at a time.")
    return {e.method: e.heatmap for e in explanations}, int(target if target is not None else classes.pop())


# ROAD's neighbour weights (Rong et al. 2022; the reference code's and pytorch-grad-cam's): edges 1/6, corners 1/12.
_NEIGHBOURS = (((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12), ((0, -1), 1 / 6),
               ((-1, -1), 1 / 12), ((1, 0), 1 / 6), ((-1, 0), 1 / 6))


def impute(image: torch.Tensor, removed: torch.Tensor, noise: float = 0.01,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """ROAD's noisy linear imputation: every removed pixel of ``image`` (C, H, W) (``removed`` bool (H, W))
    becomes the weighted mean of its 8 neighbours (removed ones solved jointly, one sparse linear system for all
    channels), plus Gaussian noise of ``noise`` (from ``generator``: never the global random state)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    channels, height, width = image.shape
    flat_removed = removed.flatten().cpu().numpy()
    values = image.reshape(channels, -1).double().cpu().numpy()
    unknown = np.flatnonzero(flat_removed)
    if unknown.size == 0:
        return image.clone()
    index_of = np.full(flat_removed.size, -1, dtype=np.int64)
    index_of[unknown] = np.arange(unknown.size)
    rows_, cols_ = unknown // width, unknown % width
    diagonal = np.zeros(unknown.size)
    rhs = np.zeros((unknown.size, channels))
    entries_r, entries_c, entries_v = [], [], []
    for (dr, dc), weight in _NEIGHBOURS:
        r, c = rows_ + dr, cols_ + dc
        inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
        diagonal[inside] += weight
        neighbour = np.where(inside, r * width + c, 0)
        is_unknown = inside & flat_removed[neighbour]
        is_known = inside & ~flat_removed[neighbour]
        entries_r.append(np.flatnonzero(is_unknown))
        entries_c.append(index_of[neighbour[is_unknown]])
        entries_v.append(np.full(int(is_unknown.sum()), -weight))
        rhs[is_known] += weight * values[:, neighbour[is_known]].T
    entries_r.append(np.arange(unknown.size))
    entries_c.append(np.arange(unknown.size))
    entries_v.append(diagonal)
    system = coo_matrix((np.concatenate(entries_v), (np.concatenate(entries_r), np.concatenate(entries_c))),
                        shape=(unknown.size, unknown.size)).tocsc()
    solved = np.asarray(spsolve(system, rhs)).reshape(unknown.size, channels)
    out = image.reshape(channels, -1).clone()
    filled = torch.from_numpy(solved.T).to(out)
    if noise:
        filled = filled + noise * torch.randn(filled.shape, generator=generator).to(out)
    out[:, torch.from_numpy(unknown).to(out.device)] = filled
    return out.reshape(channels, height, width)


def _summary(names: list[str], found: dict[tuple[str, str, int], float], plain: float, steps: int,
             road_percentiles: Sequence[int]) -> pd.DataFrame:
    """The table from every perturbed image's probability (``found``, keyed by job), best-ranked first."""
    rows = []
    for name in names:
        deletion = np.array([found[(name, "deletion", k)] for k in range(steps + 1)])
        insertion = np.array([found[(name, "insertion", k)] for k in range(steps + 1)])
        multiplied = found[(name, "multiplied", 0)]
        row = {"method": name, "deletion_auc": _auc(deletion), "insertion_auc": _auc(insertion),
               "average_drop": 100.0 * max(0.0, plain - multiplied) / plain if plain > 0 else 0.0,
               "increase_in_confidence": float(multiplied > plain), "probability": plain,
               "deletion_curve": deletion, "insertion_curve": insertion}
        if road_percentiles:
            row["road_morf"] = float(np.mean([found[(name, "morf", int(q))] for q in road_percentiles]))
            row["road_lerf"] = float(np.mean([found[(name, "lerf", int(q))] for q in road_percentiles]))
            row["road_combined"] = (row["road_lerf"] - row["road_morf"]) / 2
        rows.append(row)
    table = pd.DataFrame(rows)
    table["auc_difference"] = table["insertion_auc"] - table["deletion_auc"]
    table = table.sort_values(["auc_difference", "average_drop"], ascending=[False, True], kind="stable")
    table["rank"] = range(1, len(table) + 1)
    extra = ROAD_COLUMNS if road_percentiles else []
    return table[COLUMNS + extra + ["deletion_curve", "insertion_curve"]].reset_index(drop=True)


def faithfulness(model: nn.Module, image: torch.Tensor, maps: Mapping[str, np.ndarray] | Sequence[Explanation],
                 target: int | None = None, *, steps: int = 20, batch_size: int = 32,
                 deletion_baseline: str = "zero", insertion_baseline: str = "blur",
                 road: bool = False, road_percentiles: Sequence[int] = ROAD_PERCENTILES, road_noise: float = 0.01,
                 seed: int = 0, progress: Progress | None = None) -> pd.DataFrame:
    """Deletion/insertion AUC, average drop and increase in confidence for each map of one image (1, C, H, W).

    ``maps``: explanations (their ``heatmap`` and ``class_index``) or name -> (H, W) array with ``target``.
    Runs ``faithfulness_passes(len(maps), steps, road, len(road_percentiles))`` forward passes, ``batch_size``
    images at a time. ``road``: also ROAD (one sparse linear solve per map, percentile and order; ``seed``
    seeds its noise). Returns a DataFrame with the columns of ``COLUMNS`` (and ``ROAD_COLUMNS``), best first.
    """
    _check_image(image)
    if image.shape[0] != 1:
        raise CamError("faithfulness() scores the maps of one image (1, C, H, W).")
    named, target = _as_maps(maps, target)
    height, width = image.shape[-2:]
    for name, heat in named.items():
        if heat.shape != (height, width):
            raise CamError(f"The map of {name} is {heat.shape[0]}x{heat.shape[1]} but the image is "
                           f"{height}x{width}; explain this image again.")
    steps = max(1, int(steps))
    batch = scale_to_budget(estimate_forward(model, batch=max(1, int(batch_size)),
                                             image_size=tuple(image.shape[1:])), "batch").request["batch"]
    image = image.detach()
    start_deletion = _baseline(image, deletion_baseline)
    start_insertion = _baseline(image, insertion_baseline)
    pixels = height * width
    counts = [round(k * pixels / steps) for k in range(steps + 1)]
    orders = {name: torch.argsort(-torch.from_numpy(np.nan_to_num(heat)).flatten(), stable=True).to(image.device)
              for name, heat in named.items()}

    # Each job is one perturbed image: (name, kind, step); built only when its batch is scored.
    jobs: list[tuple[str, str, int]] = [("", "plain", 0)]
    for name in named:
        jobs.append((name, "multiplied", 0))
        jobs += [(name, kind, k) for kind in ("deletion", "insertion") for k in range(steps + 1)]
        if road:
            jobs += [(name, kind, int(q)) for kind in ("morf", "lerf") for q in road_percentiles]
    generator = torch.Generator().manual_seed(seed)

    def build(job: tuple[str, str, int]) -> torch.Tensor:
        name, kind, k = job
        if kind == "plain":
            return image[0]
        if kind == "multiplied":
            heat = torch.from_numpy(np.clip(np.nan_to_num(named[name]), 0, 1)).to(image)
            return image[0] * heat
        chosen = torch.zeros(pixels, dtype=torch.bool, device=image.device)
        if kind in ("morf", "lerf"):  # ROAD: remove k% of the pixels, most or least relevant first, and impute
            share = round(k * pixels / 100)
            chosen[orders[name][:share] if kind == "morf" else orders[name][pixels - share:]] = True
            return impute(image[0], chosen.view(height, width), road_noise, generator)
        chosen[orders[name][:counts[k]]] = True
        chosen = chosen.view(1, height, width)
        if kind == "deletion":
            return torch.where(chosen, start_deletion[0], image[0])
        return torch.where(chosen, image[0], start_insertion[0])

    probabilities = np.empty(len(jobs), dtype=np.float64)
    with torch.no_grad():
        for first in range(0, len(jobs), batch):
            chunk = torch.stack([build(job) for job in jobs[first:first + batch]])
            # The lock only for the forward: ROAD's linear solves need no model (other sessions may use it).
            with preserved_state(model, train=False):
                logits = model(chunk).float()
            if not 0 <= target < logits.shape[1]:
                raise CamError(f"Class index {target} is outside this model's {logits.shape[1]} classes.")
            probabilities[first:first + chunk.shape[0]] = logits.softmax(dim=1)[:, target].cpu().numpy()
            if progress is not None:
                progress(min(first + batch, len(jobs)), len(jobs))

    found = {job: float(probabilities[i]) for i, job in enumerate(jobs)}
    return _summary(list(named), found, float(probabilities[0]), steps, road_percentiles if road else ())


def faithfulness_passes(methods: int, steps: int = 20, road: bool = False,
                        road_percentiles: int = len(ROAD_PERCENTILES)) -> int:
    """How many images ``faithfulness`` scores for ``methods`` maps: the plain image, then per map the
    multiplied image, ``steps + 1`` deleted and inserted images each, and with ``road`` one imputed image per
    percentile and order."""
    return 1 + methods * (2 * (steps + 1) + 1 + (2 * road_percentiles if road else 0))


def trust_sentence(table: pd.DataFrame, labels: Mapping[str, str] | None = None) -> str:
    """One sentence, drawn from ``faithfulness``'s table, saying which map to trust on this image and why."""
    if table.empty:
        return "No map was scored."
    name = (lambda m: labels.get(m, m)) if labels else (lambda m: m)
    best = table.iloc[0]
    sentence = (f"On this image, trust {name(best['method'])} most: putting its most salient pixels back raises "
                f"the class probability fastest and removing them lowers it fastest (insertion minus deletion AUC "
                f"{best['auc_difference']:+.2f}")
    if len(table) > 1:
        runner_up, worst = table.iloc[1], table.iloc[-1]
        if abs(float(best["auc_difference"]) - float(runner_up["auc_difference"])) < 0.01:
            sentence += f", {name(runner_up['method'])} within 0.01 of it"
        sentence += f"; least faithful: {name(worst['method'])} at {worst['auc_difference']:+.2f}"
    return sentence + ")."


@dataclass
class MethodComparison:
    """Every method on one image, class and layer: the maps, each method's time, the ranking and the verdict."""

    explanations: dict[str, Explanation]
    seconds: dict[str, float]
    table: pd.DataFrame  # faithfulness's columns (without the curves), plus label and seconds, best first
    sentence: str
    layer: str | None
    class_index: int
    class_name: str = ""
    notes: list[str] = field(default_factory=list)
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # method -> (deletion, insertion)


def compare_methods(model: nn.Module, image: torch.Tensor, target: int | None = None, layer: str | None = None,
                    methods: Sequence[str] | None = None, *, class_names: Sequence[str] | None = None,
                    steps: int = 20, batch_size: int = 32, road: bool = False,
                    progress: Callable[[str, int, int], None] | None = None) -> MethodComparison:
    """Explain one image with every method (default: all of ``METHODS``) for the same class and layer, time
    each, score every map with ``faithfulness`` (``road``: ROAD too) and rank them.

    ``target`` None explains the top-1 class (fixed once, so every method explains the same class).
    ``progress(stage, done, total)``: stage is a method name while it runs (Score-CAM reports its passes), then
    "faithfulness" while the maps are scored. Methods without a layer (integrated gradients) ignore ``layer``.
    """
    from .explaining import explain
    from .methods import METHODS

    chosen = list(methods or METHODS)
    unknown = [m for m in chosen if m not in METHODS]
    if unknown:
        raise CamError(f"Unknown method '{unknown[0]}'; choose one of {', '.join(METHODS)}.")
    if not chosen:
        raise CamError("Choose at least one method to compare.")
    _check_image(image)
    layer, _ = resolve_layer(model, layer)
    if target is None:
        with preserved_state(model, train=False), torch.no_grad():
            target = int(model(image.detach()).argmax(dim=1)[0])
    explanations: dict[str, Explanation] = {}
    seconds: dict[str, float] = {}
    for index, method in enumerate(chosen):
        if progress is not None:
            progress(method, index, len(chosen))
        report = (lambda done, total, m=method: progress(m, done, total)) if progress is not None else None
        started = time.perf_counter()
        explanations[method] = explain(model, image, target, layer, method, class_names=class_names,
                                       batch_size=batch_size, progress=report)
        seconds[method] = time.perf_counter() - started
    scored = faithfulness(model, image, list(explanations.values()), target, steps=steps, batch_size=batch_size,
                          road=road, progress=(lambda done, total: progress("faithfulness", done, total)) if progress else None)
    curves = {row.method: (row.deletion_curve, row.insertion_curve) for row in scored.itertuples()}
    scored = scored.drop(columns=["deletion_curve", "insertion_curve"])
    scored.insert(1, "label", [METHODS[m] for m in scored["method"]])
    scored.insert(2, "seconds", [seconds[m] for m in scored["method"]])
    first = next(iter(explanations.values()))
    notes = sorted({note for e in explanations.values() for note in e.notes})
    return MethodComparison(explanations, seconds, scored, trust_sentence(scored, METHODS), layer=layer,
                            class_index=target, class_name=first.class_name, notes=notes, curves=curves)
