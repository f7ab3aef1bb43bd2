"""The lesson's last section: the landscape and lesion instruments on any trained model (a run's checkpoint, an
uploaded checkpoint, an embedded demo), costed first, on the data set it was trained on, with its own chance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

import resnet_core
from resnet_core import lesson
from resnet_core.data import SHAPES_CLASSES
from resnet_core.plots.lesion import study_figure
from resnet_core.weights.checkpoints import checkpoint_id, store_upload
from resnet_core.weights.checkpoints.format import make_checkpoint

PAGE = "../pages/lesson.py"


def _foreign_upload(runs: object) -> str:
    """A bare ResNet-20 state_dict (width 4), stored in the uploads folder as the sidebar's uploader does."""
    import io

    buffer = io.BytesIO()
    torch.save(resnet_core.build("resnet20", width=4, seed=0).state_dict(), buffer)
    return str(store_upload(buffer.getvalue(), "mine.pt", folder=runs / "uploads"))  # type: ignore[operator]


def test_every_trained_model_is_offered(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path / "runs"))
    upload = _foreign_upload(tmp_path / "runs")
    found = lesson.trained_models()
    assert [m.source for m in found] == ["upload", "demo", "demo"]
    assert [m.weights for m in found] == [checkpoint_id(upload), "demo:resnet20", "demo:plain20"]
    assert found[0].weights == f"ckpt:uploads/{Path(upload).name}"  # relative to the runs folder: no server path
    assert found[0].label.startswith("uploaded checkpoint ") and found[0].dataset is None
    assert {m.dataset for m in found[1:]} == {"shapes"}
    # A foreign checkpoint does not say what it was trained on: one sentence saying what to choose.
    model = lesson.open_trained(found[0].weights)
    with pytest.raises(lesson.AnyNetError, match=r"^The checkpoint \(ResNet-20, width 4, shortcut A, 10 "
                                                 r"classes\) does not record the data set it was trained on, so"):
        lesson.data_for(model)
    assert lesson.data_for(model, "shapes") == "shapes"
    assert lesson.data_for(lesson.open_trained("demo:plain20")) == "shapes"  # from the checkpoint's record


def test_the_chance_line_is_the_chosen_models(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 4-class net trained on an image folder: measured on that folder, chance 25%, not the lesson's 10%."""
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path / "runs"))
    folder = tmp_path / "four"
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c", "d"):
        (folder / name).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / name / f"{i}.png")
    net = resnet_core.build("resnet20", width=4, seed=0, num_classes=4)
    path = tmp_path / "runs" / "run" / "four.pt"
    path.parent.mkdir(parents=True)
    torch.save(make_checkpoint(arch="resnet20", label="ResNet-20", options={"width": 4, "num_classes": 4},
                               state_dict=net.state_dict(), classes=["a", "b", "c", "d"],
                               preprocessing={"resize": 16, "crop": 16, "mean": [0.5] * 3, "std": [0.25] * 3},
                               dataset=f"folder:{folder}", metrics={}), path)
    plan = lesson.plan_any(lesson.open_trained(f"ckpt:{path}"), steps=3, landscape_batch=8, lesion_batch=8,
                           max_removed=1, samples=1)
    assert plan.dataset == f"folder:{folder}" and plan.classes == 4 and plan.image_size == 16
    assert plan.sentence().startswith("ResNet-20 on the image folder 'four' (16 px)")  # its name, not its path
    assert plan.landscape_passes == 3 * 3 + 3 and plan.lesion_passes == 2 + 9 + 1
    result = lesson.measure_any(plan)
    assert result.chance == 0.25 and result.surface.shape[0] == 9 and len(result.study) == 9
    hline = study_figure(result.study, chance=result.chance).to_dict()["layout"]["shapes"][-1]
    assert hline["y0"] == hline["y1"] == 0.25
    # Its outputs are not the Shapes classes: measured on Shapes it is refused with a sentence.
    shapes_plan = lesson.plan_any(plan.model, dataset="shapes", steps=3, landscape_batch=8, lesion_batch=8,
                                  max_removed=1, samples=1)
    with pytest.raises(lesson.AnyNetError, match="has 4 outputs but Shapes has 10 classes"):
        lesson.measure_any(shapes_plan)


