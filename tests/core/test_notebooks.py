"""Every notebook in notebooks/ is what resnet_core.notebooks generates, is committed executed (outputs, Plotly
figures, no stored error, a small file), and runs again on a fresh kernel at reduced size (here, or in the test
REDUCED_ELSEWHERE names); for_page refuses an unknown page or setting with one sentence."""

from __future__ import annotations

import ast
import base64
import json

import nbformat
import pytest

import resnet_core
from resnet_core import notebooks
from resnet_core.notebooks import NotebookError, filename_for, for_page, set_small, to_bytes
from tests.conftest import REPO
from tests.notebook_kernel import NOTEBOOKS, errors, execute, key_numbers

PLOTLY = "application/vnd.plotly.v1+json"
MAX_BYTES = 1_000_000
COMMITTED = sorted(NOTEBOOKS.glob("*.ipynb"))
# Notebooks whose figures carry a static PNG (make notebooks draws one where kaleido and Chromium are installed).
STATIC = ("architecture", "activations", "gradient_flow", "grad_cam")


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def test_every_notebook_module_has_its_committed_notebook_and_nothing_else_is_there():
    assert {path.stem for path in COMMITTED} == set(notebooks.available())
    assert {"architecture", "activations", "gradient_flow", "grad_cam", "tour"} <= set(notebooks.available())


@pytest.mark.parametrize("name", notebooks.available())
def test_committed_notebook_is_generated_and_executed(name):
    on_disk = _read(name)
    nbformat.validate(on_disk)
    assert [(c.cell_type, c.source) for c in on_disk.cells] == [
        (c.cell_type, c.source) for c in for_page(name).cells], "run `make notebooks` and commit what it writes"
    code = [c for c in on_disk.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "committed without running every cell"
    assert not errors(on_disk)
    assert (NOTEBOOKS / f"{name}.ipynb").stat().st_size < MAX_BYTES
    figures = [o for c in code for o in c.outputs if PLOTLY in o.get("data", {})]
    if name != "tour":  # each page's notebook draws the page's Plotly figures, stored as their JSON (offline)
        assert figures and all(json.dumps(o["data"][PLOTLY]).startswith('{"data"') for o in figures)
    if name in STATIC:  # and a PNG of each for viewers that run no JavaScript (GitHub, nbviewer)
        pngs = [base64.b64decode(o["data"]["image/png"]) for o in figures]
        assert len(pngs) == len(figures) and all(png.startswith(b"\x89PNG") for png in pngs)
    assert not [o for c in code for o in c.outputs if "text/html" in o.get("data", {})
                and "plotly.js" in o["data"]["text/html"][:2000]], "the Plotly bundle must not be embedded"
    numbers = key_numbers(on_disk)
    assert numbers and set_small(on_disk).cells  # the key numbers parse; the parameters cell holds SMALL


# Notebooks that another test already executes on a fresh kernel at reduced size (SMALL), on settings of a page
# whose numbers it compares: a second run here on the defaults would pay a kernel's start and imports (about 5 s)
# to check less. The notebook -> (test file, test function) that runs it.
REDUCED_ELSEWHERE = {
    "architecture": ("tests/app/test_notebook_numbers.py", "test_architecture_notebook_reproduces_the_page"),
    "activations": ("tests/core/test_notebooks.py", "test_an_uploaded_image_is_read_from_the_file_the_settings_name"),
    "grad_cam": ("tests/app/test_notebook_numbers.py", "test_grad_cam_notebook_reproduces_the_page"),
    "lesson": ("tests/core/test_notebooks_training.py", "test_lesson_notebook_reproduces_the_lessons_numbers"),
    "training": ("tests/core/test_notebooks_training.py",
                 "test_training_notebook_races_the_pages_custom_race_live_and_its_controls_work"),
}


@pytest.mark.parametrize("name", sorted(REDUCED_ELSEWHERE))
def test_each_notebook_left_out_below_runs_at_reduced_size_in_the_test_named(name):
    """The named test exists, builds this notebook (for_page with its page) and runs it with SMALL set."""
    path, function = REDUCED_ELSEWHERE[name]
    tree = ast.parse((REPO / path).read_text())
    found = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == function]
    assert found, f"{path} has no {function}"
    source = ast.unparse(found[0])
    assert any(f"for_page('{page}'" in source for page in (name, notebooks.url_path(name))), (name, function)
    # SMALL: set_small on the notebook, or tests.notebook_kernel.execute (small=True unless told otherwise).
    assert "small=False" not in source and ("set_small(" in source or "execute(for_page" in source), function


@pytest.mark.slow
@pytest.mark.parametrize("name", [name for name in notebooks.available() if name not in REDUCED_ELSEWHERE])
def test_notebook_executes_on_a_fresh_kernel_at_reduced_size(name):
    notebook = for_page(name)
    numbers = execute(notebook, small=True)  # every cell ran without an error output (execute checks)
    assert isinstance(numbers, dict) and numbers, "the last cell printed no key numbers"
    if name == "tour":  # the tour's figures are the library's own numbers (what tests/core/test_notebook checked)
        assert numbers["resnet18_params"] == resnet_core.count_params(resnet_core.build("resnet18"))
        assert numbers["resnet50_stage_macs"] == resnet_core.count_macs(resnet_core.build("resnet50", seed=0), 224)
        assert numbers["max_split_error"] < 1e-5
        assert numbers["plain_over_resnet"] > 3  # plain-32 over ResNet-32 at reduced size (about 11)
        assert numbers["race_labels"] == ["Plain-20", "ResNet-20"] and numbers["race_steps"] == [5, 5]
        assert numbers["heatmap_shape"] == [16, 16]
        low, high = numbers["heatmap_range"]
        assert 0.0 <= low <= high <= 1.0


