"""The Gradient-flow page through the real app (AppTest), asserting on chart data and visible text."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from resnet_core.plots.style import fmt_value
from resnet_core.settings import uploads_dir
from resnet_core.weights.checkpoints import checkpoint_title
from tests.app.conftest import answer_questions, open_page

PAGE = "../pages/gradient_flow.py"


def _figures(app) -> dict[str, dict]:
    figs = {}
    for chart in app.get("plotly_chart"):
        fig = json.loads(chart.proto.spec)
        names = {d.get("name") for d in fig["data"]}
        if "through the shortcut" in names:
            figs["split"] = fig
        elif "plain (no shortcuts)" in names:
            figs["sweep"] = fig
        else:
            figs["norms"] = fig
    return figs


def _markdown(app, needle: str) -> str:
    return next(m.value for m in app.markdown if needle in m.value)


@pytest.fixture
def page(app):
    return answer_questions(open_page(app, PAGE))


def test_default_view_measures_both_nets_the_split_and_the_sweep(page):
    assert page.title[0].value == "Gradient flow"
    # Random weights: only the initial state; the control says why it is disabled.
    assert page.button_group(key="gf_state").disabled
    assert any("pick trained weights" in c.value for c in page.caption)
    assert any(c.value.startswith("Measured on 16 Shapes images at 32x32 px, differentiating the cross-entropy")
               for c in page.caption)
    figs = _figures(page)

    norms = {t["name"]: t for t in figs["norms"]["data"]}
    assert set(norms) == {"ResNet-20", "Plain-20"}
    assert figs["norms"]["layout"]["yaxis"]["type"] == "log"
    assert all(len(t["y"]) == 9 and min(t["y"]) > 0 for t in norms.values())
    text = _markdown(page, "Read right to left")
    for name, trace in norms.items():
        assert f"{name}: first/last = {fmt_value(trace['y'][0] / trace['y'][-1])}" in text

    shortcut, branch = figs["split"]["data"]
    assert len(shortcut["y"]) == 9 and shortcut["x"][0] == "layer1.0"
    assert all(abs(s + b - 100) < 1e-3 for s, b in zip(shortcut["y"], branch["y"], strict=True))
    split_text = _markdown(page, "split exactly")
    mean_share = sum(shortcut["y"]) / len(shortcut["y"])
    assert f"the shortcut carries {mean_share:.0f}%" in split_text

    sweep = {t["name"]: t for t in figs["sweep"]["data"]}
    plain, residual = sweep["plain (no shortcuts)"], sweep["residual (ResNet)"]
    assert plain["x"] == residual["x"] == [20, 32, 44, 56, 110]
    at56 = plain["x"].index(56)
    assert plain["y"][at56] >= 100 * residual["y"][at56]  # the direction the page describes
    assert all(p > r for p, r in zip(plain["y"], residual["y"], strict=True))
    sweep_text = _markdown(page, "explode")
    match = re.search(r"at depth 110: plain ([\d.,e+-]+), residual ([\d.,e+-]+)", sweep_text)
    assert match and float(match.group(1).replace(",", "")) == pytest.approx(plain["y"][-1], rel=1e-2)
    assert float(match.group(2).replace(",", "")) == pytest.approx(residual["y"][-1], rel=1e-2)
    # ResNet-20 has post-activation blocks: the page says the ReLU after the add gates the gradient.
    intro = _markdown(page, "plain block has only the branch")
    assert "post-activation blocks a ReLU follows the add" in intro
    assert "passed straight back through the shortcut" not in intro
    assert any("plain-56 at least 100 times ResNet-56" in c.value for c in page.caption)  # CIFAR: tested claim


def test_texts_follow_the_block_kind_and_the_family(app):
    answer_questions(app.switch_page(PAGE).run())
    app.select_slider(key="gf_batch").set_value(2).run()  # the texts do not depend on it; the ImageNet net is costly
    app.sidebar.toggle(key="sb_preact").set_value(True).run()
    assert not app.exception, app.exception
    assert "In these pre-activation blocks the output is the sum itself" in _markdown(app, "only the branch")
    app.sidebar.toggle(key="sb_preact").set_value(False).run()
    app.sidebar.selectbox(key="sb_arch").set_value("resnet18").run()
    assert not app.exception, app.exception
    captions = [c.value for c in app.caption if c.value.startswith("Settings:")]
    assert captions and "ImageNet nets" in captions[0]
    assert "100 times" not in captions[0] and "No test fixes a margin" in captions[0]


def test_plain_choice_still_splits_its_residual_twin_and_batch_changes(app):
    app.toggle(key="sb_plain").set_value(True).run()
    answer_questions(app.switch_page(PAGE).run())
    assert not app.exception
    figs = _figures(app)
    assert [t["name"] for t in figs["norms"]["data"]] == ["ResNet-20", "Plain-20"]
    assert "for ResNet-20" in _markdown(app, "split exactly")
    before = figs["norms"]["data"][0]["y"]
    app.select_slider(key="gf_batch").set_value(4).run()
    assert not app.exception
    assert any(c.value.startswith("Measured on 4 Shapes images") for c in app.caption)
    assert _figures(app)["norms"]["data"][0]["y"] != before


def _checkpoint(path) -> str:
    """A checkpoint in the training engineer's format: ResNet-20 at quarter width, a few SGD steps on Shapes."""
    import torch
    import torch.nn.functional as F

    from resnet_core import build
    from resnet_core.data import SHAPES_CLASSES, make_shapes
    from resnet_core.images import Preprocessing

    model = build("resnet20", seed=1, width=4)
    shapes = make_shapes(32, 32, seed=5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        F.cross_entropy(model(shapes.normalized()), shapes.labels).backward()
        optimizer.step()
    torch.save({"format": "resnet-explorer/1", "arch": "resnet20", "options": {"width": 4},
                "state_dict": model.state_dict(), "classes": list(SHAPES_CLASSES),
                "preprocessing": Preprocessing.shapes(32).to_dict(), "dataset": "shapes", "metrics": {}}, path)
    return str(path)


def test_trained_checkpoint_state(app, tmp_path):
    # Inside the uploads folder: the sidebar opens checkpoints only from the runs and uploads folders.
    uploads_dir().mkdir(parents=True, exist_ok=True)
    path = _checkpoint(uploads_dir() / f"{tmp_path.name}-resnet20-shapes.pt")
    app.session_state["_sbw_pending"] = f"ckpt:{path}"  # what use_checkpoint() does for the training page
    app.session_state["_sbw_chosen"] = True  # ... and it marks the weights as the user's choice
    app.run()
    answer_questions(app.switch_page(PAGE).run())
    assert not app.exception, app.exception
    control = app.button_group(key="gf_state")
    assert not control.disabled
    init_norms = _figures(app)["norms"]["data"]
    assert [t["name"] for t in init_norms] == ["ResNet-20", "Plain-20"]
    control.set_value("trained").run()
    assert not app.exception
    figs = _figures(app)
    assert [t["name"] for t in figs["norms"]["data"]] == ["ResNet-20 (trained)"]
    # Trained weights keep the running statistics they were trained to use; at initialisation batch statistics.
    assert app.button_group(key="gf_bn").value == "running"
    assert figs["norms"]["data"][0]["y"] != init_norms[0]["y"]
    assert any(f"Weights: {checkpoint_title(path)}." in c.value for c in app.caption)  # named, not a path
    assert checkpoint_title(path).startswith("uploaded checkpoint of ")
    assert not any(str(Path(path).parent) in c.value for c in app.caption)
    assert any("differentiating the cross-entropy against their labels" in c.value for c in app.caption)
    assert "for ResNet-20 (trained)" in _markdown(app, "split exactly")
    # The Activations page compares the trained net with its twin at initialisation, and says so.
    app.switch_page("../pages/activations.py").run()
    assert not app.exception
    names = []
    for chart in app.get("plotly_chart"):
        names += [d.get("name") for d in json.loads(chart.proto.spec)["data"]]
    assert "ResNet-20 (trained)" in names and "Plain-20 (at initialisation)" in names
    assert app.button_group(key="act_bn").value == "running"
