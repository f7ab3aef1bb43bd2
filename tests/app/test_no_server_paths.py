"""No text a visitor sees holds a server path: every page, in the states that name files (ImageNet weights not
cached and no network, a data set that is not on the server, an uploaded checkpoint, a finished race)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from resnet_core.cli import train_main
from resnet_core.runs import list_runs
from resnet_core.settings import OFFLINE_ENV, runs_dir
from tests.conftest import APP_SCRIPT

PAGES = ("architecture", "activations", "gradient_flow", "grad_cam", "training", "lesson")
REPO = Path(APP_SCRIPT).resolve().parents[1]


def _texts(block) -> list[str]:
    """Every element's protobuf as text (labels, values, options, captions, table cells) under ``block``."""
    out = []
    for child in getattr(block, "children", {}).values():
        proto = getattr(child, "proto", None)
        if proto is not None:
            out.append(str(proto))
        out += _texts(child)
    return out


def _visible(at: AppTest) -> str:
    tables = [frame.value.to_string() for frame in at.dataframe]
    return "\n".join(_texts(at.main) + _texts(at.sidebar) + tables)


@pytest.fixture
def offline_server(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path / "runs"))  # its own races: no other test sees them
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("RESNET_EXPLORER_DATA", str(tmp_path / "data"))
    monkeypatch.setenv(OFFLINE_ENV, "1")
    assert train_main(["--racer", "resnet20:plain", "--racer", "resnet20", "--steps", "2", "--width", "4",
                 "--image-size", "16", "--batch-size", "8", "--n-train", "32", "--eval-every", "2",
                 "--no-progress", "--dataset", f"folder:{tmp_path / 'no-such-folder'}"]) == 2  # refused: no run
    assert train_main(["--racer", "resnet20:plain", "--racer", "resnet20", "--steps", "2", "--width", "4",
                 "--image-size", "16", "--batch-size", "8", "--n-train", "32", "--eval-every", "2",
                 "--no-progress"]) == 0
    return [str(tmp_path), str(runs_dir()), str(REPO)]


@pytest.mark.parametrize("page", PAGES)
def test_no_page_shows_a_server_path(offline_server, page):
    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=240)
    # ImageNet weights not cached and no network, on the smallest ImageNet net (Gradient flow draws it and its
    # plain twin, at the least batch).
    at.query_params.update({"arch": "resnet18", "weights": "tv:IMAGENET1K_V1", "gf_batch": "2"})
    at.run()
    at.switch_page(f"../pages/{page}.py").run()
    assert not at.exception, at.exception
    if page == "training":
        at.selectbox(key="tr_past_pick").set_value(list_runs()["run_id"][0]).run()  # reopened: its checkpoints
    text = _visible(at)
    if page == "gradient_flow":
        assert at.select_slider(key="gf_batch").value == 2
    if page in ("activations", "grad_cam"):  # the pages that load the link's weights say they are missing
        assert "resnet18-f37072fd.pth" in text and "$TORCH_HOME/hub/checkpoints" in text
    for path in offline_server:
        assert path not in text, f"{page} shows {path}"
