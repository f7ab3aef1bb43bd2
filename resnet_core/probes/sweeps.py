"""The depth sweep (gradient growth at initialisation, plain vs residual) and the Shapes input batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch
from torch import nn

from ..card import card_of
from ..costs import MemoryEstimate, Recipe, Variant, halvings, image_side, scale_to_budget
from ..models import ARCHITECTURES, build, display_name, get_spec
from ..targets import LossTarget, Target, TopClassTarget
from .gradients import block_input_grad_norms, estimate_block_gradients

CIFAR_DEPTHS = (20, 32, 44, 56, 110)
IMAGENET_DEPTHS = (18, 34, 50, 101, 152)
# Settings the app uses for the sweep: slim nets and small batches keep it to seconds on a laptop CPU while
# keeping the direction measured with full nets and batch 128 (a test checks it with these settings).
SWEEP_SETTINGS: dict[str, dict[str, int]] = {
    "cifar": {"batch": 16, "width": 8, "image_size": 32},
    "imagenet": {"batch": 8, "width": 4, "image_size": 64},
}


def sweep_arch(depth: int, family: str) -> str:
    """The registry name for a depth: ``resnet{depth}`` of the CIFAR family (6n+2) or the ImageNet family."""
    name = f"resnet{int(depth)}"
    try:
        spec = get_spec(name)
    except ValueError:
        spec = None
    if spec is None or spec.stem != family:
        known = CIFAR_DEPTHS + (1202,) if family == "cifar" else IMAGENET_DEPTHS
        raise ValueError(f"There is no {family} ResNet of depth {depth}; choose from {', '.join(map(str, known))}.")
    return name


def estimate_depth_sweep(depths: Sequence[int] | None = None, *, family: str = "cifar", batch: int = 1,
                         width: int | None = None, image_size: int | None = None) -> MemoryEstimate:
    """Memory ``depth_sweep`` needs: the nets are built and run one after the other, so the largest of their
    ``estimate_block_gradients`` (each built from its name, plain and residual) is what must fit."""
    batch = max(1, int(batch))
    request = {"depths": depths, "family": family, "batch": batch, "width": width, "image_size": image_size}
    if depths is None:
        depths = CIFAR_DEPTHS if family == "cifar" else IMAGENET_DEPTHS
    size = image_size or (32 if family == "cifar" else 224)
    worst: dict[str, int] = {}
    for depth in depths:
        name = f"resnet{int(depth)}"
        if name not in ARCHITECTURES:
            continue
        for residual in (True, False):
            opts: dict[str, Any] = {"residual": residual}
            if width is not None:
                opts["width"] = width
            parts = estimate_block_gradients(name, batch=batch, image_size=size, options=opts).parts
            if sum(parts.values()) > sum(worst.values()):
                worst = parts
    deepest = max((int(d) for d in depths), default=0)
    what = (f"A depth sweep to ResNet-{deepest} at {image_side(size)} px (batch {batch}"
            + (f", width {width})" if width else ")"))
    return MemoryEstimate("depth_sweep", what, worst, request, recipe=Recipe(estimate_depth_sweep, _sweep_axes))


def _sweep_axes(request: dict[str, Any]) -> list[list[Variant]]:
    """A smaller batch (batch statistics need two images), a smaller input, fewer depths (deepest dropped)."""
    axes: list[list[Variant]] = [[({"batch": b}, f"batch {b}", {"batch": b}) for b in halvings(request["batch"], 2)]]
    size = request["image_size"]
    start = (image_side(size) if size is not None else None) or (32 if request["family"] == "cifar" else 224)
    axes.append([({"image_size": s}, f"{s} px", {"image_size": s}) for s in halvings(start, 16)])
    depths = sorted(int(d) for d in (request["depths"] or ()))
    if len(depths) > 1:
        axes.append([({"depths": tuple(depths[:k])}, f"depths up to {depths[k - 1]}", {"depths": tuple(depths[:k])})
                     for k in range(len(depths) - 1, 0, -1)])
    return axes


def depth_sweep(
    depths: Sequence[int] | None = None,
    residual: Sequence[bool] = (True, False),
    *,
    family: str = "cifar",
    batch: int = 32,
    width: int | None = None,
    image_size: int | None = None,
    seed: int = 0,
    train: bool = True,
    num_classes: int = 10,
) -> pd.DataFrame:
    """First-block / last-block input-gradient norm ratio at initialisation, for each depth and residual flag.

    Each net is freshly built with ``seed``, run on the same seeded batch of ``batch`` standard-normal images
    (``image_size`` px: 32 CIFAR, 224 ImageNet by default) with random labels and the cross-entropy loss;
    ``train=True`` uses batch-norm with batch statistics, as in training. A ratio far above 1 means the gradient
    grows toward the input (explodes); far below 1, it vanishes.

    Columns: depth, arch, residual, label, first_grad_norm, last_grad_norm, ratio, batch, width, image_size.
    Costed first: over the memory budget the batch is halved until it fits (``frame.attrs["note"]`` says so);
    BudgetError when even batch 2 does not fit.
    """
    if family not in ("cifar", "imagenet"):
        raise ValueError(f"family must be 'cifar' or 'imagenet', got {family!r}.")
    depths = tuple(depths) if depths is not None else (CIFAR_DEPTHS if family == "cifar" else IMAGENET_DEPTHS)
    size = image_size or (32 if family == "cifar" else 224)
    for depth in depths:
        sweep_arch(depth, family)  # an unknown depth is one sentence before anything is costed
    fitted = scale_to_budget(estimate_depth_sweep(depths, family=family, batch=batch, width=width, image_size=size),
                             "batch", floor=2)
    batch = fitted.request["batch"]
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, 3, size, size, generator=gen)
    labels = torch.randint(0, num_classes, (batch,), generator=gen)
    target = LossTarget(labels)
    rows = []
    for depth in depths:
        name = sweep_arch(depth, family)
        for res in residual:
            options: dict[str, Any] = {"residual": bool(res), "num_classes": num_classes}
            if width is not None:
                options["width"] = width
            model = build(name, seed=seed, **options)
            norms = block_input_grad_norms(model, inputs, target, train=train)
            rows.append({"depth": int(depth), "arch": name, "residual": bool(res),
                         "label": display_name(name, bool(res)), "first_grad_norm": norms[0],
                         "last_grad_norm": norms[-1], "ratio": norms[0] / norms[-1] if norms[-1] else float("inf"),
                         "batch": batch, "width": width if width is not None else get_spec(name).base_width,
                         "image_size": size})
    frame = pd.DataFrame(rows)
    frame.attrs["note"] = fitted.note
    return frame


# ------------------------------------------------------------------------------------------ inputs


def shapes_batch(model: nn.Module, n: int = 16, seed: int = 0) -> tuple[torch.Tensor, Target]:
    """A batch of ``n`` Shapes images sized and normalised for ``model`` (``weights.preprocessing_for``), and
    the target to differentiate. Returns (inputs (n, 3, crop, crop), target).

    The target is the cross-entropy against the Shapes labels when that loss means something: for a net
    trained on Shapes (its ``class_names`` hold the Shapes classes; labels are mapped to its class indices) and
    for an untrained net (no ``class_names``) with at least as many outputs as Shapes has classes. A net
    trained on other classes (ImageNet, CIFAR-10) gets each image's top-1 logit instead.
    """
    from ..data import SHAPES_CLASSES, make_shapes
    from ..weights import preprocessing_for

    prep = preprocessing_for(model)
    shapes = make_shapes(n, image_size=prep.crop, seed=seed)
    mean = torch.tensor(prep.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(prep.std, dtype=torch.float32).view(1, 3, 1, 1)
    inputs = (shapes.images - mean) / std
    fc = getattr(model, "fc", None)
    classes = fc.out_features if isinstance(fc, nn.Linear) else 0
    names = card_of(model).class_names
    target: Target = TopClassTarget()
    if names is not None and set(SHAPES_CLASSES) <= set(names) and len(names) == classes:
        index = {name: i for i, name in enumerate(names)}
        target = LossTarget(torch.tensor([index[SHAPES_CLASSES[int(label)]] for label in shapes.labels]))
    elif names is None and classes >= len(SHAPES_CLASSES):
        target = LossTarget(shapes.labels)
    return inputs, target


def sweep_summary(sweep: pd.DataFrame) -> dict[str, float]:
    """At the deepest depth of a ``depth_sweep`` frame: the plain and residual ratios and plain / residual."""
    deepest = int(sweep["depth"].max())
    rows = sweep[sweep["depth"] == deepest].set_index("residual")["ratio"]
    plain, residual = float(rows.get(False, float("nan"))), float(rows.get(True, float("nan")))
    return {"depth": deepest, "plain": plain, "residual": residual, "factor": plain / residual}


def image_batch(first: Any, prep: Any, n: int, companions: Sequence[Any] = ()) -> torch.Tensor:
    """A batch of ``n`` images for an instrument: ``first`` (a PIL image, the one whose maps are shown) at index
    0, then the ``companions`` in order, each preprocessed with ``prep`` (``images.preprocess``), then Shapes
    images (seed 0) when the companions run out. Returns (n, 3, crop, crop).

    Batch statistics need company: with one image batch norm would normalise it by its own statistics. With a
    batch of one this is ``first`` alone (``require_batch_for_stats`` then says what batch statistics need).
    """
    from ..data import make_shapes
    from ..images import preprocess, to_pil

    if n < 1:
        raise ValueError(f"A batch holds at least one image, not {n}.")
    tensors = [preprocess(first, prep)]
    tensors += [preprocess(image, prep) for image in list(companions)[: n - 1]]
    missing = n - len(tensors)
    if missing > 0:
        shapes = make_shapes(missing, image_size=prep.crop, seed=0)
        tensors += [preprocess(to_pil(shapes.images, i), prep) for i in range(missing)]
    return torch.cat(tensors)