def test_the_plan_refuses_what_exceeds_the_memory_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    from resnet_core.settings import BudgetError, memory_budget, set_memory_budget

    model = resnet_core.build("resnet20", width=64, seed=0)  # 4.3 M parameters: its private copies alone exceed 20 MB
    monkeypatch.setenv("RESNET_EXPLORER_MEMORY_BUDGET", "20MB")
    set_memory_budget(None)  # the environment's budget (a process-wide override would hide it)
    assert memory_budget() == 20 * 10**6
    with pytest.raises(BudgetError) as refused:
        lesson.plan_any(model, dataset="shapes", steps=3)
    assert "\n" not in str(refused.value) and str(refused.value).endswith(".")


def _figures(at: AppTest) -> list[dict]:
    return [json.loads(e.proto.spec) for e in at.get("plotly_chart")]


def test_pick_the_demo_model_and_measure_it(app: AppTest, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not lesson.demo_pair_ready():
        pytest.skip("the embedded demo models are not installed (make demo-models)")
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path / "runs"))  # no run: the demos and one upload
    upload = _foreign_upload(tmp_path / "runs")
    at = app
    at.switch_page(PAGE).run(timeout=240)
    assert not at.exception, at.exception
    box = at.selectbox(key="lesson_any_model")
    assert box.options[1:] == ["ResNet-20 trained on Shapes (embedded demo)",
                               "Plain-20 trained on Shapes (embedded demo)"]
    assert box.options[0].startswith("uploaded checkpoint ")
    # The upload records no data set: one sentence, and the button stays disabled until one is chosen.
    box.set_value(checkpoint_id(upload)).run(timeout=240)
    assert any("does not record the data set it was trained on" in e.value for e in at.error)
    assert at.button(key="lesson_any_run").disabled
    at.selectbox(key="lesson_any_data").set_value("shapes").run(timeout=240)
    assert not at.error and not at.button(key="lesson_any_run").disabled

    before = len(_figures(at))
    at.selectbox(key="lesson_any_data").set_value("recorded")
    at.selectbox(key="lesson_any_model").set_value("demo:plain20").run(timeout=240)
    cost = next(c.value for c in at.caption if c.value.startswith("Plain-20 on Shapes (32 px)"))
    assert "a 11 x 11 landscape costs 132 forward passes of 64 training images" in cost
    assert "the lesion study 33 of 128 held-out images" in cost  # 2 + 7 removable + 4 x 6 sampled sets
    at.button(key="lesson_any_run").click().run(timeout=240)
    assert not at.exception, at.exception
    surface, line, study, curve = _figures(at)[before:]
    contours = [t for t in surface["data"] if t["type"] == "contour"]
    assert [t["name"] for t in contours] == ["Plain-20"]
    assert len(contours[0]["z"]) == 11 and all(len(row) == 11 for row in contours[0]["z"])
    assert [t["name"] for t in line["data"]] == ["Plain-20"] and len(line["data"][0]["x"]) == 11
    bars = next(t for t in study["data"] if t.get("name") == "Plain-20: one block removed")
    assert len(bars["x"]) == 9 and bars["text"].count("not removable") == 2  # a bar per block
    chance = [s for s in study["layout"]["shapes"] if s.get("line", {}).get("dash") == "dot"]
    assert [s["y0"] for s in chance] == [pytest.approx(1 / len(SHAPES_CLASSES))]
    assert [t["name"] for t in curve["data"]] == ["Plain-20", "chance 10%"]  # the guide is named in the legend
    text = "\n".join(m.value for m in at.markdown)
    assert "**Plain-20** on 128 held-out Shapes images: accuracy " in text and "(chance is 10%)" in text
    # The results stay while the page reruns for another reason.
    at.toggle(key="lesson_zero_init").set_value(True).run(timeout=240)
    assert len(_figures(at)) == before + 4
