"""Uploaded bytes -> a safe RGB image -> the tensor a model expects.

Every way an upload can go wrong (not an image, a format we don't take, truncated bytes, a decompression
bomb) raises :class:`ImageError`, whose message is one sentence a user can act on. Nothing else escapes.
"""

from __future__ import annotations

import io
import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import WeightsError, clip

FORMATS = ("PNG", "JPEG", "MPO", "WEBP", "BMP", "GIF", "TIFF")
# 40 megapixels: a 12000x3300 panorama fits, a crafted 50000x50000 "bomb" does not. Pillow's own limit
# (89 MP warning, 179 MP error) is both larger and a warning, so we check explicitly before decoding.
MAX_PIXELS = 40_000_000
MAX_BYTES = 100 * 1024 * 1024
# Longer side over shorter side. Preprocessing scales the *shorter* side to ``resize``, so a 1x60000 strip
# would become 256x15,360,000 pixels (12 GB): 20:1 still takes a phone's scrolling screenshot (about 1:18),
# and keeps the resized image under resize x 20*resize (63 MB at the largest allowed resize of 1024).
MAX_ASPECT_RATIO = 20.0
SAMPLE_NAMES = ("chelsea", "coffee", "astronaut", "rocket")


# Preprocessing's limits: resize and crop (torchvision's ResNets use 232-256 and 224); |mean| and std for
# pixels scaled to [0, 1]. A checkpoint's statistics are checked against them before anything uses them.
MAX_RESIZE = 1024
MAX_STATISTIC = 1000.0
MIN_STD = 1e-6


class ImageError(ValueError):
    """A user-facing problem with an image; ``str(error)`` is one sentence saying what to do."""


