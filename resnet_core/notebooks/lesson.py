"""The "Why residuals work" lesson as a notebook: its eight steps with the same ``resnet_core.lesson`` calls, the
same fixed batches, seeds and sizes, and the same figures.

Steps 2, 3 and 5 are cheap and always run at the page's size (their numbers equal the page's with ``SMALL``
too); ``SMALL`` shrinks the depth sweep, the landscape grid, the lesion study and the Grad-CAM batch.
"""

from __future__ import annotations

from typing import Any

from nbformat import NotebookNode

from ..page_specs import LESSON, LESSON_GRIDS
from ._cells import code, md, summary_cell

TITLE = "Why residuals work"
SPEC = LESSON
GRIDS = LESSON_GRIDS

# The page's constants (pages/lesson.py; a test checks they agree): nets, batches, seeds and spans of each step.
CONSTANTS = '''\
# The lesson's fixed choices (the page's constants): the same nets, batches, seeds and spans give the same numbers.
import numpy as np
import pandas as pd
from IPython.display import display
from PIL import Image

from resnet_core import lesson

ARCH, BLOCK, WIDTH = "resnet20", "layer2.1", 16
DEPTHS, SWEEP_WIDTH, SWEEP_BATCH = (20, 32, 56), 8, 16
LANDSCAPE_BATCH, LANDSCAPE_SPAN, LANDSCAPE_SEED = 64, 1.0, 0
LESION_BATCH, MAX_REMOVED, SAMPLES = 128, 4, 6
CAM_SHOWN = 6
GRID = SETTINGS["lesson_grid"]
if SMALL:  # the heavy steps (4, 6, 7, 8) on less: seconds instead of a minute
    DEPTHS, SWEEP_BATCH = (20, 32), 8
    LANDSCAPE_BATCH, GRID = 16, 5
    LESION_BATCH, MAX_REMOVED, SAMPLES = 32, 2, 2
'''

STEP1 = '''\
# Step 1: the newest finished preset race in the runs folder (the quartet first), as on the page; without one,
# the training curves of the embedded demo models (Plain-20 and ResNet-20 on Shapes, one depth).
from resnet_core.plots.lesson import paper_table2_figure
from resnet_core.plots.training import race_figure
from resnet_core.runs import load_run
from resnet_core.train import degradation_note
from resnet_core.weights.demo import demo_history, demo_metrics

curves_id = lesson.find_curves_run()
if curves_id is not None:
    record = load_run(curves_id)
    curves_name, curves_steps = record.config.name, record.config.steps
    print(f"Training curves of {record.title} ({curves_steps} steps on Shapes, the same batches for every net).")
    print(degradation_note(record.config, record.summary)
          or "This run does not show degradation between two plain depths (the quartet can).")
    figure = race_figure(record.history, record.evals, total_steps=curves_steps)
else:
    recipe = demo_metrics()["recipe"]
    curves_name, curves_steps = "embedded demo models", int(recipe["steps"])
    print("No finished preset race in the runs folder: the curves of the embedded demo models (Plain-20 and "
          f"ResNet-20, {curves_steps} steps on Shapes). One depth cannot show degradation: race the quartet (the "
          "Training race notebook, tr_preset = 'The degradation quartet').")
    figure = race_figure(pd.DataFrame(demo_history()), None, total_steps=curves_steps)
figure'''

TABLE2 = '''\
# The paper's reference (quoted, not measured): ImageNet top-1 error, He et al. 2015, Table 2.
print(lesson.paper_table2_sentence(lesson.PAPER_TABLE2_TOP1))
paper_table2_figure(lesson.PAPER_TABLE2_TOP1)'''

STEP2 = '''\
# Step 2: four versions of one block fed the input x it really receives in the net.
from resnet_core.plots.lesson import identity_figure

identity = lesson.identity_check(ARCH, BLOCK, width=WIDTH)
rows = identity.set_index(["residual", "zero_init"])
res_zero, plain_zero = rows.loc[(True, True)], rows.loc[(False, True)]
print(f"Residual block, last BN at zero: max |y - x| = {res_zero['max_abs_diff']:.3g}; plain block: "
      f"{plain_zero['max_abs_diff']:.3g} (max |x| = {plain_zero['max_abs_input']:.3g})")
identity_figure(identity)'''

STEP3 = '''\
# Step 3: the gradient at each block input of a fresh net, split exactly into shortcut and branch.
from resnet_core.plots.lesson import split_figure

split = lesson.gradient_split(ARCH, width=WIDTH, zero_init_residual=SETTINGS["lesson_zero_init"])
shares = split["shortcut_share"]
print(f"The shortcut's share runs from {shares.min():.0%} to {shares.max():.0%} across the {len(split)} blocks; "
      f"shortcut + branch = total (largest relative difference {split['sum_error'].max():.1e}).")
split_figure(split)'''

