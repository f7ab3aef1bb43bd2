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

The package: ``methods`` (the registry behind ``explain``: one class per method), ``core`` (the Explanation, layer
choices, the target wrapper), ``overlays`` (colours, overlay, files) and ``checks`` (pointing game,
randomisation cascade, the Shapes localisation check). Every name is importable from ``resnet_core.cam``.

Localisation is proven two ways: the pointing game on held-out Shapes images with object masks, against
the chance of hitting the mask at random, and the model-randomisation cascade of Adebayo et al. (2018).
"""

from .checks import (
    SHAPES_CHECK,
    LocalisationReport,
    PointingResult,
    cascade_steps,
    direct_gradcam,
    gradcam_batch,
    localisation_check,
    pointing_game,
    pointing_tolerance,
    randomization_cascade,
    shapes_examples,
    train_shapes_model,
)
from .core import (
    NO_EVIDENCE,
    CamError,
    Explanation,
    default_layer,
    layer_choices,
    predict,
    resolve_layer,
    stage_last_blocks,
)
from .core import _TargetModel as _TargetModel  # the tests drive Captum with it directly
from .methods import (
    LAYER_METHODS,
    METHODS,
    REGISTRY,
    SCORECAM_BATCH,
    CamMethod,
    explain,
    explain_layers,
    register,
    scorecam_passes,
)
from .overlays import COLORMAPS, colorize, colormap_lut, heatmap_npy, heatmap_png, image_png, overlay

__all__ = [
    "COLORMAPS",
    "LAYER_METHODS",
    "METHODS",
    "NO_EVIDENCE",
    "REGISTRY",
    "SCORECAM_BATCH",
    "SHAPES_CHECK",
    "CamError",
    "CamMethod",
    "Explanation",
    "LocalisationReport",
    "PointingResult",
    "cascade_steps",
    "colorize",
    "colormap_lut",
    "default_layer",
    "direct_gradcam",
    "explain",
    "explain_layers",
    "gradcam_batch",
    "heatmap_npy",
    "heatmap_png",
    "image_png",
    "layer_choices",
    "localisation_check",
    "overlay",
    "pointing_game",
    "pointing_tolerance",
    "predict",
    "randomization_cascade",
    "register",
    "resolve_layer",
    "scorecam_passes",
    "shapes_examples",
    "stage_last_blocks",
    "train_shapes_model",
]
