"""The Architecture page as a notebook: the paper's Table 1, where the parameters and MACs are, the shortcuts
block by block, the plain twin, BasicBlock vs Bottleneck, and every architecture."""

from __future__ import annotations

from typing import Any

from nbformat import NotebookNode

from ..page_specs import ARCHITECTURE
from ._cells import code, md, options_cell, summary_cell

TITLE = "Architecture"
SPEC = ARCHITECTURE
# The page's BasicBlock/Bottleneck comparison width (pages/architecture.py COMPARISON_CHANNELS).
COMPARISON_CHANNELS = 256


def cells(settings: dict[str, Any]) -> list[NotebookNode]:
    return [
        md("""\
## What this view shows
The chosen net and its plain twin (the same layers without shortcuts), built on PyTorch's **meta device**:
shapes, parameters and multiply-accumulates (MACs, from `torch.utils.flop_counter`'s formulas) without allocating
a single weight, so even ResNeXt-101 is described at once (a net as small as the CIFAR ones is run as a zero-filled
copy on the CPU, which is quicker still). Read the stage table as the paper's Table 1 (ImageNet nets) or
its CIFAR-10 table of section 4.2 (CIFAR nets): one row per stage, its output size, its block recipe times its repeats. The block diagram marks each shortcut: identity
(solid), projection (dashed, a 1x1 convolution where the shape changes) or zero-padded identity (dotted, option A).
`SMALL` skips the list of every architecture (it builds all of them)."""),
        options_cell(),
        code('''\
import torch

import resnet_core
from resnet_core.describe import architecture_report, block_comparison
from resnet_core.models import get_spec
from resnet_core.plots.architecture import (
    block_comparison_figure,
    block_diagram_figure,
    layer_figure,
    model_list_figure,
    stage_figure,
    twin_figure,
)

# Meta-device models: the net and its twin (shortcuts flipped), as the page builds them.
with torch.device("meta"):
    model = resnet_core.build(arch, seed=0, **options)
    twin = resnet_core.build(arch, seed=0, **{**options, "residual": not options["residual"]})
report = architecture_report(model, twin, get_spec(arch).input_size)
me = report.twin.iloc[0]  # this net's totals
print(f"{report.label}: {me['depth']} weighted layers, {int(me['params']):,} parameters, "
      f"{int(me['macs']) / 1e9:.3f} G MACs at {report.input_size}x{report.input_size}, {me['blocks']} blocks")'''),
        md("## Stage table (the paper's Table 1 for an ImageNet net, its section 4.2 table for a CIFAR net)"),
        code("report.stages"),
        md("## Where the parameters and the computation are"),
        code("stage_figure(report.stages).show()\nlayer_figure(report.layers).show()"),
        md("## Shortcuts, block by block"),
        code('''\
kinds = report.blocks["shortcut"].value_counts()
print(dict(kinds))
block_diagram_figure(report.blocks).show()
report.blocks'''),
        md("## Residual net and its plain twin\nThe plain twin keeps every layer and removes the shortcuts."),
        code("twin_figure(report.twin).show()\nreport.twin"),
        md(f"## BasicBlock vs Bottleneck at {COMPARISON_CHANNELS} channels\n"
           "Counted from real modules: why ResNet-50 and deeper use bottlenecks (the paper's Fig. 5)."),
        code(f'''\
comparison = block_comparison({COMPARISON_CHANNELS})
block_comparison_figure(comparison).show()
comparison'''),
        md("## Every architecture"),
        code('''\
models = None if SMALL else resnet_core.list_models()
if models is not None:
    model_list_figure(models, highlight=arch).show()
    display(models[["label", "name", "family", "depth", "block", "stages", "params", "macs", "input_size"]])'''),
        summary_cell('''{
    "label": report.label,
    "depth": int(me["depth"]),
    "params": int(me["params"]),
    "macs": int(me["macs"]),
    "blocks": int(me["blocks"]),
    "shortcuts": {kind: int(n) for kind, n in kinds.items()},
    "twin_label": str(report.twin.iloc[1]["label"]),
    "twin_params": int(report.twin.iloc[1]["params"]),
    "stage_params": [int(p) for p in report.stages["params"]],
    "conv_weights": {row.block: int(row.conv_weights) for row in comparison.itertuples()},
    "models": None if models is None else len(models),
}'''),
    ]