STEP4 = '''\
# Step 4: first-block / last-block gradient norm at initialisation, plain against residual, per depth.
from resnet_core.plots.lesson import depth_figure

ratios = lesson.depth_ratios(DEPTHS, width=SWEEP_WIDTH, batch=SWEEP_BATCH)
plain = ratios[~ratios["residual"]].set_index("depth")["ratio"]
residual = ratios[ratios["residual"]].set_index("depth")["ratio"]
print(lesson.depth_sentence(ratios, batch=SWEEP_BATCH, width=SWEEP_WIDTH))
depth_figure(ratios)'''

STEP5 = '''\
# Step 5: n blocks unroll into 2^n paths; a path's length is Binomial(n, 1/2).
from resnet_core.plots.lesson import paths_figure

n_blocks = SETTINGS["lesson_blocks"]
paths = lesson.path_summary(n_blocks)
print(f"{n_blocks} blocks: {paths['paths']:,} paths, mean length {paths['mean_length']:.1f}, "
      f"{paths['share_within_1std']:.0%} within {paths['std_length']:.1f} of it; the plain net's one path is "
      f"{paths['longest_share']:.2g} of them.")
paths_figure(lesson.unrolled_paths(n_blocks))'''

PAIR = '''\
# Steps 6-8 use a trained Plain-20 and ResNet-20: a run of this machine in which both learned, else the embedded
# demo models, as on the page (trained here, with the lesson's recipe, only when there is neither).
pair_id = lesson.choose_pair()
if pair_id is None:
    pair_id = lesson.wait_for_race(lesson.train_race(lesson.pair_race(**({"steps": 30} if SMALL else {}))))
pair = lesson.load_pair(pair_id)
print("The embedded demo models." if pair_id == lesson.DEMO_PAIR else
      f"Plain-20 and ResNet-20 of {load_run(pair_id).title}.")
degraded = degradation_note(record.config, record.summary) if curves_id is not None else None
print(lesson.accuracy_sentence(pair.accuracy, pair.chance, sample=pair.accuracy_sample, degradation=degraded,
                                     step1_measured=curves_id is not None))'''

STEP6 = '''\
# Step 6: the loss around the trained weights along two random filter-normalised directions (Li et al. 2018).
from resnet_core.plots.landscape import line_figure, surface_figure

x, y = lesson.shapes_batch("train", LANDSCAPE_BATCH, pair.image_size)[:2]
surfaces, lines = lesson.landscape_pair(pair, x, y, steps=GRID, span=LANDSCAPE_SPAN, seed=LANDSCAPE_SEED)
rough = {net: float(rows["loss"].max() / rows["loss"].min()) for net, rows in lines.groupby("net")}
print(lesson.landscape_sentence(lines))
display(surface_figure(surfaces))
line_figure(lines)'''

STEP7 = '''\
# Step 7: each block removed in turn at test time (Veit et al. 2016), then k random blocks together.
from resnet_core.plots.lesion import curve_figure, study_figure

x, y = lesson.shapes_batch("test", LESION_BATCH, pair.image_size)[:2]
studies, lesion_curves = lesson.lesion_pair(pair, x, y, max_removed=MAX_REMOVED, samples=SAMPLES)
lesions = studies.groupby("net").agg(full=("full_accuracy", "first"), after=("accuracy", "mean"))
print(lesson.lesion_sentence(studies, pair.chance, sample=f"{LESION_BATCH} held-out Shapes images"))
display(study_figure(studies, chance=pair.chance))
curve_figure(lesion_curves, chance=pair.chance)'''

STEP8 = '''\
# Step 8: Grad-CAM of the trained ResNet-20 for each image's true class on held-out Shapes (white: the object).
import warnings

from resnet_core.plots.cam import pointing_figure

# captum (behind resnet_core.cam) imports tqdm's notebook progress bars, which warn without ipywidgets; none is drawn.
warnings.filterwarnings("ignore", message="IProgress not found")

overlays, pointing, captions = lesson.gradcam_shapes(pair.models["ResNet-20"], count=CAM_SHOWN)
print(" | ".join(captions))
display(Image.fromarray(np.concatenate([np.asarray(o) for o in overlays], axis=1)))
pointing_figure(pointing)'''

