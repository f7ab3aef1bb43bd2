"""Predict, then reveal, and the class poll (AppTest, real SQLite): the question before the chart, its answer
derived from the chart's own data, reveal=1, and eight student sessions answering one poll that only the
teacher's key closes and exports."""

from __future__ import annotations

import json
import sqlite3

import pytest
from streamlit.testing.v1 import AppTest

from resnet_core.polls import POLL_DB_ENV, PollStore
from resnet_core.questions import QUESTIONS
from tests.conftest import APP_SCRIPT

PAGE = "../pages/gradient_flow.py"
QUESTION = QUESTIONS["gradient_flow.largest"]


def _session(query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=120)
    for name, value in (query or {}).items():
        at.query_params[name] = value
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def _norms(at: AppTest) -> dict | None:
    for chart in at.get("plotly_chart"):
        figure = json.loads(chart.proto.spec)
        if {d.get("name") for d in figure["data"]} == {"ResNet-20", "Plain-20"}:
            return figure
    return None


def _measured(figure: dict) -> int:
    """The right answer from the chart the student is shown: where the first net's norm peaks."""
    y = figure["data"][0]["y"]
    peak = max(range(len(y)), key=lambda i: y[i])
    return 0 if peak == 0 else 2 if peak == len(y) - 1 else 1


@pytest.fixture
def poll_db(tmp_path, monkeypatch):
    monkeypatch.setenv(POLL_DB_ENV, str(tmp_path / "polls.sqlite3"))
    return tmp_path / "polls.sqlite3"


def test_the_question_comes_before_its_chart_and_the_reveal_follows_the_data(poll_db):
    at = _session({"weights": "random"})
    assert _norms(at) is None  # nothing to read the answer from yet
    radio = at.radio(key=f"predict_{QUESTION.id}")
    assert list(radio.options) == list(QUESTION.choices) and radio.value is None
    assert at.button(key=f"predict_commit_{QUESTION.id}").disabled
    radio.set_value(1).run()
    at.button(key=f"predict_commit_{QUESTION.id}").click().run()
    figure = _norms(at)
    assert figure is not None
    measured = _measured(figure)
    reveal = [i.value for i in at.info if "Measured here:" in i.value]
    assert len(reveal) == 1 and f"**{QUESTION.choices[measured]}**" in reveal[0]
    assert reveal[0].startswith("Right." if measured == 1 else f'You predicted "{QUESTION.choices[1]}".')


def test_reveal_in_the_link_skips_the_question():
    at = _session({"weights": "random", "reveal": "1"})
    assert _norms(at) is not None and not [r for r in at.radio if str(r.key).startswith("predict_")]


def test_eight_students_answer_one_poll_and_only_the_key_closes_and_exports_it(poll_db):
    teacher = _session({"weights": "random"})
    teacher.button(key=f"poll_open_{QUESTION.id}").click().run()
    codes = [c.value for c in teacher.code]
    student_link = next(c for c in codes if "poll=" in c and "key=" not in c)
    teacher_link = next(c for c in codes if "key=" in c)
    poll_id = student_link.split("poll=")[1].split("&")[0]
    key = teacher_link.split("key=")[1].split("&")[0]
    assert PollStore(poll_db).poll(poll_id).question_id == QUESTION.id

    picks = [0, 1, 2, 1, 1, 0, 2, 1]
    for pick in picks:
        student = _session({"weights": "random", "poll": poll_id})
        assert any("goes to your class's poll" in c.value for c in student.caption)
        student.radio(key=f"predict_{QUESTION.id}").set_value(pick).run()
        student.button(key=f"predict_commit_{QUESTION.id}").click().run()
        assert not student.exception
        # A student's link offers no teacher controls.
        assert not [b for b in student.button if str(b.key).startswith(("poll_close", "poll_reset"))]
    assert PollStore(poll_db).tally(poll_id) == [picks.count(i) for i in range(3)]

    # A student who adds a made-up key gets one sentence, and the question as a student.
    guess = _session({"weights": "random", "poll": poll_id, "key": "not-the-key"})
    assert any("does not open the poll's teacher view" in w.value for w in guess.warning)
    assert not [b for b in guess.button if str(b.key).startswith("poll_close")]

    view = _session({"weights": "random", "poll": poll_id, "key": key})
    tally = next(json.loads(c.proto.spec) for c in view.get("plotly_chart")
                 if json.loads(c.proto.spec)["data"][0].get("orientation") == "h")
    assert list(tally["data"][0]["x"]) == [picks.count(i) for i in range(3)]
    assert list(tally["data"][0]["y"]) == list(QUESTION.choices)
    assert any(f"{len(picks)} answers so far" in c.value for c in view.caption)
    assert view.get("imgs") or view.get("image")  # the QR code for the projector
    view.button(key=f"poll_close_{QUESTION.id}").click().run()
    assert PollStore(poll_db).poll(poll_id).closed
    late = _session({"weights": "random", "poll": poll_id})
    late.radio(key=f"predict_{QUESTION.id}").set_value(0).run()
    late.button(key=f"predict_commit_{QUESTION.id}").click().run()
    assert any("This poll is closed" in w.value for w in late.warning)
    assert sum(PollStore(poll_db).tally(poll_id)) == len(picks)


def test_a_damaged_poll_database_is_one_sentence_and_the_question_still_works(poll_db):
    poll_db.write_bytes(b"garbage, not SQLite " * 100)
    at = _session({"weights": "random", "poll": "abcdef"})
    assert any("is damaged, so the poll is off; the page works without it" in w.value for w in at.warning)
    at.radio(key=f"predict_{QUESTION.id}").set_value(0).run()
    at.button(key=f"predict_commit_{QUESTION.id}").click().run()
    assert not at.exception and _norms(at) is not None


def test_a_session_opens_at_most_twenty_polls(poll_db):
    from explorer_ui.predict import MAX_POLLS_PER_SESSION

    at = _session({"weights": "random"})
    for _ in range(MAX_POLLS_PER_SESSION):
        at.button(key=f"poll_open_{QUESTION.id}").click().run()
    assert not at.warning
    at.button(key=f"poll_open_{QUESTION.id}").click().run()
    assert any(f"This session has opened {MAX_POLLS_PER_SESSION} polls" in w.value for w in at.warning)
    with sqlite3.connect(poll_db) as db:
        assert db.execute("SELECT COUNT(*) FROM polls").fetchone()[0] == MAX_POLLS_PER_SESSION
