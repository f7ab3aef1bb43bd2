"""The Training race and lesson notebooks run on a fresh kernel at reduced size (SMALL) and print the numbers the
library computes for the same settings; the race's live figure and its controls work in the kernel."""

from __future__ import annotations

import ast
import base64
import json
from dataclasses import replace

import nbformat
import numpy as np
import pandas as pd
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

from resnet_core import lesson
from resnet_core.notebooks import for_page, set_small
from resnet_core.notebooks import lesson as lesson_notebook
from resnet_core.notebooks import training as training_notebook
from resnet_core.page_specs import LESSON
from resnet_core.settings import CACHE_ENV
from resnet_core.train import PRESETS, Race, RacerSpec
from tests.conftest import REPO


def _errors(notebook: nbformat.NotebookNode) -> list[str]:
    return [f"{o.ename}: {o.evalue}" for cell in notebook.cells if cell.cell_type == "code"
            for o in cell.get("outputs", []) if o.output_type == "error"]


def _summary(cell: nbformat.NotebookNode) -> dict:
    """The JSON line the summary cell (a notebook's last) prints."""
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    return json.loads(text.strip().splitlines()[-1])


def _execute(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO)}}).execute()
    return notebook


def _values(array) -> list[float]:
    """A trace's values as the figure's JSON holds them: a list, or plotly's typed array (dtype + base64)."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def _cell_index(notebook: nbformat.NotebookNode, start: str) -> int:
    return next(i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code" and cell.source.startswith(start))


# ------------------------------------------------------------------------------------------- training race
CUSTOM = {"tr_preset": "Custom race", "tr_racers": ["Plain-32", "ResNet-20"], "tr_lr": 0.02, "tr_width": 4,
          "tr_schedule": "cosine"}


def _small(config):
    """What SMALL does to the page's race (the notebook's config cell)."""
    return replace(config, steps=min(config.steps, training_notebook.SMALL_STEPS),
                   batch_size=min(config.batch_size, 32), eval_every=10, eval_samples=128, n_train=512, n_test=128,
                   checkpoint_every=0)


def _controls(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    """Cells run after the notebook, as a student would: a long race started again, then the control cells
    (pause, one step, stop), each followed by a probe of the job's state."""
    probe = "print(json.dumps({'status': job.status, 'step': job.snapshot().step}))"
    plan = [new_code_cell("config = replace(config, steps=5000)"),  # long enough to be caught while training
            notebook.cells[_cell_index(notebook, "# Start:")],
            notebook.cells[_cell_index(notebook, "job.pause()")],
            new_code_cell(f"import time\nfirst = job.snapshot().step\ntime.sleep(1.0)\n{probe}\nprint(first)"),
            notebook.cells[_cell_index(notebook, "job.wait_for_step(job.step_once())")],
            new_code_cell(probe),
            notebook.cells[_cell_index(notebook, "job.stop()")],
            new_code_cell(probe)]
    return [nbformat.from_dict(cell) for cell in plan]


def _printed(cell) -> list[str]:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream").split("\n")


@pytest.mark.slow
def test_training_notebook_races_the_pages_custom_race_live_and_its_controls_work():
    notebook = set_small(for_page("training", CUSTOM))
    size = len(notebook.cells)
    notebook.cells += _controls(notebook)  # one kernel for both: a kernel's start is most of a small run
    _execute(notebook)
    assert not _errors(notebook)
    summary = _summary(notebook.cells[size - 1])

    # The race the page would start with these settings (the page's rule: the preset, the widgets over it).
    page_config = replace(PRESETS["Plain-20 vs ResNet-20"], racers=(RacerSpec("resnet32", False), RacerSpec("resnet20")),
                          lr=0.02, width=4, schedule="cosine", name="Plain-32 vs ResNet-20")
    assert summary["page_config"] == json.loads(json.dumps(page_config.to_dict()))
    assert summary["labels"] == ["Plain-32", "ResNet-20"] and summary["name"] == "Plain-32 vs ResNet-20"
    assert summary["status"] == "finished" and summary["steps"] == [20, 20] and summary["step"] == 20

    # The same race trained here by the library: the same losses and held-out scores (same seed, same batches).
    direct = Race(_small(page_config)).train().summary()
    assert summary["final_loss"] == pytest.approx(list(direct["final_loss"]), rel=1e-5)
    assert summary["test_acc"] == pytest.approx(list(direct["test_acc"]), abs=1e-9)

    # The live view: the display handles of the start cell were updated to the final state.
    start = notebook.cells[_cell_index(notebook, "# Start:")]
    progress = start.outputs[0]["data"]["text/markdown"]
    assert "step 20 of 20" in progress and "finished" in progress
    figure = start.outputs[1]["data"]["application/vnd.plotly.v1+json"]
    curves = [trace for trace in figure["data"] if trace.get("mode") == "lines"]
    assert {trace["name"] for trace in curves} == {"Plain-32", "ResNet-20"}
    assert max(max(_values(trace["x"])) for trace in curves) == 20

    # The controls on a long race: pause holds it, one step trains exactly one, stop ends it there.
    held, first = _printed(notebook.cells[-5])[:2]
    held = json.loads(held)
    assert held["status"] == "paused" and 0 < held["step"] < 5000
    assert held["step"] == int(first)  # nothing trained while paused
    assert json.loads(_printed(notebook.cells[-3])[0]) == {"status": "paused", "step": held["step"] + 1}
    assert json.loads(_printed(notebook.cells[-1])[0]) == {"status": "stopped", "step": held["step"] + 1}


