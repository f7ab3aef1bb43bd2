"""The Grad-CAM page's sentences about cost, built from the passes each method and score declares."""

from __future__ import annotations

from collections.abc import Sequence

from .faithfulness import faithfulness_passes
from .methods import SCORECAM_BATCH, occlusion_passes, occlusion_window, scorecam_passes


def methods_cost_sentence(methods: Sequence[str], *, steps: int, road: bool, layer: str, channels: int,
                          height: int, width: int) -> str:
    """What comparing ``methods`` costs in forward passes: the faithfulness scores (``steps`` deletion and
    insertion steps, ROAD too with ``road``), plus Score-CAM's per-channel passes at ``layer`` (``channels``
    channels; 0 when unknown) and occlusion's per-window passes on a ``height`` x ``width`` input."""
    said = (f"The faithfulness scores take {faithfulness_passes(len(methods), steps, road=road)} forward passes "
            f"({steps} deletion and insertion steps)")
    if "scorecam" in methods and channels:
        said += (f"; Score-CAM runs up to {scorecam_passes(channels)} more (one per channel of {layer}, "
                 f"{SCORECAM_BATCH} at a time)")
    if "occlusion" in methods:
        side, stride = occlusion_window(width)
        said += (f"; occlusion runs {occlusion_passes(height, width)} (one per {side}x{side} window, stride "
                 f"{stride})")
    return said + "."
