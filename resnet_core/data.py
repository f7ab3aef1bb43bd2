"""Data for training races: the built-in synthetic Shapes set, torchvision sets, image folders.

Shapes is generated on the fly, offline and deterministic: ten classes of shapes at random position, size,
rotation and colour, drawn on a cluttered background (a random colour, pixel noise, stray strokes) so that
colour alone never gives the class. Each sample carries its object mask (where the shape is), which the
Grad-CAM page uses to score localisation. Generation works on whole batches of tensors (one loop over the
ten classes, none over images or pixels): 10,000 images at 32 px take well under two seconds on a laptop CPU.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .settings import can_reach, data_dir, downloads_allowed

SHAPES_CLASSES: tuple[str, ...] = (
    "circle", "square", "triangle", "cross", "ring", "diamond", "star", "crescent", "tee", "heart",
)
# Train and test come from disjoint generator seeds. A set is reproducible for the same (seed, n, image_size);
# images are drawn attribute by attribute per chunk of up to _CHUNK images, so sample i changes with n.
TRAIN_SEED = 0
TEST_SEED = 1_000_003
_STATS_SAMPLES = 2048
# Above 64 px the statistics images are drawn in chunks of this many pixels: in one piece, 2,048 images at
# 224 px took 7.5 GB to draw (measured, 1.5 GB in chunks of 83), so one ImageNet-net view could take the server down.
_STATS_CHUNK_PIXELS = 1024 * 64 * 64
# Clutter (pixel noise, up to two stray strokes) and object radius as a fraction of the image: chosen so a
# 56-layer residual net learns the set within a few hundred CPU steps while colour still says nothing.
_NOISE, _STROKES, _STROKE_P, _RADIUS = 0.03, 2, 0.5, (0.3, 0.48)
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
    images = torch.randn(n, 3, size, size, generator=gen).mul_(_NOISE).add_(bg)
    strokes = _STROKES
    p0 = torch.rand(n, strokes, 2, generator=gen) * size
    p1 = torch.rand(n, strokes, 2, generator=gen) * size
    keep = torch.rand(n, strokes, generator=gen) < _STROKE_P
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
    radius = (_RADIUS[0] + (_RADIUS[1] - _RADIUS[0]) * torch.rand(n, generator=gen)) * size
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

    Shared by every split so train and test (and a checkpoint) normalise the same way. Above 64 px the images
    are drawn and summed in chunks (bounded memory; other images than one 2,048-image set, same accuracy).
    """
    if image_size <= 64:
        images, _, _ = _make(_STATS_SAMPLES, image_size, TRAIN_SEED)
        mean = images.mean(dim=(0, 2, 3))
        std = images.std(dim=(0, 2, 3))
    else:
        gen = torch.Generator().manual_seed(TRAIN_SEED)
        chunk = max(1, _STATS_CHUNK_PIXELS // (image_size * image_size))
        total = torch.zeros(3, dtype=torch.float64)
        squares = torch.zeros(3, dtype=torch.float64)
        for start in range(0, _STATS_SAMPLES, chunk):
            images = _generate(min(chunk, _STATS_SAMPLES - start), image_size, gen)[0].double()
            total += images.sum(dim=(0, 2, 3))
            squares += images.square().sum(dim=(0, 2, 3))
        count = _STATS_SAMPLES * image_size * image_size
        mean = total / count
        std = ((squares - count * mean * mean) / (count - 1)).sqrt()
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


# ----------------------------------------------------------------------------------------------------------
# Real data sets (CIFAR-10, MNIST, Fashion-MNIST) and image folders, held in memory as uint8 tensors.


class DataError(ValueError):
    """A data set could not be loaded; the message is one sentence saying what to do.

    The message names no server path (visitors read it); ``folder`` is the folder concerned, for the
    command line and the logs.
    """

    def __init__(self, message: str, folder: str | Path | None = None) -> None:
        super().__init__(message)
        self.folder = Path(folder) if folder is not None else None


@dataclass(eq=False)
class ImageData:
    """A split held in memory: ``images`` (N, 3, H, W) uint8 or float32 in [0, 1], ``labels`` int64 (N,),
    ``classes`` names, ``mean``/``std`` per-channel statistics of the training split."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])


DATASETS: dict[str, str] = {
    "shapes": "Shapes (built in, synthetic)",
    "cifar10": "CIFAR-10",
    "mnist": "MNIST",
    "fashion_mnist": "Fashion-MNIST",
}
# The files each set needs in the data directory, in the layout torchvision writes when it downloads.
EXPECTED_FILES: dict[str, list[str]] = {
    "cifar10": [f"cifar-10-batches-py/{f}" for f in
                ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta")],
    "mnist": [f"MNIST/raw/{f}" for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")],
    "fashion_mnist": [f"FashionMNIST/raw/{f}" for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                                        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")],
}

def _download_url(name: str) -> str:
    """The first URL torchvision would fetch for ``name`` (probed before any download starts)."""
    from torchvision import datasets

    if name == "cifar10":
        return datasets.CIFAR10.url
    cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
    return cls.mirrors[0] + cls.resources[0][0]


def _missing(name: str, root: Path) -> list[str]:
    return [f for f in EXPECTED_FILES[name] if not (root / f).is_file()]


def dataset_title(name: str) -> str:
    """How a visitor reads data set ``name``: "CIFAR-10", or "the image folder 'flowers'" (its last part only)."""
    if name.startswith("folder:"):
        return f"the image folder '{Path(name[len('folder:'):]).name or name[len('folder:'):]}'"
    return DATASETS.get(name, name).split(" (")[0]  # "Shapes", not the picker's "Shapes (built in, synthetic)"


def _reason(exc: BaseException, folder: Path) -> str:
    """Why reading failed, without the server's folder in it (visitors read these sentences)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return (str(exc) or type(exc).__name__).replace(str(folder), Path(folder).name)


def _offline_message(name: str, root: Path, missing: list[str], why: str) -> str:
    return (f"{DATASETS[name]} is not in the data folder and {why}; place these files there "
            f"(torchvision's layout): {', '.join(missing)}, or set RESNET_EXPLORER_DATA to a folder that has "
            f"them, or pick the built-in Shapes set.")


def _ensure_files(name: str, root: Path, download: bool | None) -> None:
    """Make sure ``name``'s files are under ``root``: download them with torchvision where allowed and the
    network answers (checked first with a short timeout, so nothing hangs), else raise DataError."""
    missing = _missing(name, root)
    if not missing:
        return
    allowed = downloads_allowed() if download is None else download
    if not allowed:
        raise DataError(_offline_message(name, root, missing, "downloads are switched off"), root)
    if not can_reach(_download_url(name)):
        raise DataError(_offline_message(name, root, missing, "the download server cannot be reached"), root)
    from torchvision import datasets

    cls = {"cifar10": datasets.CIFAR10, "mnist": datasets.MNIST, "fashion_mnist": datasets.FashionMNIST}[name]
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)  # torchvision verifies the archive's MD5
    except Exception as exc:  # network drop, disk full, bad archive: all end in the same advice
        raise DataError(_offline_message(name, root, _missing(name, root), f"the download failed ({exc})"), root) from exc