# --------------------------------------------------------------------------------------------- preprocessing
def _whole(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or value != int(value) or not 1 <= value <= MAX_RESIZE:
        raise WeightsError(f"{name} must be a whole number of pixels from 1 to {MAX_RESIZE}, got {clip(value, 40)}")
    return int(value)


def _statistics(values: Any, name: str) -> tuple[float, ...]:
    if isinstance(values, torch.Tensor):
        values = values.tolist() if values.numel() <= 16 else [None] * 17
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise WeightsError(f"{name} must be a list of numbers, got a {type(values).__name__}")
    if len(values) != 3:
        raise WeightsError(f"{name} needs one value per input channel (3, for RGB images), got {len(values)}")
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
        raise WeightsError(f"{name} must hold numbers, got {clip(list(values), 60)}")
    floats = tuple(float(v) for v in values)
    if not all(math.isfinite(v) and abs(v) <= MAX_STATISTIC for v in floats):
        raise WeightsError(f"{name} must be finite numbers within +-{MAX_STATISTIC:g}, got {clip(floats, 60)}")
    return floats


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes model input: resize the shorter side, centre-crop, normalise per channel.

    Validated when made (a WeightsError naming the statistic): ``1 <= crop <= resize <= MAX_RESIZE``, one
    finite mean and std per RGB channel, ``MIN_STD <= std <= MAX_STATISTIC``. So ``preprocess`` never fails
    in torch on bad statistics, and a checkpoint's bad statistics are blamed on the checkpoint.
    """

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    IMAGENET: ClassVar[Preprocessing]
    CIFAR: ClassVar[Preprocessing]

    def __post_init__(self) -> None:
        problem = preprocessing_problem(self.resize, self.crop, self.mean, self.std)
        if problem is not None:
            raise WeightsError(f"The preprocessing is unusable: {problem}.")
        object.__setattr__(self, "resize", int(self.resize))
        object.__setattr__(self, "crop", int(self.crop))
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    @classmethod
    def shapes(cls, image_size: int = 32) -> Preprocessing:
        """The built-in Shapes set at ``image_size`` px, normalised with its own training statistics."""
        mean, std = _shapes_stats(image_size)
        return cls(image_size, image_size, mean, std)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        """From ``to_dict``'s form; raises WeightsError (missing key or bad value), nothing else."""
        if not isinstance(data, Mapping):
            raise WeightsError(f"The preprocessing is unusable: it is a {type(data).__name__}, not a mapping.")
        missing = [k for k in ("resize", "crop", "mean", "std") if k not in data]
        if missing:
            raise WeightsError(f"The preprocessing is unusable: it lacks {', '.join(missing)}.")
        return cls(data["resize"], data["crop"], data["mean"], data["std"])

    def to_dict(self) -> dict[str, Any]:
        return {"resize": self.resize, "crop": self.crop, "mean": list(self.mean), "std": list(self.std)}

    def describe(self) -> str:
        mean = ", ".join(f"{m:.3f}" for m in self.mean)
        std = ", ".join(f"{s:.3f}" for s in self.std)
        return f"resize {self.resize}, centre crop {self.crop}, mean ({mean}), std ({std})"


def preprocessing_problem(resize: Any, crop: Any, mean: Any, std: Any) -> str | None:
    """What is wrong with these preprocessing values (a phrase), or None when they are usable."""
    try:
        resize, crop = _whole(resize, "resize"), _whole(crop, "crop")
        if crop > resize:
            return f"the centre crop ({crop}) is larger than the resize ({resize})"
        _statistics(mean, "mean")
        stds = _statistics(std, "std")
    except WeightsError as exc:
        return str(exc)
    if not all(s >= MIN_STD for s in stds):
        return f"std must be positive (at least {MIN_STD:g}) for every channel, got {clip(stds, 60)}"
    return None


Preprocessing.IMAGENET = Preprocessing(256, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
Preprocessing.CIFAR = Preprocessing(32, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


def _shapes_stats(image_size: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    from .data import shapes_stats

    return shapes_stats(image_size)



def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit integer / float single-channel images -> 8-bit "L", scaled by the mode's range."""
    array = np.asarray(image)
    if image.mode.startswith("I;16"):
        array = (array.astype(np.uint32) >> 8).astype(np.uint8)
    elif image.mode == "I":
        # 32-bit ints: PNG/TIFF 16-bit greyscale sometimes opens as "I"; scale by the largest plausible range.
        top = 65535 if array.max(initial=0) > 255 else 255
        array = (np.clip(array, 0, top) * (255.0 / top)).round().astype(np.uint8)
    else:  # "F": floats, 0..1 or 0..255 by convention
        array = np.nan_to_num(array.astype(np.float64))
        scale = 255.0 if array.max(initial=0) <= 1.0 else 1.0
        array = np.clip(array * scale, 0, 255).round().astype(np.uint8)
    return Image.fromarray(array, mode="L")


def check_size(width: int, height: int, *, max_pixels: int = MAX_PIXELS,
               max_aspect_ratio: float = MAX_ASPECT_RATIO) -> None:
    """Raise ImageError unless a ``width`` x ``height`` image is small enough to decode and to preprocess.

    Called on the header's size before any pixel is decoded, and again by ``model_view`` for images that
    did not come through ``decode_image`` (samples, Shapes, a notebook's own PIL image).
    """
    if width < 1 or height < 1:
        raise ImageError("The image has no pixels; upload a different file.")
    if width * height > max_pixels:
        raise ImageError(
            f"The image is {width}x{height} pixels ({width * height / 1e6:.0f} MP), above the "
            f"{max_pixels / 1e6:.0f} MP safety limit against decompression bombs; downscale it first.")
    ratio = max(width, height) / min(width, height)
    if ratio > max_aspect_ratio:
        raise ImageError(
            f"The image is {width}x{height} pixels, an aspect ratio of {ratio:.0f}:1, above the "
            f"{max_aspect_ratio:.0f}:1 limit (resizing its shorter side would take too much memory); "
            "crop it closer to a square first.")


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB. Transparency is composited on white (what a viewer shows).

    A mode Pillow cannot convert raises ImageError naming it.
    """
    try:
        return _to_rgb(image)
    except ValueError as exc:  # "conversion from X to Y not supported"
        raise ImageError(f"The image uses the pixel mode {image.mode[:16]}, which cannot be converted to RGB "
                         f"({str(exc)[:80]}); save it as an ordinary RGB or greyscale image.") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = _to_8bit(image)
    if image.mode == "La":  # premultiplied; Pillow converts it only to LA
        image = image.convert("LA")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode != "RGB":
        # CMYK, YCbCr, LAB, HSV, "1", "L", palette: Pillow's converters handle each (CMYK via its ICC-free
        # formula, which is what browsers do for untagged files).
        image = image.convert("RGB")
    return image


def decode_image(data: bytes, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode uploaded bytes into an RGB image: EXIF rotation applied, GIF first frame, limits enforced.

    Raises ImageError (one sentence) for empty, oversized, non-image, unsupported, truncated or bomb input.
    """
    if not data:
        raise ImageError("The uploaded file is empty; choose an image file (PNG, JPEG, WebP, BMP, GIF or TIFF).")
    if len(data) > MAX_BYTES:
        raise ImageError(f"The file is {len(data) / 2**20:.0f} MB, above the {MAX_BYTES // 2**20} MB limit; "
                         "upload a smaller image.")
    try:
        with warnings.catch_warnings():
            # Pillow warns (not raises) between its two bomb limits: make that an error too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            fmt = image.format or "unknown"
            if fmt not in FORMATS:
                raise ImageError(f"This is a {fmt} image, which ResNet Explorer does not read; "
                                 "convert it to PNG, JPEG, WebP, BMP, GIF or TIFF.")
            check_size(*image.size, max_pixels=max_pixels)
            image.seek(0)  # animated GIF/WebP/TIFF, multi-page TIFF: the first frame only
            check_size(*image.size, max_pixels=max_pixels)
            image.load()
            image = ImageOps.exif_transpose(image)
            return to_rgb(image).copy()
    except ImageError:
        raise
    except MemoryError:
        raise ImageError("The image could not be decoded within the memory available; downscale it or "
                         "save it as an ordinary 8-bit PNG or JPEG first.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("The image declares more pixels than the safety limit against decompression bombs "
                         "allows; downscale it first.") from None
    except UnidentifiedImageError:
        raise ImageError("This file is not an image ResNet Explorer can read; upload a PNG, JPEG, WebP, BMP, "
                         "GIF or TIFF file.") from None
    except Exception as exc:  # noqa: BLE001 - the size was checked first, so any decoder failure is bad bytes
        # Pillow reports truncated data as OSError("image file is truncated ..."), damaged headers as
        # SyntaxError/ValueError/struct.error/EOFError, damaged EXIF as KeyError/TypeError: all mean the bytes
        # are broken.
        raise ImageError(f"The image file is truncated or damaged ({type(exc).__name__}); "
                         "re-export or re-download it and try again.") from None


@cache
def _sample_array(name: str) -> np.ndarray:
    import skimage.data

    return getattr(skimage.data, name)()


def sample_images() -> dict[str, Image.Image]:
    """Bundled photos from scikit-image (no network): chelsea (a cat), coffee, astronaut, rocket."""
    return {name: Image.fromarray(_sample_array(name)).convert("RGB") for name in SAMPLE_NAMES}


def model_view(image: Image.Image, prep: Preprocessing) -> Image.Image:
    """The RGB image exactly as the model sees it (resized shorter side, centre crop), before normalising.

    Raises ImageError for an image over the pixel or aspect-ratio limit (``check_size``); ``prep`` is
    bounded when it is made (``Preprocessing``), so the result is at most ``prep.crop`` pixels square.

    Overlays are drawn on this view so each heat-map pixel sits over the pixel it explains.
    """
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    check_size(*image.size)  # before any resize: the aspect ratio bounds what the resize makes of it
    image = to_rgb(image)
    image = TF.resize(image, prep.resize, interpolation=InterpolationMode.BILINEAR, antialias=True)
    return TF.center_crop(image, prep.crop)


def preprocess(image: Image.Image, prep: Preprocessing) -> torch.Tensor:
    """PIL image -> float tensor (1, 3, crop, crop), normalised with ``prep.mean`` / ``prep.std``.

    Same steps and order as torchvision's ``ImageClassification`` transform (bilinear antialiased resize of
    the shorter side, centre crop, scale to [0, 1], normalise), so torchvision weights see what they expect.
    """
    from torchvision.transforms import functional as TF

    view = model_view(image, prep)
    tensor = TF.pil_to_tensor(view).float().div(255.0)
    tensor = TF.normalize(tensor, list(prep.mean), list(prep.std))
    return tensor.unsqueeze(0)


def to_pil(images: torch.Tensor, index: int = 0) -> Image.Image:
    """An unnormalised (N, 3, H, W) or (3, H, W) tensor in [0, 1] -> RGB image (for Shapes samples)."""
    tensor = images[index] if images.dim() == 4 else images
    array = (tensor.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(array, mode="RGB")


def preprocess_mask(mask: np.ndarray | torch.Tensor, prep: Preprocessing) -> np.ndarray:
    """An object mask (H, W) of an image -> bool (crop, crop): the same resize and centre crop as ``model_view``
    gives the image, so the mask lies on the pixels the model sees (bilinear, then thresholded at one half)."""
    array = np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask, dtype=np.uint8) * 255
    view = model_view(Image.fromarray(array, mode="L").convert("RGB"), prep)
    return np.asarray(view)[..., 0] >= 128
