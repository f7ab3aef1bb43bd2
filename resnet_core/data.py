"""Data for training races: the built-in synthetic Shapes set, torchvision sets, image folders.

Shapes is generated on the fly, offline and deterministic: ten classes of shapes at random position, size,
rotation and colour, drawn on a cluttered background (a random colour, pixel noise, stray strokes) so that
colour alone never gives the class. Each sample carries its object mask (where the shape is), which the
Grad-CAM page uses to score localisation. Generation works on whole batches of tensors (one loop over the
ten classes, none over images or pixels): 10,000 images at 32 px take well under two seconds on a laptop CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import torch
from torch.utils.data import Dataset

SHAPES_CLASSES: tuple[str, ...] = (
    "circle", "square", "triangle", "cross", "ring", "diamond", "star", "crescent", "tee", "heart",
)
# Train and test come from disjoint generator seeds (and within a split, sample i is always the same image).
TRAIN_SEED = 0
TEST_SEED = 1_000_003
_STATS_SAMPLES = 2048
_CHUNK = 4096  # images per generation chunk: bounds peak memory (strokes need N x K x H x W floats)


@dataclass(eq=False)
class ShapesSet(Dataset):
    """A generated Shapes set. ``images`` float32 (N, 3, H, W) in [0, 1]; ``labels`` int64 (N,);
    ``masks`` bool (N, H, W), True on the object; ``mean``/``std`` per-channel normalisation statistics.

    As a torch ``Dataset`` item ``i`` is ``(normalised image (3, H, W), label)``.
    """

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    classes: tuple[str, ...] = SHAPES_CLASSES
    seed: int = 0
    name: str = "shapes"
    _norm: torch.Tensor | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = (self.images[index] - self._mean_t()) / self._std_t()
        return image, int(self.labels[index])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def _mean_t(self) -> torch.Tensor:
        return torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1)

    def _std_t(self) -> torch.Tensor:
        return torch.tensor(self.std, dtype=torch.float32).view(3, 1, 1)

    def normalized(self) -> torch.Tensor:
        """All images normalised with the set's statistics, (N, 3, H, W) float32 (computed once)."""
        if self._norm is None:
            self._norm = (self.images - self._mean_t()) / self._std_t()
        return self._norm