ANY = '''\
# The same instruments on any trained net (the page's last section): costed first, then measured.
any_model = SETTINGS["lesson_any_model"]
any_numbers = None
if any_model:
    any_data = SETTINGS["lesson_any_data"]
    plan = lesson.plan_any(lesson.open_trained(any_model), dataset=None if any_data == "recorded" else any_data,
                           steps=5 if SMALL else SETTINGS["lesson_any_grid"], landscape_batch=LANDSCAPE_BATCH,
                           lesion_batch=LESION_BATCH, max_removed=MAX_REMOVED, samples=SAMPLES, seed=LANDSCAPE_SEED)
    print(plan.sentence())
    result = lesson.measure_any(plan)
    print(f"{result.label} on {LESION_BATCH} held-out {result.dataset} images: accuracy {result.accuracy:.1%} with "
          f"every block (chance is {result.chance:.0%}).")
    any_numbers = {"label": result.label, "dataset": result.dataset, "accuracy": result.accuracy}
    display(surface_figure(result.surface))
    display(line_figure(result.line))
    display(study_figure(result.study, chance=result.chance))
    display(curve_figure(result.curve, chance=result.chance))
else:
    print("No trained net chosen: set SETTINGS['lesson_any_model'] (demo:resnet20, or ckpt:<file in the runs folder> of a "
          "checkpoint) and run this cell again.")'''

SUMMARY = (
    '{"curves": curves_name, "identity_residual_zero": float(res_zero["max_abs_diff"]), '
    '"identity_plain_zero": float(plain_zero["max_abs_diff"]), '
    '"split_share": [float(shares.min()), float(shares.max())], "split_error": float(split["sum_error"].max()), '
    '"depth_plain": {int(d): float(v) for d, v in plain.items()}, '
    '"depth_residual": {int(d): float(v) for d, v in residual.items()}, '
    '"paths": str(paths["paths"]), "mean_length": paths["mean_length"], '
    '"pair": pair_id, "pair_accuracy": pair.accuracy, "grid": GRID, "rough": rough, '
    '"lesion_full": lesions["full"].to_dict(), "lesion_after": lesions["after"].to_dict(), '
    '"pointing": dict(zip(pointing["measure"], pointing["value"].astype(float), strict=True)), "any": any_numbers}')


def cells(settings: dict[str, Any]) -> list[NotebookNode]:
    """The lesson's eight steps."""
    return [
        code(CONSTANTS),
        md("## 1. The degradation problem, measured\n\nHe et al. trained plain nets of 18 and 34 layers and found "
           "the deeper one *worse*, in training error too. A plain net whose training loss stays high while its "
           "residual twin learns is the degradation problem; a deeper plain net ending above a shallower one is "
           "the paper's Fig. 6."),
        code(STEP1),
        code(TABLE2),
        md("## 2. A residual block can be the identity\n\nA residual block computes y = ReLU(x + F(x)). With the "
           "last batch-norm scale of F at zero, F(x) = 0 and y = x; the plain block with the same zeroed layer "
           "outputs zeros. A plain block must *learn* the identity; a residual block only pushes F towards zero."),
        code(STEP2),
        md("## 3. The gradient of y = x + F(x) is 1 + dF/dx\n\nThe **1** is the shortcut: whatever gradient reaches "
           "the sum reaches the block input unchanged, plus what the branch adds. `probes.path_gradients` splits it "
           "exactly (one backward pass, train-mode BN, cross-entropy on random labels)."),
        code(STEP3),
        md("## 4. Depth: what happens to the gradient on its way down\n\nThe norm of the gradient at the first block "
           "divided by the norm at the last block, at initialisation (train-mode batch norm, random labels)."),
        code(STEP4),
        md("## 5. The unrolled view: many paths, mostly short\n\nEach block offers two ways through: the shortcut "
           "or the branch (Veit et al. 2016)."),
        code(STEP5),
        md("## 6. The loss landscape of two trained nets\n\nSteps 6-8 need a plain net and its residual twin that "
           "have both learned: a net at chance sits at an untrained point. What the landscape shows: how the loss "
           "changes around these weights along two random directions; what it does not prove: a 2-D slice of a "
           "space with tens of thousands of dimensions can miss any direction that matters."),
        code(PAIR),
        code(STEP6),
        md("## 7. An ensemble of shallow paths: the lesion study\n\nA residual block removed keeps its shortcut; a "
           "plain block becomes the identity, and is not removable where it changes the shape."),
        code(STEP7),
        md("## 8. What the net looks at\n\nThe pointing game counts how often the map's peak falls on the object."),
        code(STEP8),
        md("## The same instruments on any trained net\n\nSteps 6 and 7 on a checkpoint of a run, an uploaded "
           "checkpoint or an embedded demo, on the data set it was trained on."),
        code(ANY),
        summary_cell(SUMMARY),
    ]