def _read_cifar(root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """CIFAR-10 "python version" batches, read as documented at https://www.cs.toronto.edu/~kriz/cifar.html:
    each batch is a pickled dict with ``data`` (N, 3072) uint8 (1024 red, 1024 green, 1024 blue values per
    row, row-major 32x32) and ``labels`` (N,); ``batches.meta`` holds ``label_names``.

    Our own reader rather than ``torchvision.datasets.CIFAR10`` because torchvision checks every file's MD5,
    which only the full original files pass; the format and the layout are torchvision's.
    """
    base = root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    data, labels = [], []
    try:
        for file_name in names:
            with open(base / file_name, "rb") as f:
                entry = pickle.load(f, encoding="latin1")
            data.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.extend(entry["labels"])
        with open(base / "batches.meta", "rb") as f:
            classes = tuple(pickle.load(f, encoding="latin1")["label_names"])
    except (OSError, KeyError, ValueError, pickle.UnpicklingError, EOFError) as exc:
        raise DataError(f"The CIFAR-10 files in the data folder could not be read ({_reason(exc, base)}); delete "
                        f"them and download again, or place the original 'python version' batches there.",
                        base) from exc
    images = torch.from_numpy(np.concatenate(data))
    return images, torch.tensor(labels, dtype=torch.int64), classes


def _read_mnist(name: str, root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """MNIST / Fashion-MNIST idx-ubyte files through torchvision's own reader (it checks magic numbers)."""
    from torchvision import datasets

    cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
    try:
        ds = cls(str(root), train=train, download=False)
    except (RuntimeError, AssertionError, ValueError, OSError) as exc:
        raise DataError(f"The {DATASETS[name]} files in the data folder could not be read "
                        f"({_reason(exc, root)}); delete them and download again.", root / cls.__name__ / "raw") from exc
    # Grey to three channels so every page (and Grad-CAM) sees RGB images, as for the other sets.
    images = ds.data[:, None].expand(-1, 3, -1, -1)
    return images, ds.targets.to(torch.int64), tuple(ds.classes)


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 3, H, W) uint8 -> (N, 3, size, size) uint8, antialiased, in chunks to bound memory."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images.contiguous()
    out = []
    for start in range(0, images.shape[0], 4096):
        chunk = images[start:start + 4096].float()
        chunk = F.interpolate(chunk, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out.append(chunk.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out)


def _subset(images: torch.Tensor, labels: torch.Tensor, n: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    if n is None or n >= labels.shape[0]:
        return images, labels
    idx = torch.randperm(labels.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
    return images[idx], labels[idx]


def _stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    x = images.float() / 255 if images.dtype == torch.uint8 else images
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(round(float(m), 4) for m in mean), tuple(round(float(s), 4) for s in std)


def read_image_folder(path: str | Path, image_size: int = 32) -> ImageData:
    """An image folder with one sub-folder per class (torchvision's ``ImageFolder`` layout), resized to
    ``image_size`` (shorter side, then centre crop), held as uint8 (N, 3, S, S)."""
    from torchvision import datasets, transforms

    root = Path(path)
    title = dataset_title(f"folder:{root}")
    if not root.is_dir():
        raise DataError(f"{title[0].upper() + title[1:]} does not exist; give a folder with one sub-folder per class.", root)
    tf = transforms.Compose([transforms.Resize(image_size), transforms.CenterCrop(image_size),
                             transforms.PILToTensor()])
    try:
        ds = datasets.ImageFolder(str(root), transform=tf)
    except (FileNotFoundError, RuntimeError) as exc:
        raise DataError(f"{title[0].upper() + title[1:]} holds no images in class sub-folders ({_reason(exc, root)}); put "
                        f"each class's images in its own sub-folder.", root) from exc
    if len(ds.classes) < 2:
        raise DataError(f"{title[0].upper() + title[1:]} has {len(ds.classes)} class sub-folder; a classifier needs two or "
                        "more.", root)
    images = torch.stack([ds[i][0].expand(3, -1, -1) if ds[i][0].shape[0] == 1 else ds[i][0][:3]
                          for i in range(len(ds))])
    labels = torch.tensor(ds.targets, dtype=torch.int64)
    mean, std = _stats(images)
    return ImageData(f"folder:{root}", images, labels, tuple(ds.classes), mean, std)  # type: ignore[arg-type]


def load_splits(name: str, image_size: int = 32, n_train: int | None = None, n_test: int | None = None,
                *, download: bool | None = None, root: str | Path | None = None,
                seed: int = 0) -> tuple[ShapesSet | ImageData, ShapesSet | ImageData]:
    """Train and held-out splits of data set ``name`` ("shapes", "cifar10", "mnist", "fashion_mnist" or
    "folder:<path>") at ``image_size`` pixels, each subsampled (seeded) to ``n_train``/``n_test`` images.

    Shapes is generated (``n_train`` defaults to 10,000, ``n_test`` to 2,000). The others are read from
    ``root`` (default :func:`data_dir`), downloaded first when allowed and reachable; otherwise a
    :class:`DataError` says which files to place where. The test split carries the training statistics.
    """
    if name == "shapes":
        return (shapes_split("train", 10_000 if n_train is None else n_train, image_size),
                shapes_split("test", 2_000 if n_test is None else n_test, image_size))
    if not 8 <= image_size <= 256:
        raise ValueError(f"image size must be 8 to 256 pixels, got {image_size}.")
    if name.startswith("folder:"):
        full = read_image_folder(name.split(":", 1)[1], image_size)
        # A fixed, seeded 80/20 split: the folder has no test set of its own.
        perm = torch.randperm(len(full), generator=torch.Generator().manual_seed(seed))
        cut = max(1, int(0.8 * len(full)))
        tr, te = perm[:cut], perm[cut:] if cut < len(full) else perm[:1]
        train = ImageData(full.name, full.images[tr], full.labels[tr], full.classes, full.mean, full.std)
        test = ImageData(full.name, full.images[te], full.labels[te], full.classes, full.mean, full.std)
        return _subset_data(train, n_train, seed), _subset_data(test, n_test, seed + 1)
    if name not in EXPECTED_FILES:
        known = ", ".join([*DATASETS, "folder:<path>"])
        raise DataError(f"Unknown data set {name!r}; choose one of {known}.")
    base = Path(root) if root is not None else data_dir()
    _ensure_files(name, base, download)
    splits = []
    for train in (True, False):
        if name == "cifar10":
            images, labels, classes = _read_cifar(base, train)
        else:
            images, labels, classes = _read_mnist(name, base, train)
        images, labels = _subset(images, labels, n_train if train else n_test, seed + (0 if train else 1))
        splits.append((_resize(images, image_size), labels, classes))
    mean, std = _stats(splits[0][0])
    train_set, test_set = (ImageData(name, images, labels, classes, mean, std)  # type: ignore[arg-type]
                           for images, labels, classes in splits)
    return train_set, test_set


def _subset_data(data: ImageData, n: int | None, seed: int) -> ImageData:
    images, labels = _subset(data.images, data.labels, n, seed)
    return ImageData(data.name, images, labels, data.classes, data.mean, data.std)
