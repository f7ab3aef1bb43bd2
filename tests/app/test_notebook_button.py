"""Every page shows "Download as notebook", and what it exports is the page's current view: the settings the
page writes to its link plus the sidebar's model, uploads named where the notebook must find them.

AppTest exposes no download bytes, so the button leaves what it exports in session state and these tests build
the notebook from that with the same function the button's data callable calls
(``resnet_core.notebooks.export.notebook_for``);
tests/browser/test_notebook_download.py clicks the real button."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from resnet_core.notebooks import PARAMETERS_TAG, filename_for, resolve_settings
from resnet_core.notebooks import training as training_notebook
from resnet_core.notebooks.export import FILES_HEADING, files_caption, files_note, notebook_for
from tests.app.conftest import open_page

LABEL = "Download as notebook"
EXPORTED_KEY = "_notebook_settings"  # explorer_ui.notebook_button.EXPORTED_KEY (app/ is not importable here)


def _button_labels(at: AppTest) -> list[str]:
    return [button.label for button in at.sidebar.get("download_button")]


def _exported(at: AppTest) -> tuple[str, dict]:
    exported = at.session_state[EXPORTED_KEY]
    return exported["page"], exported["settings"]


def _link(at: AppTest) -> dict[str, str]:
    return {name: (value[0] if isinstance(value, list) else value) for name, value in at.query_params.items()}


def _parameters(notebook) -> str:
    return next(cell.source for cell in notebook.cells if PARAMETERS_TAG in cell.metadata.get("tags", ()))


PAGES = {"architecture": "architecture", "activations": "activations", "gradient_flow": "gradient-flow",
         "training": "training", "grad_cam": "grad-cam"}


def test_every_page_shows_the_button_for_its_own_view(app):
    for page, url_path in PAGES.items():  # one session visits them all (as a student does)
        at = open_page(app, f"../pages/{page}.py")
        assert _button_labels(at).count(LABEL) == 1, page
        exported_page, settings = _exported(at)
        assert exported_page == url_path
        # The sidebar's model travels with every page's settings: it is what the link says.
        link = _link(at)
        assert settings["arch"] == link["arch"] and settings["plain"] == (link["plain"] == "1")
        assert filename_for(url_path, settings).startswith(f"resnet-explorer-{url_path}")


@pytest.mark.slow  # the lesson computes its eight steps (about a minute on 2 cores)
def test_the_lesson_shows_the_button(app):
    at = open_page(app, "../pages/lesson.py")
    assert _button_labels(at).count(LABEL) == 1
    page, settings = _exported(at)
    assert page == "why-residuals"
    assert settings["lesson_blocks"] == 54 and settings["lesson_grid"] == 11
    assert '"lesson_blocks": 54,' in _parameters(notebook_for(page, settings))


def test_gradient_flow_exports_the_settings_its_link_has(app):
    at = open_page(app, "../pages/gradient_flow.py")
    at.select_slider(key="gf_batch").set_value(4).run()
    at.sidebar.toggle(key="sb_plain").set_value(True).run()
    assert not at.exception
    page, settings = _exported(at)
    assert settings["gf_batch"] == 4 and settings["plain"] is True
    # The same view as the link the page wrote: every name the notebook takes, with the same value.
    link = {name: value for name, value in _link(at).items() if name in settings}
    assert resolve_settings(page, settings) == resolve_settings(page, {**settings, **link})
    notebook = notebook_for(page, settings)
    assert '"gf_batch": 4,' in _parameters(notebook) and '"plain": True,' in _parameters(notebook)


def test_training_exports_the_race_the_page_would_start(app):
    at = open_page(app, "../pages/training.py")
    at.selectbox(key="tr_preset").set_value("Custom race").run()
    at.multiselect(key="tr_Custom race_racers").set_value(["Plain-20", "ResNet-32"]).run()
    at.number_input(key="tr_Custom race_steps").set_value(300).run()
    assert not at.exception
    page, settings = _exported(at)
    assert settings["tr_racers"] == ["Plain-20", "ResNet-32"] and settings["tr_steps"] == 300
    # The notebook's config cell, run on the exported settings, builds the page's own RaceConfig.
    scope = {"SETTINGS": resolve_settings(page, settings), "SMALL": False}
    exec(training_notebook.CONFIG, scope)  # noqa: S102 - the notebook's own cell
    assert scope["config"] == at.session_state["tr_config"]
    assert scope["config"].labels == ["Plain-20", "ResNet-32"] and scope["config"].steps == 300


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_uploaded_image_is_named_where_the_notebook_reads_it(app):
    at = open_page(app, "../pages/activations.py")
    at.button_group(key="act_source").set_value("upload").run()
    at.file_uploader(key="act_upload").set_value(("red cat.png", _png(), "image/png")).run()
    assert not at.exception
    page, settings = _exported(at)
    assert settings["act_source"] == "upload" and settings["act_upload"] == "red cat.png"
    notebook = notebook_for(page, settings)
    notes = [cell.source for cell in notebook.cells if cell.source.startswith(FILES_HEADING)]
    assert len(notes) == 1 and "`red cat.png`" in notes[0]
    assert any("red cat.png" in caption.value for caption in at.sidebar.caption)


def test_a_checkpoint_is_named_by_its_title_and_runs_folder_id_never_a_server_path(tmp_path, monkeypatch):
    """The notebook's note names a run's checkpoint by its title and its id in the runs folder; the page's caption
    under the button by its title and file name only (no setting name, no server path)."""
    from resnet_core.cli import train_main
    from resnet_core.weights.checkpoints import checkpoint_id

    runs = tmp_path / "runs"
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(runs))
    assert train_main(["--racer", "resnet20:plain", "--racer", "resnet20", "--steps", "3", "--width", "4", "--image-size",
                 "16", "--batch-size", "8", "--n-train", "64", "--eval-every", "3", "--runs-dir", str(runs),
                 "--no-progress"]) == 0
    (path,) = runs.glob("*/plain-20.pt")
    weights = checkpoint_id(path)
    assert weights == f"ckpt:{path.parent.name}/plain-20.pt"
    note = files_note({"weights": weights}, {"weights": "random"})
    caption = files_caption({"weights": weights}, {"weights": "random"})
    for text in (note, caption):
        assert str(tmp_path) not in text and "Plain-20 from the race of " in text and ", finished at step 3" in text
    assert f"`{weights}` in the runs folder" in note and f"copy `{path.name}` to the same place" in note
    assert "weights" not in caption and f"(the file `{path.name}`)" in caption
    assert files_note({"weights": "demo:resnet20"}, {"weights": "random"}) is None
    assert files_note({"weights": "ckpt:/x.pt"}, {"tr_steps": 10}) is None  # a page without the sidebar's model


def test_a_crafted_file_name_stays_inside_its_code_span():
    # A visitor names the upload; a backtick or a line break would end the span and render the rest as markdown.
    note = files_note({"gc_upload": "x`![a](http://evil.example/p.png)\n# title`.png"}, {"gc_upload": ""})
    assert note.count("`") == 4  # two spans: the name and SETTINGS["gc_upload"]
    assert "\n" not in note and "`x![a](http://evil.example/p.png)# title.png`" in note
