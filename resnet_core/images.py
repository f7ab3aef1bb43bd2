"""Uploaded bytes -> a safe RGB image -> the tensor a model expects.

Every way an upload can go wrong (not an image, a format we don't take, truncated bytes, a decompression
bomb) raises :class:`ImageError`, whose message is one sentence a user can act on. Nothing else escapes.
"""

from __future__ import annotations

import io
import warnings
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

if TYPE_CHECKING:  # weights imports this module's names lazily; avoid a cycle at import time
    from .weights import Preprocessing

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


class ImageError(ValueError):
    """A user-facing problem with an image; ``str(error)`` is one sentence saying what to do."""


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