def _shape_masks(kind: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Inside-test for one class on object-frame coordinates ``u, v`` (n, H, W), unit radius."""
    r2 = u * u + v * v
    name = SHAPES_CLASSES[kind]
    if name == "circle":
        return r2 <= 0.85**2
    if name == "square":
        return torch.maximum(u.abs(), v.abs()) <= 0.7
    if name in ("triangle",):
        # Regular polygon: distance to the centre along the sector's normal below the apothem.
        phi = torch.atan2(v, u)
        sector = 2 * math.pi / 3
        local = torch.remainder(phi, sector) - sector / 2
        return r2.sqrt() * torch.cos(local) <= 0.5
    if name == "cross":
        return ((u.abs() <= 0.28) & (v.abs() <= 0.95)) | ((v.abs() <= 0.28) & (u.abs() <= 0.95))
    if name == "ring":
        return (r2 <= 0.9**2) & (r2 >= 0.5**2)
    if name == "diamond":
        # An elongated rhombus, so that rotation never turns it into the square.
        return u.abs() / 1.0 + v.abs() / 0.55 <= 1.0
    if name == "star":
        phi = torch.atan2(v, u)
        wave = 1 - (torch.remainder(phi * 5 / (2 * math.pi), 1.0) * 2 - 1).abs()  # 0 at valleys, 1 at tips
        return r2.sqrt() <= 0.38 + 0.6 * wave
    if name == "crescent":
        return (r2 <= 0.9**2) & ((u - 0.42) ** 2 + v * v > 0.7**2)
    if name == "tee":
        return ((v >= 0.45) & (v <= 0.9) & (u.abs() <= 0.85)) | ((u.abs() <= 0.24) & (v >= -0.9) & (v < 0.45))
    if name == "heart":
        x, y = u * 1.25, v * 1.25 + 0.15
        return (x * x + y * y - 1) ** 3 - x * x * y**3 <= 0
    raise ValueError(f"unknown shape class {kind}")


def _generate(n: int, size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One chunk of ``n`` images: (images (n,3,S,S) in [0,1], labels (n,), masks (n,S,S))."""
    num_classes = len(SHAPES_CLASSES)
    labels = torch.randint(0, num_classes, (n,), generator=gen)
    coords = torch.arange(size, dtype=torch.float32) + 0.5  # pixel centres
    # x varies along the last axis, y along the one before: keeping them 1-D (..., 1, S) and (..., S, 1) lets
    # broadcasting build the (S, S) planes only where needed, which halves the generation time.
    xs, ys = coords.view(1, 1, 1, size), coords.view(1, 1, size, 1)

    # Background: a random base colour, per-pixel noise and up to 4 stray strokes of random colour.
    bg = torch.rand(n, 3, 1, 1, generator=gen)
    images = torch.randn(n, 3, size, size, generator=gen).mul_(0.06).add_(bg)
    strokes = 4
    p0 = torch.rand(n, strokes, 2, generator=gen) * size
    p1 = torch.rand(n, strokes, 2, generator=gen) * size
    keep = torch.rand(n, strokes, generator=gen) < 0.75
    d = p1 - p0
    length2 = (d * d).sum(2).clamp_min(1e-6)
    ax = xs - p0[:, :, 0, None, None]  # (n, K, 1, S)
    ay = ys - p0[:, :, 1, None, None]  # (n, K, S, 1)
    ddx, ddy = d[:, :, 0, None, None], d[:, :, 1, None, None]
    t = (ax * (ddx / length2[..., None, None]) + ay * (ddy / length2[..., None, None])).clamp_(0, 1)
    dist2 = (ax - t * ddx).square_().add_((ay - t * ddy).square_())  # squared distance to the segment
    width = max(0.55, size / 48)
    on_stroke = (dist2 <= width**2) & keep[:, :, None, None]  # (n, K, S, S)
    stroke_colour = torch.rand(n, strokes, 3, 1, 1, generator=gen)
    for k in range(strokes):
        images = torch.where(on_stroke[:, k, None], stroke_colour[:, k], images)

    xs, ys = xs.view(1, 1, size), ys.view(1, size, 1)
    colour = torch.rand(n, 3, 1, 1, generator=gen)
    too_close = (colour - bg).norm(dim=1, keepdim=True) < 0.45
    colour = torch.where(too_close, torch.remainder(bg + 0.5, 1.0), colour)
    radius = (0.2 + 0.16 * torch.rand(n, generator=gen)) * size
    cx = radius + torch.rand(n, generator=gen) * (size - 2 * radius)
    cy = radius + torch.rand(n, generator=gen) * (size - 2 * radius)
    theta = torch.rand(n, generator=gen) * 2 * math.pi
    dx = (xs - cx.view(-1, 1, 1)) / radius.view(-1, 1, 1)  # (n, 1, S)
    dy = (ys - cy.view(-1, 1, 1)) / radius.view(-1, 1, 1)  # (n, S, 1)
    cos, sin = theta.cos().view(-1, 1, 1), theta.sin().view(-1, 1, 1)
    u = dx * cos + dy * sin
    v = -dx * sin + dy * cos
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    for kind in range(num_classes):
        idx = (labels == kind).nonzero().flatten()
        if idx.numel():
            masks[idx] = _shape_masks(kind, u[idx], v[idx])
    shade = 1 + 0.05 * torch.randn(n, 1, size, size, generator=gen)  # slight texture on the object
    images = torch.where(masks[:, None], colour * shade, images)
    return images.clamp_(0, 1), labels, masks


def _make(n: int, image_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    parts = [_generate(min(_CHUNK, n - start), image_size, gen) for start in range(0, n, _CHUNK)]
    if not parts:
        return (torch.zeros(0, 3, image_size, image_size), torch.zeros(0, dtype=torch.int64),
                torch.zeros(0, image_size, image_size, dtype=torch.bool))
    images, labels, masks = (torch.cat(t) for t in zip(*parts, strict=True))
    return images.contiguous(), labels, masks


@lru_cache(maxsize=16)
def shapes_stats(image_size: int = 32) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and std of Shapes at ``image_size``, measured on 2,048 training images.

    Shared by every split so train and test (and a checkpoint) normalise the same way.
    """
    images, _, _ = _make(_STATS_SAMPLES, image_size, TRAIN_SEED)
    mean = images.mean(dim=(0, 2, 3))
    std = images.std(dim=(0, 2, 3))
    return (tuple(round(float(m), 4) for m in mean), tuple(round(float(s), 4) for s in std))  # type: ignore[return-value]


def _check_size(n: int, image_size: int) -> None:
    if n < 0:
        raise ValueError(f"The number of images must be zero or more, got {n}.")
    if not 8 <= image_size <= 256:
        raise ValueError(f"Shapes images must be 8 to 256 pixels wide, got {image_size}.")


def make_shapes(n: int, image_size: int = 32, seed: int = 0) -> ShapesSet:
    """``n`` Shapes images of ``image_size`` pixels from generator ``seed`` (same seed, same images)."""
    _check_size(n, image_size)
    images, labels, masks = _make(n, image_size, seed)
    mean, std = shapes_stats(image_size)
    return ShapesSet(images, labels, masks, mean, std, seed=seed)


def shapes_split(split: str, n: int, image_size: int = 32) -> ShapesSet:
    """The "train" or "test" split: drawn from disjoint seeds, so no test image is a training image."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    return make_shapes(n, image_size, TRAIN_SEED if split == "train" else TEST_SEED)
