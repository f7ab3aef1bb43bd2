"""The lesson with trained nets present: every step from 1 to 8 is drawn from a run trained here.

One short race (Plain-20 vs ResNet-20, named like the preset so step 1 finds it too) is trained by the lesson's
own ``train_race`` (and ``wait_for_race``) into this module's own runs folder; the page then walks every step on it.
"""

from __future__ import annotations

import json
import os

import pytest
from streamlit.testing.v1 import AppTest

from resnet_core import lesson
from resnet_core.runs import list_runs, load_run
from resnet_core.weights.checkpoints import checkpoint_id, checkpoint_title

PAGE = "../pages/lesson.py"


@pytest.fixture(scope="module", autouse=True)
def _own_runs_folder(tmp_path_factory: pytest.TempPathFactory):
    """This module's own runs folder: runs other tests left in the session's folder are not this lesson's."""
    old = os.environ["RESNET_EXPLORER_RUNS"]
    os.environ["RESNET_EXPLORER_RUNS"] = str(tmp_path_factory.mktemp("lesson-runs"))
    yield
    os.environ["RESNET_EXPLORER_RUNS"] = old


@pytest.fixture(scope="module")
def quick_run() -> str:
    config = lesson.pair_race(steps=50, batch_size=32, n_train=256, n_test=64, eval_every=25, eval_samples=64,
                              warmup_steps=10, name="Plain-20 vs ResNet-20", checkpoint_every=0)
    seen = []
    run_id = lesson.wait_for_race(lesson.train_race(config), on_progress=lambda snap: seen.append(snap.step))
    assert all(a <= b for a, b in zip(seen, seen[1:], strict=False))  # progress only moves forward
    return run_id


def test_the_run_is_an_ordinary_run_and_the_lesson_finds_it(quick_run: str) -> None:
    runs = list_runs()
    row = runs[runs["run_id"] == quick_run].iloc[0]
    assert row["status"] == "finished" and row["racers"] == "Plain-20, ResNet-20"
    assert lesson.find_pair_run() == quick_run and lesson.find_curves_run() == quick_run
    pair = lesson.load_pair(quick_run)
    assert list(pair.models) == ["Plain-20", "ResNet-20"] and pair.classes == 10 and pair.image_size == 16
    assert all(0.0 <= acc <= 1.0 for acc in pair.accuracy.values())


def test_every_step_is_drawn_from_the_trained_nets(revealed_app: AppTest, quick_run: str) -> None:
    at = revealed_app
    at.switch_page(PAGE).run(timeout=240)
    assert not at.exception, at.exception
    assert [h.value.split(".")[0] for h in at.header] == [str(i) for i in range(1, 9)]
    text = "\n".join(m.value for m in at.markdown)
    charts = [json.loads(e.proto.spec) for e in at.get("plotly_chart")]
    names = [[t.get("name") for t in c["data"]] for c in charts]

    # Step 1: the run's training curves, one trace per racer.
    assert f"Training curves of {load_run(quick_run).title} (" in text and quick_run not in text  # named, no id
    assert any({"Plain-20", "ResNet-20"} <= {n for n in trace_names if n} for trace_names in names[:1])

    # Step 6: accuracies first, then the cost said before the work, then one contour per net on one scale.
    metrics = {m.label: m.value for m in at.metric}
    assert set(metrics) == {"Plain-20: held-out accuracy", "ResNet-20: held-out accuracy"}
    pair = lesson.load_pair(lesson.choose_pair())  # this short run, unless the embedded demo pair learned
    warned = any("not clearly above chance" in w.value for w in at.warning)
    assert warned == (not all(pair.learned(label) for label in pair.models))
    # 2 x (11*11 + 11): what it costs, or what measuring again would cost when an identical pair was kept
    assert any("264 forward passes of 64 images" in c.value for c in at.caption)
    surface = next(c for c in charts if any(t["type"] == "contour" for t in c["data"]))
    contours = [t for t in surface["data"] if t["type"] == "contour"]
    assert [t["name"] for t in contours] == ["Plain-20", "ResNet-20"]
    assert {t["coloraxis"] for t in contours} == {"coloraxis"}
    assert all(len(t["z"]) == 11 and len(t["z"][0]) == 11 for t in contours)
    assert "What it does not prove" in text

    # Step 7: one bar per block and net; the plain net's shape-changing blocks are marked, not measured.
    study = next(c for c in charts if any(t.get("name", "").endswith("one block removed") for t in c["data"]))
    bars = {t["name"]: t for t in study["data"]}
    plain = bars["Plain-20: one block removed"]
    assert len(plain["x"]) == 9 and plain["text"].count("not removable") == 2
    assert bars["ResNet-20: one block removed"]["text"].count("not removable") == 0
    assert sum(x.endswith("↓") for x in plain["x"]) == 2
    assert "on average with one removed" in text

    # Step 8: six overlays of held-out images with captions, and the pointing game.
    captions = at.image[0].captions
    assert len(at.image) == 1 and len(captions) == 6
    assert all("(predicted " in caption for caption in captions)
    assert any("pointing-game hit rate" in str(c["data"][0].get("y")) for c in charts)

    # The same instruments on any trained net: the run's checkpoints first, then the embedded demos.
    options = at.selectbox(key="lesson_any_model").options
    paths = {c["label"]: c["path"] for c in lesson.trained_checkpoints()}
    titles = [checkpoint_title(paths[label]) for label in ("Plain-20", "ResNet-20")]
    assert all(title in options and quick_run not in title for title in titles)  # named by their race
    assert titles[0].startswith("Plain-20 from the race of ") and titles[0].endswith(", finished at step 50")
    assert options.index(titles[0]) < options.index("Plain-20 trained on Shapes (embedded demo)")
    at.selectbox(key="lesson_any_model").set_value(checkpoint_id(paths["ResNet-20"])).run(timeout=240)
    at.button(key="lesson_any_run").click().run(timeout=240)
    assert not at.exception, at.exception
    any_charts = [json.loads(e.proto.spec) for e in at.get("plotly_chart")][len(charts):]
    assert len(any_charts) == 4  # surface, slice, lesion study, curve: the lesson's figures
    assert [t["name"] for t in any_charts[0]["data"] if t["type"] == "contour"] == ["ResNet-20"]
    assert any(t.get("name") == "ResNet-20: one block removed" for t in any_charts[2]["data"])
