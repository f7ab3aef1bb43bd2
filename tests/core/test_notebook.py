"""The tour notebook runs top to bottom on a real kernel and shows what the library computes."""

from __future__ import annotations

import json

import nbformat
import pytest
from nbclient import NotebookClient

import resnet_core
from tests.conftest import REPO

NOTEBOOK = REPO / "notebooks" / "tour.ipynb"


def test_notebook_is_generated_from_its_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_tour", REPO / "notebooks" / "make_tour.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    on_disk = nbformat.read(NOTEBOOK, as_version=4)
    assert [c.source for c in on_disk.cells] == [c.source for c in module.build().cells]


@pytest.mark.slow
def test_tour_notebook_executes_and_reports_real_values():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    summary = json.loads(notebook.cells[-1].outputs[0]["text"])

    assert summary["resnet18_params"] == resnet_core.count_params(resnet_core.build("resnet18"))
    assert summary["resnet50_stage_macs"] == resnet_core.count_macs(
        resnet_core.build("resnet50", seed=0), 224)
    assert summary["max_split_error"] < 1e-5
    assert summary["plain56_over_resnet56"] > 10
    assert summary["race_labels"] == ["Plain-20", "ResNet-20"] and summary["race_steps"] == [30, 30]
    assert summary["heatmap_shape"] == [16, 16]
    low, high = summary["heatmap_range"]
    assert 0.0 <= low <= high <= 1.0