def test_committed_tour_reports_the_full_size_numbers():
    numbers = key_numbers(_read("tour"))
    assert numbers["deep"] == 56 and numbers["plain_over_resnet"] > 10
    assert numbers["race_steps"] == [30, 30]


def test_page_names_url_paths_and_defaults():
    assert notebooks.PAGES["gradient-flow"] == "gradient_flow" and notebooks.PAGES["why-residuals"] == "lesson"
    by_path, by_module = for_page("gradient-flow"), for_page("gradient_flow")
    assert [c.source for c in by_path.cells] == [c.source for c in by_module.cells]
    assert for_page("grad-cam", {}).cells[3].source == for_page("grad-cam").cells[3].source
    first = for_page("activations").cells[0]
    assert first.cell_type == "code" and "pip" in first.source and 'find_spec("resnet_core")' in first.source
    params = [c for c in for_page("activations").cells if "parameters" in c.metadata.get("tags", ())]
    assert len(params) == 1 and "SMALL = False" in params[0].source and '"act_batch": 8,' in params[0].source


def test_settings_are_taken_as_a_link_or_the_widgets_hold_them():
    cell = [c for c in for_page("gradient-flow", {"plain": "1", "gf_batch": "4", "arch": "resnet56"}).cells
            if "parameters" in c.metadata.get("tags", ())][0].source
    assert '"plain": True,' in cell and '"gf_batch": 4,' in cell and '"arch": "resnet56",' in cell
    cell = [c for c in for_page("grad_cam", {"gc_methods": "gradcam,occlusion", "gc_opacity": "0.25",
                                             "gc_other": "3"}).cells
            if "parameters" in c.metadata.get("tags", ())][0].source
    assert '"gc_methods": [\'gradcam\', \'occlusion\'],' in cell and '"gc_opacity": 0.25,' in cell
    assert '"gc_other": 3,' in cell
    # The sidebar's settings are accepted on every page (the button merges them in) and dropped where unused.
    assert "weights" not in [c for c in for_page("architecture", {"weights": "demo:resnet20"}).cells
                             if "parameters" in c.metadata.get("tags", ())][0].source
    assert filename_for("gradient-flow", {"plain": True}) == "resnet-explorer-gradient-flow-resnet20-plain.ipynb"
    assert filename_for("tour") == "resnet-explorer-tour.ipynb"


def test_to_bytes_is_the_notebook_file():
    notebook = for_page("architecture", {"arch": "resnet50"})
    data = to_bytes(notebook)
    back = nbformat.reads(data.decode("utf-8"), as_version=4)
    nbformat.validate(back)
    assert [c.source for c in back.cells] == [c.source for c in notebook.cells]


@pytest.mark.parametrize(("page", "settings", "words"), [
    ("nonsense", {}, "'nonsense' is not a page of ResNet Explorer; use one of architecture"),
    ("activations", {"act_colour": "red"}, "'act_colour' is not a setting of the Activations notebook"),
    ("gradient-flow", {"gf_batch": 3}, "The setting 'gf_batch' is 3, not one the page offers (2, 4, 8, 16, 32)."),
    ("gradient-flow", {"plain": "maybe"}, "The setting 'plain' is 'maybe', not a bool"),
    ("architecture", {"arch": "resnet9"}, "The setting 'arch' is 'resnet9', not one the page offers"),
    ("grad-cam", {"weights": "http://x"}, "The setting 'weights': "),
    ("grad-cam", {"gc_methods": ["gradcam", "magic"]}, "The setting 'gc_methods' names magic"),
    ("grad-cam", {"gc_opacity": "2"}, "The setting 'gc_opacity' is 2.0, not a number from 0 to 1."),
    # Bounds and limits come from the page's declared settings (resnet_core.page_specs), as its widgets do.
    ("training", {"tr_steps": 5}, "The setting 'tr_steps' is 5, not a number from 10 to 20000."),
    ("why-residuals", {"lesson_blocks": 201}, "The setting 'lesson_blocks' is 201, not a number from 1 to 200."),
    ("training", {"tr_racers": "Plain-20,ResNet-20,Plain-32,ResNet-32,Plain-44"},
     "The setting 'tr_racers' names Plain-20, ResNet-20, Plain-32, ResNet-32, Plain-44; use racers of the page"),
    ("why-residuals", {"lesson_any_model": "random"}, "The setting 'lesson_any_model' is 'random', not a trained"),
])
def test_unknown_page_or_setting_is_one_sentence(page, settings, words):
    with pytest.raises(NotebookError) as caught:
        for_page(page, settings)
    assert str(caught.value).startswith(words) and str(caught.value).count("\n") == 0
    assert isinstance(caught.value, ValueError)


@pytest.mark.slow
def test_an_uploaded_image_is_read_from_the_file_the_settings_name(tmp_path):
    """The upload of a Shapes image's pixels, alone in its batch, gives that Shapes image's numbers."""
    from resnet_core.data import make_shapes
    from resnet_core.images import to_pil

    path = tmp_path / "my image.png"
    to_pil(make_shapes(24, image_size=64, seed=0).images, 3).save(path)
    alone = {"act_batch": 1, "act_bn": "running"}
    uploaded = execute(for_page("activations", {**alone, "act_source": "upload", "act_upload": str(path)}))
    shapes = execute(for_page("activations", {**alone, "act_source": "shapes", "act_shape": 3}))
    assert uploaded == shapes and uploaded["batch"] == 1
    with pytest.raises(Exception, match="set SETTINGS\\['gc_upload'\\]"):
        execute(for_page("grad-cam", {"gc_source": "upload"}))
