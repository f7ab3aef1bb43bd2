"""Grad-CAM and friends, faithfulness scores, overlays, and the checks that the maps are right.

``explain(model, image, target, layer, method)`` is the one call shape for every method (``METHODS``):
Guided Grad-CAM and integrated gradients (Captum), and, written on one tapped pass through the layer that records
a graph only from the layer on, Grad-CAM (equal to Captum's ``LayerGradCam``), Grad-CAM++, XGrad-CAM, HiResCAM,
LayerCAM, Eigen-CAM and Score-CAM (each agrees with the ``grad-cam`` package to Pearson >= 0.99; see ``methods``). ``faithfulness(model, image, explanations)``
scores maps on the user's image (deletion/insertion AUC, average drop, increase in confidence) and
``trust_sentence`` says which to trust; ``method_checks`` runs the pointing game and the randomisation cascade
for every method.

Instrument rules (../shared/DESIGN.md): every call holds the model's lock through ``preserved_state``
(train/eval flags, ``requires_grad`` and parameter ``.grad`` restored), Captum differentiates with
``torch.autograd.grad`` (parameter gradients untouched) and removes its hooks in ``finally``. Checks that
change weights (the randomisation cascade) work on a private deep copy, never on the shared model.

The package: ``methods`` (the registry behind ``explain``: one class per method), ``core`` (the Explanation, layer
choices, the target wrapper), ``overlays`` (colours, overlay, files), ``faithfulness`` (scores on one image) and
``checks`` (pointing game, randomisation cascade, the Shapes localisation check, both per method). Every name
is importable from ``resnet_core.cam``.

Localisation is proven two ways: the pointing game on held-out Shapes images with object masks, against
the chance of hitting the mask at random, and the model-randomisation cascade of Adebayo et al. (2018).
"""

from .checks import (
    SHAPES_CASCADE_IMAGES,
    SHAPES_CHECK_IMAGES,
    LocalisationReport,
    PointingResult,
    cam_batch,
    cascade_steps,
    direct_gradcam,
    gradcam_batch,
    localisation_check,
    localisation_numbers,
    method_checks,
    method_checks_on_sample,
    pointing_game,
    pointing_tolerance,
    randomization_cascade,
    shapes_check_images,
    shapes_examples,
    shapes_pointing,
)
from .core import (
    NO_EVIDENCE,
    CamError,
    Explanation,
    TargetModel,
    default_layer,
    layer_choices,
    predict,
    resolve_layer,
    stage_last_blocks,
)
from .explaining import LAYER_METHODS, explain, explain_layers, layer_channels
from .faithfulness import (
    MethodComparison,
    compare_methods,
    faithfulness,
    faithfulness_passes,
    impute,
    trust_sentence,
)
from .methods import (
    METHODS,
    REGISTRY,
    SCORECAM_BATCH,
    CamMethod,
    occlusion_passes,
    occlusion_window,
    principal_projection,
    register,
    scorecam_passes,
)
from .more_methods import KPCA_MAX_POSITIONS
from .overlays import COLORMAPS, colorize, colormap_lut, heatmap_npy, heatmap_png, image_png, overlay
from .relevance import batch_norm_pairs, check_canonizable, lrp_relevance
from .trust import (
    TRUST_CATEGORIES,
    TRUST_COLUMNS,
    TRUST_METRICS,
    category_leaders,
    completeness_gap,
    complexity,
    estimate_trust,
    invariance_change,
    pointing_hit,
    relevance_mass,
    sensitivities,
    sparseness,
    ssim,
    trust_explanations,
    trust_plan,
    trust_plan_sentence,
    trust_scores,
    trust_verdict,
)
from .words import methods_cost_sentence

__all__ = [
    "COLORMAPS",
    "CamError",
    "CamMethod",
    "Explanation",
    "LAYER_METHODS",
    "LocalisationReport",
    "MethodComparison",
    "METHODS",
    "NO_EVIDENCE",
    "PointingResult",
    "REGISTRY",
    "SCORECAM_BATCH",
    "SHAPES_CASCADE_IMAGES",
    "SHAPES_CHECK_IMAGES",
    "TargetModel",
    "cam_batch",
    "cascade_steps",
    "colorize",
    "compare_methods",
    "colormap_lut",
    "default_layer",
    "direct_gradcam",
    "explain",
    "explain_layers",
    "batch_norm_pairs",
    "check_canonizable",
    "lrp_relevance",
    "principal_projection",
    "KPCA_MAX_POSITIONS",
    "TRUST_CATEGORIES",
    "TRUST_COLUMNS",
    "TRUST_METRICS",
    "category_leaders",
    "completeness_gap",
    "complexity",
    "estimate_trust",
    "invariance_change",
    "pointing_hit",
    "relevance_mass",
    "sensitivities",
    "sparseness",
    "ssim",
    "trust_explanations",
    "trust_plan",
    "trust_plan_sentence",
    "trust_scores",
    "trust_verdict",
    "faithfulness",
    "faithfulness_passes",
    "gradcam_batch",
    "heatmap_npy",
    "heatmap_png",
    "image_png",
    "impute",
    "layer_channels",
    "layer_choices",
    "localisation_check",
    "localisation_numbers",
    "shapes_check_images",
    "shapes_pointing",
    "method_checks",
    "method_checks_on_sample",
    "methods_cost_sentence",
    "occlusion_passes",
    "occlusion_window",
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
    "trust_sentence",
]
