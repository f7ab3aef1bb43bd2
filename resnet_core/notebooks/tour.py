"""The tour: the library's main calls in one notebook (no page of the app; ``notebooks/tour.ipynb``)."""

from __future__ import annotations

from typing import Any

from nbformat import NotebookNode

from ..page_specs import PageSpec
from ._cells import code, md, summary_cell

TITLE = "A tour of resnet_core"
SPEC = PageSpec("tour", ())  # a notebook without settings


def cells(settings: dict[str, Any]) -> list[NotebookNode]:
    return [
        md("""\
## What this tour shows
The same library calls the app makes: build every ResNet and its plain twin, read its table, split the gradient
between shortcut and branch, race plain against residual, and ask Grad-CAM where it looks. Everything runs
offline; `SMALL` sweeps two shallower depths and races for 5 steps instead of 30."""),
        code('''\
import torch

import resnet_core
from resnet_core import cam, probes, train
from resnet_core.data import make_shapes

models = resnet_core.list_models()
models[["name", "family", "depth", "params", "macs"]]'''),
        md("""\
## Architecture: the paper's Table 1, computed
MACs come from `torch.utils.flop_counter`'s formulas, for models built on the meta device (no weights allocated)."""),
        code('''\
with torch.device("meta"):
    resnet50 = resnet_core.build("resnet50")
resnet_core.stage_table(resnet50, 224)'''),
        md("""\
## Gradient flow: shortcut versus branch
`path_gradients` splits every block's input gradient exactly into the part that came back through the
shortcut and the part through the residual branch (they add up to the total)."""),
        code('''\
net = resnet_core.build("resnet20", seed=0).to(DEVICE)
inputs, target = probes.shapes_batch(net, n=16)
split = probes.path_gradients(net, inputs, target, train=True)
split[["block", "shortcut", "total_norm", "shortcut_norm", "branch_norm", "sum_error"]]'''),
        code('''\
deep = 32 if SMALL else 56
sweep = probes.depth_sweep([20, deep], batch=16, width=8)
sweep[["label", "ratio"]]'''),
        md("""\
## A tiny training race
Plain-20 against ResNet-20 on the built-in Shapes set, in lockstep on identical batches."""),
        code('''\
steps = 5 if SMALL else 30
config = train.RaceConfig(racers=(train.RacerSpec("resnet20", residual=False), train.RacerSpec("resnet20")),
                          steps=steps, batch_size=32, width=4, image_size=16, eval_every=steps, eval_samples=200,
                          n_train=1024, n_test=256, device=str(DEVICE))
race = train.Race(config).train()
race.summary()'''),
        md("""\
## Grad-CAM on a Shapes image
The residual racer explains its top class on one held-out image; `heatmap` is normalised to [0, 1]."""),
        code('''\
shapes = make_shapes(4, image_size=16, seed=123)
model = race.racers[1].model.eval()
image = shapes.normalized()[:1].to(DEVICE)
explanation = cam.explain(model, image, target=None, layer=cam.default_layer(model))
explanation.heatmap.shape, explanation.layer, explanation.class_index'''),
        summary_cell('''{
    "resnet18_params": int(models.set_index("name").loc["resnet18", "params"]),
    "resnet50_stage_macs": int(resnet_core.stage_table(resnet50, 224)["macs"].sum()),
    "max_split_error": float(split["sum_error"].max()),
    "deep": deep,
    "plain_over_resnet": float(sweep.set_index("label").loc[f"Plain-{deep}", "ratio"]
                               / sweep.set_index("label").loc[f"ResNet-{deep}", "ratio"]),
    "race_labels": list(race.summary()["racer"]),
    "race_steps": [int(s) for s in race.summary()["steps"]],
    "heatmap_shape": list(explanation.heatmap.shape),
    "heatmap_range": [float(explanation.heatmap.min()), float(explanation.heatmap.max())],
}'''),
    ]
