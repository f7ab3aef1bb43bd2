"""The lesson in teacher mode (AppTest): each step asks before it shows its answer, and presenter view shows one
step per screen with Previous and Next, large text and large figure text for that session only."""

from __future__ import annotations

import json

import pytest
from explorer_ui.figures import PROJECTOR_FIGURE_PX, PROJECTOR_TEXT_PX
from streamlit.testing.v1 import AppTest

from resnet_core.questions import QUESTIONS
from tests.conftest import APP_SCRIPT

PAGE = "../pages/lesson.py"


def _lesson(query: dict[str, str], tmp_path, monkeypatch) -> AppTest:
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path / "runs"))  # no quartet race: step 1 offers to train
    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=240)
    for name, value in query.items():
        at.query_params[name] = value
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def _charts(at: AppTest) -> dict[str, dict]:
    return {str(c.proto.id): json.loads(c.proto.spec) for c in at.get("plotly_chart")}


@pytest.fixture
def presenting(tmp_path, monkeypatch) -> AppTest:
    return _lesson({"present": "1", "reveal": "1"}, tmp_path, monkeypatch)


def test_presenter_view_shows_one_step_per_screen(presenting):
    at = presenting
    assert [h.value for h in at.header] == ["1. The degradation problem, measured"]
    assert any(m.value == "**Step 1 of 8**" for m in at.markdown)
    assert at.button(key="lesson_present_previous").disabled
    for step in range(2, 9):
        at.button(key="lesson_present_next").click().run()
        assert not at.exception, at.exception
        assert [h.value.split(".")[0] for h in at.header] == [str(step)]
        assert any(m.value == f"**Step {step} of 8**" for m in at.markdown)
    assert at.button(key="lesson_present_next").disabled
    at.button(key="lesson_present_previous").click().run()
    assert [h.value.split(".")[0] for h in at.header] == ["7"]


def test_presenter_text_is_large_for_that_session_only(presenting, tmp_path, monkeypatch):
    at = presenting
    at.button(key="lesson_present_next").click().run()  # step 2: the identity chart
    css = [m.value for m in at.markdown if m.value.startswith("<style>")]
    assert len(css) == 1 and f"font-size: {PROJECTOR_TEXT_PX}px" in css[0]
    (identity,) = [f for f in _charts(at).values() if "residual block, last BN at zero" in str(f)]
    assert identity["layout"]["font"]["size"] >= PROJECTOR_FIGURE_PX
    assert identity["layout"]["xaxis"]["tickfont"]["size"] >= PROJECTOR_FIGURE_PX
    # Another session on the same server, without present=1: the lesson's own sizes, no style.
    other = _lesson({"reveal": "1"}, tmp_path, monkeypatch)
    assert not [m for m in other.markdown if m.value.startswith("<style>")]
    (plain,) = [f for f in _charts(other).values() if "residual block, last BN at zero" in str(f)]
    assert plain["layout"].get("font", {}).get("size", 0) < PROJECTOR_FIGURE_PX
    assert len(other.header) >= 5


def test_each_step_asks_before_its_chart(tmp_path, monkeypatch):
    at = _lesson({}, tmp_path, monkeypatch)
    asked = [str(r.key) for r in at.radio if str(r.key).startswith("predict_")]
    assert asked[:4] == ["predict_lesson.2", "predict_lesson.3", "predict_lesson.4", "predict_lesson.5"]
    assert not [f for f in _charts(at).values() if "residual block, last BN at zero" in str(f)]
    at.radio(key="predict_lesson.2").set_value(1).run()  # "Zeros": the plain block's answer
    at.button(key="predict_commit_lesson.2").click().run()
    (identity,) = [f for f in _charts(at).values() if "residual block, last BN at zero" in str(f)]
    relative = dict(zip(identity["data"][0]["y"], identity["data"][0]["x"], strict=True))
    measured = 0 if relative["residual block, last BN at zero"] == 0.0 else 2
    question = QUESTIONS["lesson.2"]
    reveal = [i.value for i in at.info if "Measured here:" in i.value]
    assert reveal == [f'You predicted "{question.choices[1]}". Measured here: **{question.choices[measured]}**.']
    assert "predict_lesson.3" in [str(r.key) for r in at.radio]  # the next step still asks
