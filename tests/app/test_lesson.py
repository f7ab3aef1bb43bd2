"""The "Why residuals work" lesson: resnet_core.lesson's measurements, and the page that shows them."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import replace

import pytest
from streamlit.testing.v1 import AppTest

from resnet_core import lesson
from resnet_core.runs import load_run
from tests.conftest import APP_SCRIPT

PAGE = "../pages/lesson.py"


def test_identity_check_measures_the_claim() -> None:
    check = lesson.identity_check("resnet20", "layer2.1", width=8, batch=4)
    rows = check.set_index(["residual", "zero_init"])
    assert rows.loc[(True, True), "max_abs_diff"] == 0.0  # exactly the identity
    assert rows.loc[(True, True), "max_abs_input"] > 0.1  # ... on a real, non-zero input
    # The plain block with the same zeroed layer outputs zeros: as far from x as x is from 0.
    assert rows.loc[(False, True), "max_abs_diff"] == pytest.approx(rows.loc[(False, True), "max_abs_input"])
    assert rows.loc[(False, True), "relative_diff"] == pytest.approx(1.0)
    assert rows.loc[(True, False), "relative_diff"] > 0.1 and rows.loc[(False, False), "relative_diff"] > 0.1


def test_gradient_split_adds_up_and_zero_init_passes_gradient_unchanged() -> None:
    split = lesson.gradient_split("resnet20", width=8, batch=4)
    assert len(split) == 9 and set(split["shortcut"]) == {"identity", "zero-pad"}
    assert (split["sum_error"] < 1e-5).all()
    assert ((split["shortcut_share"] + split["branch_share"] - 1).abs() < 1e-5).all()
    assert (split["branch_norm"] > 0).all() and (split["shortcut_norm"] > 0).all()
    zero = lesson.gradient_split("resnet20", width=8, batch=4, zero_init_residual=True)
    assert (zero["branch_norm"] == 0).all()
    assert zero["total_norm"].max() == pytest.approx(zero["total_norm"].min(), rel=1e-5)


def test_unrolled_paths_match_enumeration() -> None:
    n = 4
    # Enumerate every path: for each block, shortcut (0) or branch (1); length = branches taken.
    counts: dict[int, int] = {}
    for path in itertools.product((0, 1), repeat=n):
        counts[sum(path)] = counts.get(sum(path), 0) + 1
    table = lesson.unrolled_paths(n)
    assert dict(zip(table["length"], table["paths"], strict=True)) == counts
    assert table["share"].sum() == pytest.approx(1.0)
    summary = lesson.path_summary(54)
    assert summary["paths"] == 2**54 and summary["mean_length"] == pytest.approx(27)
    assert summary["std_length"] == pytest.approx(math.sqrt(54) / 2)
    assert lesson.blocks_of("resnet110") == 54
    with pytest.raises(ValueError, match="between 0 and 1000"):
        lesson.unrolled_paths(-1)


def test_the_demo_pair_serves_only_when_both_nets_learned() -> None:
    from resnet_core.weights.demo import demo_test_accuracy

    accuracy = {"Plain-20": demo_test_accuracy("plain20"), "ResNet-20": demo_test_accuracy("resnet20")}
    assert lesson.demo_pair_ready() == all(a >= 0.2 for a in accuracy.values())  # twice chance, ten classes
    pair = lesson.load_pair(lesson.DEMO_PAIR)
    assert list(pair.models) == ["Plain-20", "ResNet-20"] and pair.accuracy == accuracy
    assert [m.residual for m in pair.models.values()] == [False, True] and pair.classes == 10
    # This session's runs folder holds no pair yet: the demo when it learned, else nothing (the page trains).
    if lesson.find_pair_run() is None:
        assert lesson.choose_pair() == (lesson.DEMO_PAIR if lesson.demo_pair_ready() else None)


def _figures(at: AppTest) -> list[dict]:
    return [json.loads(e.proto.spec) for e in at.get("plotly_chart")]


@pytest.fixture
def lesson_page(revealed_app: AppTest, tmp_path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    # A runs folder of its own: a race another test finished in the session's folder would fill step 1.
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path / "runs"))
    revealed_app.switch_page(PAGE).run()
    assert not revealed_app.exception, revealed_app.exception
    return revealed_app


def test_lesson_page_cold_start_and_controls(lesson_page: AppTest) -> None:
    at = lesson_page
    assert at.title[0].value == "Why residuals work"
    # No run in this (isolated) runs folder: step 1 offers to train the quartet, with a time estimate for this
    # machine. Steps 6-8 use the embedded demo models when both learned; otherwise step 6 offers to train the
    # pair (with its estimate) and the page stops there until the trained nets exist.
    quartet = at.button(key="lesson_train_curves").proto.label
    assert quartet.startswith("Train the quartet here (about ") and "1000 steps" in quartet
    if lesson.demo_pair_ready():
        assert [h.value.split(".")[0] for h in at.header] == [str(i) for i in range(1, 9)]
        assert any("embedded demo models" in c.value for c in at.caption)
    else:
        assert [h.value.split(".")[0] for h in at.header] == ["1", "2", "3", "4", "5", "6"]
        assert "on this machine" in at.button(key="lesson_train_pair").proto.label
        assert any("Steps 6, 7 and 8 are computed once" in i.value for i in at.info)
    paper, identity, split, depth, paths = _figures(at)[:5]
    assert paper["data"][0]["y"] == list(lesson.PAPER_TABLE2_TOP1["plain"])
    # Step 2: the residual block with a zeroed branch is the identity; the plain one is not.
    relative = dict(zip(identity["data"][0]["y"], identity["data"][0]["x"], strict=True))
    assert relative["residual block, last BN at zero"] == 0.0
    assert relative["plain block, last BN at zero"] == pytest.approx(1.0)
    text = "\n".join(m.value for m in at.markdown)
    assert "max |y - x| = 0**" in text
    # Step 3: shortcut and branch bars, and their sum, per block.
    shortcut, branch, total = (trace["y"] for trace in split["data"])
    assert len(total) == 9
    assert all(s > 0 and b > 0 for s, b in zip(shortcut, branch, strict=True))
    # Step 4, the measured direction (issue 4): plain BN nets' gradients explode toward the input,
    # residual nets' grow gently; at 56 layers the plain ratio is at least 100x the residual one.
    by_name = {trace["name"]: dict(zip(trace["x"], trace["y"], strict=True)) for trace in depth["data"]}
    assert by_name["plain"][56] >= 100 * by_name["residual"][56]
    assert by_name["plain"][56] > by_name["plain"][20] > 1
    assert "explode toward the input" in text
    # Step 5: 54 blocks (ResNet-110) -> Binomial(54, 1/2) over 55 lengths.
    assert len(paths["data"][0]["x"]) == 55 and sum(paths["data"][0]["y"]) == pytest.approx(1.0)
    assert "2^54 = 18,014,398,509,481,984 paths" in text
    # Step 1 links to the Training page whenever the app navigates to one.
    if '"../pages/training.py"' in APP_SCRIPT.read_text():
        links = at.get("page_link")
        assert len(links) == 1 and "Training page" in links[0].proto.label

    # The controls, on the same page (one cold walk per file: steps 6-8 are computed on every cold page).
    at.toggle(key="lesson_zero_init").set_value(True).run()
    if lesson.demo_pair_ready():  # step 6 was measured (or read back) on the first run: now it says so
        assert any(c.value.startswith("Measured earlier on this machine and kept") and "264 forward passes" in c.value
                   for c in at.caption)
    split = _figures(at)[2]
    assert split["data"][1]["y"] == [0.0] * 9  # no gradient through a zeroed branch
    assert "the branch part is exactly 0" in "\n".join(m.value for m in at.markdown)
    at.slider(key="lesson_blocks").set_value(3).run()
    paths = _figures(at)[4]
    assert paths["data"][0]["y"] == [0.125, 0.375, 0.375, 0.125]
    assert not at.exception
    _lessons_race_in_the_race_slot(at)  # on the same walk: the steps below step 1 are cached by now


def _lessons_race_in_the_race_slot(at: AppTest) -> None:
    """The lesson's race trains in the runs folder's one race slot: refused while another race trains, shown live
    while it trains, and step 1 draws it once it finished."""
    # The quartet's name and racers at a few steps of a tiny size (the page finds a race by its name).
    small = dict(width=4, image_size=16, batch_size=16, n_train=128, n_test=32, eval_every=3, eval_samples=32,
                 checkpoint_every=0)
    other = lesson.train_race(replace(lesson.pair_race(), steps=400, **small))  # another race holds the slot
    try:
        assert other.wait_for_step(1, timeout=120)
        at.run()
        at.button(key="lesson_train_curves").click().run()  # one race at a time: refused, with whose race trains
        assert not at.exception, at.exception
        assert [e.value for e in at.error if "one race trains at a time" in e.value][0].startswith(
            "The race 'Lesson: Plain-20 vs ResNet-20' (started by the lesson) is training, at step ")
    finally:
        other.stop()
        other.wait(timeout=120)
    quartet = lesson.train_race(replace(lesson.curves_race(), steps=400, **small))
    try:
        assert quartet.wait_for_step(1, timeout=120)
        at.run()
        assert not at.exception, at.exception
        progress = [p.proto.text for p in at.get("progress")]
        assert any(t.startswith("The degradation quartet: step ") and " of 400 · running" in t for t in progress)
        assert not [b for b in at.button if b.key == "lesson_train_curves"]  # no second race offered
        assert any("the Training page shows it too" in c.value for c in at.caption)
    finally:
        quartet.stop()
        quartet.wait(timeout=120)
    finished = lesson.train_race(replace(lesson.curves_race(), steps=3, **small))
    run_id = lesson.wait_for_race(finished)
    at.run()
    assert not at.exception, at.exception
    text = "\n".join(m.value for m in at.markdown)
    assert f"Training curves of {load_run(run_id).title} (" in text and run_id not in text  # step 1 draws the race
    assert not [b for b in at.button if b.key == "lesson_train_curves"]
