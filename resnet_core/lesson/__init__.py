"""The "Why residuals work" lesson: every number and every comparative sentence it shows comes from here.

Three rooms behind one face (import from ``resnet_core.lesson``, never from the rooms):

- :mod:`.steps`: the eight steps' computations on small CIFAR-style nets and on the trained Shapes pair
  (the embedded demo pair or one trained here through the race registry);
- :mod:`.trained`: steps 6 and 7 (loss landscape, lesion study) on any trained net: a run's checkpoint, an
  upload or an embedded demo, measured on the data set it was trained on;
- :mod:`.words`: the sentences that compare measured values, built from the values as shown, so a sentence
  cannot contradict the chart beside it.
"""

from .steps import (
    CURVE_RUN_NAMES,
    CURVES_RACE_NAME,
    DEMO_PAIR,
    LEARNED_OVER_CHANCE,
    PAIR_LABELS,
    PAIR_RACE_NAME,
    PAIR_RECIPE,
    PAPER_CITATION,
    PAPER_TABLE2_TOP1,
    TrainedPair,
    blocks_of,
    choose_pair,
    curves_race,
    demo_pair_ready,
    depth_ratios,
    estimate_race_seconds,
    find_curves_run,
    find_pair_run,
    forward_seconds,
    gradcam_shapes,
    gradient_split,
    identity_check,
    label,
    landscape_kept,
    landscape_pair,
    landscape_passes,
    lesion_pair,
    lesion_passes,
    lesion_seconds,
    load_pair,
    pair_race,
    path_summary,
    race_problem,
    shapes_batch,
    train_race,
    unrolled_paths,
    wait_for_race,
)
from .trained import (
    AnyNetError,
    AnyNetPlan,
    AnyNetResult,
    TrainedModel,
    data_for,
    landscape_of,
    lesion_of,
    measure_any,
    model_batch,
    open_trained,
    plan_any,
    trained_checkpoints,
    trained_models,
)
from .words import (
    accuracy_sentence,
    accuracy_text,
    depth_sentence,
    duration,
    identity_sentence,
    landscape_cost_sentence,
    landscape_sentence,
    lesion_sentence,
    paper_table2_sentence,
    paths_sentence,
    split_sentence,
)

__all__ = [
    "AnyNetError", "AnyNetPlan", "AnyNetResult", "CURVES_RACE_NAME", "CURVE_RUN_NAMES", "DEMO_PAIR",
    "LEARNED_OVER_CHANCE", "PAIR_LABELS", "PAIR_RACE_NAME", "PAIR_RECIPE", "PAPER_CITATION",
    "PAPER_TABLE2_TOP1", "TrainedModel", "TrainedPair", "accuracy_sentence", "accuracy_text", "duration", "identity_sentence", "landscape_cost_sentence", "paths_sentence", "split_sentence", "blocks_of", "choose_pair",
    "curves_race", "data_for", "demo_pair_ready", "depth_ratios", "depth_sentence", "estimate_race_seconds",
    "find_curves_run", "find_pair_run", "forward_seconds", "gradcam_shapes", "gradient_split",
    "identity_check", "label", "landscape_kept", "landscape_of", "landscape_pair", "landscape_passes", "landscape_sentence",
    "lesion_of", "lesion_pair", "lesion_seconds", "lesion_passes", "lesion_sentence", "load_pair", "measure_any", "model_batch",
    "open_trained", "pair_race", "paper_table2_sentence", "path_summary", "plan_any", "race_problem",
    "shapes_batch", "train_race", "trained_checkpoints", "trained_models", "unrolled_paths", "wait_for_race",
]
