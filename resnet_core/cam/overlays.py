"""Overlays and files: colour lookup tables, the blended overlay, the map as PNG or .npy."""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image

from .core import CamError, Explanation

COLORMAPS = ("Jet", "Turbo", "Viridis", "Inferno", "Hot")


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
