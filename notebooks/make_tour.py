"""Writes notebooks/tour.ipynb from the cells below (run it after editing them; the tests execute the notebook)."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CELLS = [
    ("md", """# A tour of `resnet_core`

The same library calls the app makes, in a notebook: build every ResNet and its plain twin, read its table,
split the gradient between shortcut and branch, race plain against residual, and ask Grad-CAM where it looks.
Everything runs offline on a laptop CPU in well under a minute."""),
    ("code", """import json

import torch

import resnet_core
from resnet_core import cam, probes, train
from resnet_core.data import make_shapes

torch.manual_seed(0)
models = resnet_core.list_models()
models[["name", "family", "depth", "params", "macs"]]"""),
    ("md", """## Architecture: the paper's Table 1, computed
MACs come from `torch.utils.flop_counter` on the meta device (no weights are allocated)."""),
    ("code", """with torch.device("meta"):
    resnet50 = resnet_core.build("resnet50")
resnet_core.stage_table(resnet50, 224)"""),
    ("md", """## Gradient flow: shortcut versus branch
`path_gradients` splits every block's input gradient exactly into the part that came back through the
shortcut and the part through the residual branch (they add up to the total)."""),
    ("code", """net = resnet_core.build("resnet20", seed=0)
inputs, target = probes.shapes_batch(net, n=16)
split = probes.path_gradients(net, inputs, target, train=True)
split[["block", "shortcut", "total_norm", "shortcut_norm", "branch_norm", "sum_error"]]"""),
    ("code", """sweep = probes.depth_sweep([20, 56], batch=16, width=8)
sweep[["label", "ratio"]]"""),
    ("md", """## A tiny training race
Plain-20 against ResNet-20 on the built-in Shapes set, in lockstep on identical batches."""),
    ("code", """config = train.RaceConfig(racers=(train.RacerSpec("resnet20", residual=False), train.RacerSpec("resnet20")),
                         steps=30, batch_size=32, width=4, image_size=16, eval_every=30, eval_samples=200,
                         n_train=1024, n_test=256, device="cpu")
race = train.Race(config).train()
race.summary()"""),
    ("md", """## Grad-CAM on a Shapes image
The residual racer explains its top class on one held-out image; `heatmap` is normalised to [0, 1]."""),
    ("code", """shapes = make_shapes(4, image_size=16, seed=123)
model = race.racers[1].model.eval()
image = shapes.normalized()[:1]
explanation = cam.explain(model, image, target=None, layer=cam.default_layer(model))
explanation.heatmap.shape, explanation.layer, explanation.class_index"""),
    ("code", """print(json.dumps({
    "resnet18_params": int(models.set_index("name").loc["resnet18", "params"]),
    "resnet50_stage_macs": int(resnet_core.stage_table(resnet50, 224)["macs"].sum()),
    "max_split_error": float(split["sum_error"].max()),
    "plain56_over_resnet56": float(sweep.set_index("label").loc["Plain-56", "ratio"]
                                   / sweep.set_index("label").loc["ResNet-56", "ratio"]),
    "race_labels": list(race.summary()["racer"]),
    "race_steps": [int(s) for s in race.summary()["steps"]],
    "heatmap_shape": list(explanation.heatmap.shape),
    "heatmap_range": [float(explanation.heatmap.min()), float(explanation.heatmap.max())],
}))"""),
]


def build() -> nbformat.NotebookNode:
    cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in CELLS]
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


if __name__ == "__main__":
    nbformat.write(build(), Path(__file__).with_name("tour.ipynb"))
