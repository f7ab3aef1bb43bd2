"""The Gradient flow page as a notebook: the gradient at every block input of the chosen net and its twin, its
exact split between shortcut and branch, and the depth sweep of fresh plain and residual nets."""

from __future__ import annotations

from typing import Any

from nbformat import NotebookNode

from ..page_specs import GRADIENT_FLOW
from ._cells import code, md, model_cell, options_cell, summary_cell

TITLE = "Gradient flow"
SPEC = GRADIENT_FLOW


def cells(settings: dict[str, Any]) -> list[NotebookNode]:
    return [
        md("""\
## What this view shows
The gradient of the loss with respect to every block's *input*, measured exactly on one batch of Shapes images,
in the chosen net and its twin (shortcuts flipped). Read the norm chart right to left, the way the gradient
travels: a flat line means every block receives a gradient of the same size. In a residual block the gradient
at the sum passes straight back to x through the shortcut **plus** what comes back through the branch F; the
split chart shows each part's share, block by block (together 100%). The depth sweep divides the gradient norm
at the first block input by the one at the last, for fresh nets of growing depth: with BatchNorm, plain nets
make it *explode* toward the input, and deeper is worse. `SMALL` sweeps two depths instead of five."""),
        options_cell(),
        code('''\
# Trained weights can be measured as they are or at initialisation; a net at initialisation is compared with
# its twin, a trained one alone (a checkpoint holds one trained net).
from resnet_core.weights import effective_weights

trained = effective_weights(SETTINGS["weights"], arch, options) != "random"
state = SETTINGS["gf_state"] if trained else "init"
if state == "init":
    SETTINGS = {**SETTINGS, "weights": "random"}
print(f"State: {state}")'''),
        model_cell(),
        code('''\
from resnet_core.plots.instruments import gradient_norm_figure
from resnet_core.probes import bn_train_flag, compare_path_gradients, first_last_ratio, shapes_batch

batch, bn = SETTINGS["gf_batch"], SETTINGS["gf_bn"]
label = display_name(arch, options["residual"])
twin = None
if state == "init":
    twin_options = {**options, "residual": not options["residual"]}
    twin = load_model(arch, twin_options, "random").to(DEVICE)
    labels = (label, display_name(arch, twin_options["residual"]))
else:
    labels = (f"{label} (trained)",)
inputs, target = shapes_batch(model, n=batch)
frame = compare_path_gradients(model, twin, inputs, target, labels=labels, train=bn_train_flag(bn))
ratios = first_last_ratio(frame)
gradient_norm_figure(frame).show()
print("; ".join(f"{net}: first/last = {ratio:.3g}" for net, ratio in ratios.items()))'''),
        md("## Shortcut versus residual branch, block by block"),
        code('''\
from resnet_core.plots.instruments import path_split_figure
from resnet_core.probes import split_summary

residual_rows = frame[frame["residual"]]
split = split_summary(residual_rows) if not residual_rows.empty else None
if split is None:
    print("The plain net has no shortcut, so there is nothing to split.")
else:
    path_split_figure(residual_rows).show()
    print(f"The shortcut carries {split['shortcut_share']:.0%} and the branch {split['branch_share']:.0%} on average "
          f"over {split['blocks']} blocks (largest deviation of shortcut + branch from the total: "
          f"{split['max_sum_error']:.1e}).")'''),
        md("## Depth sweep: why residuals"),
        code('''\
from resnet_core.models import get_spec
from resnet_core.plots.instruments import depth_sweep_figure
from resnet_core.probes import SWEEP_SETTINGS, depth_sweep, sweep_summary

family = "imagenet" if get_spec(arch).stem == "imagenet" else "cifar"
depths = ((18, 34) if family == "imagenet" else (20, 32)) if SMALL else None
sweep = depth_sweep(depths, family=family, **SWEEP_SETTINGS[family])
deep = sweep_summary(sweep)
depth_sweep_figure(sweep).show()
print(f"At depth {deep['depth']}: plain {deep['plain']:.3g}, residual {deep['residual']:.3g}, "
      f"{deep['factor']:.3g} times apart.")'''),
        summary_cell('''{
    "state": state,
    "nets": list(ratios.index),
    "first_last": [float(r) for r in ratios],
    "split": None if split is None else {key: float(value) for key, value in split.items()},
    "sweep": {key: float(value) for key, value in deep.items()},
}'''),
    ]