# ------------------------------------------------------------------------------------------------- lesson
def _constants(path, known: dict | None = None) -> dict:
    """A module's top-level constants (literals, and names of constants read before them or ``known``), without
    running it."""
    values: dict = dict(known or {})

    def value_of(node):
        if isinstance(node, ast.Name) and node.id in values:
            return values[node.id]
        return ast.literal_eval(node)

    for node in ast.parse(path.read_text()).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        target, value = node.targets[0], node.value
        pairs = (list(zip(target.elts, value.elts, strict=True))
                 if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) else [(target, value)])
        for name, item in pairs:
            if isinstance(name, ast.Name):
                try:
                    values[name.id] = value_of(item)
                except ValueError:
                    continue
    return values


def _page_constants() -> dict:
    """The lesson page's constants (pages/lesson.py), its grids from the lesson's declared settings."""
    return _constants(REPO / "pages" / "lesson.py", _constants(REPO / "resnet_core" / "page_specs.py"))


def _notebook_constants(small: bool) -> dict:
    """The notebook's constants cell run here (SETTINGS at their defaults)."""
    scope = {"SETTINGS": LESSON.notebook_defaults(), "SMALL": small}
    exec(lesson_notebook.CONSTANTS, scope)  # noqa: S102 - our own cell's source
    return scope


def test_lesson_notebook_uses_the_pages_constants():
    page, mine = _page_constants(), _notebook_constants(small=False)
    names = ["ARCH", "BLOCK", "WIDTH", "DEPTHS", "SWEEP_WIDTH", "SWEEP_BATCH", "LANDSCAPE_BATCH", "LANDSCAPE_SPAN",
             "LANDSCAPE_SEED", "LESION_BATCH", "MAX_REMOVED", "SAMPLES", "CAM_SHOWN"]
    assert {n: mine[n] for n in names} == {n: page[n] for n in names}
    assert lesson_notebook.GRIDS == page["GRIDS"]
    # The slider starts at ResNet-110's blocks, in the app and in the notebook.
    assert LESSON["lesson_blocks"].default == lesson.blocks_of("resnet110") == LESSON.notebook_defaults()["lesson_blocks"]


@pytest.mark.slow
def test_lesson_notebook_reproduces_the_lessons_numbers(tmp_path, monkeypatch):
    settings = {"lesson_zero_init": True, "lesson_blocks": 12, "lesson_grid": 21, "lesson_any_model": "demo:plain20"}
    # The kernel and this process each measure in a folder of their own: a kept measurement (lesson/store.py)
    # read by both would make the comparison below hold by construction.
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "kernel-measurements"))
    notebook = _execute(set_small(for_page("why-residuals", settings)))
    assert list((tmp_path / "kernel-measurements").glob("*.npz")), "the kernel measured elsewhere"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "test-measurements"))
    assert not _errors(notebook)
    summary = _summary(notebook.cells[-1])
    c = _notebook_constants(small=True)

    # Steps 2, 3 and 5 run at the page's size even when SMALL: the page's numbers exactly.
    identity = lesson.identity_check(c["ARCH"], c["BLOCK"], width=c["WIDTH"]).set_index(["residual", "zero_init"])
    assert summary["identity_residual_zero"] == identity.loc[(True, True), "max_abs_diff"] == 0.0
    assert summary["identity_plain_zero"] == pytest.approx(identity.loc[(False, True), "max_abs_diff"])
    split = lesson.gradient_split(c["ARCH"], width=c["WIDTH"], zero_init_residual=True)
    assert summary["split_share"] == pytest.approx([split["shortcut_share"].min(), split["shortcut_share"].max()])
    paths = lesson.path_summary(12)
    assert summary["paths"] == "4096" and summary["mean_length"] == pytest.approx(paths["mean_length"]) == 6.0

    # Step 4 at the reduced depths; steps 6-8 on the pair the page would use (the demo models here).
    ratios = lesson.depth_ratios(c["DEPTHS"], width=c["SWEEP_WIDTH"], batch=c["SWEEP_BATCH"])
    plain = ratios[~ratios["residual"]].set_index("depth")["ratio"]
    assert {int(k): v for k, v in summary["depth_plain"].items()} == pytest.approx(plain.to_dict())
    assert summary["pair"] == lesson.choose_pair() == lesson.DEMO_PAIR
    pair = lesson.load_pair(summary["pair"])
    assert summary["pair_accuracy"] == pytest.approx(pair.accuracy)
    x, y = lesson.shapes_batch("test", c["LESION_BATCH"], pair.image_size)[:2]
    studies, _ = lesson.lesion_pair(pair, x, y, max_removed=c["MAX_REMOVED"], samples=c["SAMPLES"])
    full = studies.groupby("net")["full_accuracy"].first()
    assert summary["lesion_full"] == pytest.approx(full.to_dict())
    assert summary["grid"] == 5
    # Step 8 at full size even when SMALL: the localisation check's sample, so the numbers of checks.json.
    from resnet_core.cam import SHAPES_CHECK_IMAGES
    from resnet_core.weights.demo import demo_checks

    assert summary["pointing"]["images"] == SHAPES_CHECK_IMAGES
    hit = [v for k, v in summary["pointing"].items() if k.startswith("pointing-game hit rate")][0]
    assert hit == pytest.approx(demo_checks()["hit_rate"], abs=1 / SHAPES_CHECK_IMAGES)
    # The any-net section on the demo Plain-20: the same held-out images as step 7, so the same accuracy.
    assert summary["any"]["label"] == "Plain-20" and summary["any"]["dataset"] == "shapes"
    assert summary["any"]["accuracy"] == pytest.approx(summary["lesion_full"]["Plain-20"])
    rates = pd.Series(summary["pointing"])
    assert 0.0 <= rates.filter(like="hit rate").iloc[0] <= 1.0
    # The link's grid is in the notebook's settings cell, for a run at full size (SMALL = False).
    assert '"lesson_grid": 21' in notebook.cells[3].source
