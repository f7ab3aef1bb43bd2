"""Run a notebook the way the tests do: on a fresh python3 kernel, in notebooks/, optionally at reduced size
(``SMALL = True`` in its parameters cell), and read the key numbers its last cell prints as one JSON line."""

from __future__ import annotations

import json
from typing import Any

import nbformat
from nbclient import NotebookClient

from resnet_core.notebooks import set_small
from tests.conftest import REPO

NOTEBOOKS = REPO / "notebooks"


def errors(notebook: nbformat.NotebookNode) -> list[str]:
    """Every error output of ``notebook``, as 'ename: evalue'."""
    return [f"{o.get('ename')}: {o.get('evalue')}" for cell in notebook.cells if cell.cell_type == "code"
            for o in cell.get("outputs", []) if o.output_type == "error"]


def key_numbers(notebook: nbformat.NotebookNode) -> dict[str, Any]:
    """The JSON line the last code cell printed."""
    last = [cell for cell in notebook.cells if cell.cell_type == "code"][-1]
    text = "".join(o.get("text", "") for o in last.outputs if o.output_type == "stream" and o.name == "stdout")
    return json.loads(text.strip().splitlines()[-1])


def execute(notebook: nbformat.NotebookNode, *, small: bool = True, timeout: int = 300) -> dict[str, Any]:
    """Clear ``notebook``'s outputs, set ``SMALL``, execute it on a fresh kernel (in place) and return its key
    numbers; a cell that raises fails the caller with the cell's error (nbclient's CellExecutionError)."""
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    set_small(notebook, small)
    NotebookClient(notebook, timeout=timeout, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    assert not errors(notebook), errors(notebook)
    return key_numbers(notebook)
