from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import APP_SCRIPT


@pytest.fixture
def app() -> AppTest:
    """The real entry point, run once, as a new session of the one server this process is: Streamlit's caches are
    shared with the other tests as they are with a server's other sessions (every cached page function keys on
    what its result depends on), which also keeps the suite quick. A test about a cold server clears them."""
    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def revealed_app() -> AppTest:
    """``app`` opened from a link with ``reveal=1``: every page shows its answers without asking first."""
    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=120)
    at.query_params["reveal"] = "1"
    at.run()
    assert not at.exception, at.exception
    return at


def open_page(app: AppTest, page_path: str) -> AppTest:
    """Switch ``app`` to a page (path relative to app/navigation.py), run it, and fail on any exception."""
    app.switch_page(page_path).run()
    assert not app.exception, app.exception
    return app


def answer_questions(at: AppTest, choice: int = 0) -> AppTest:
    """Commit ``choice`` to every question the page asks before its answer (teacher mode's predict-then-reveal), as
    a student does, so the answers and their charts show."""
    for _ in range(12):
        open_questions = [r for r in at.radio if str(r.key).startswith("predict_")]
        if not open_questions:
            return at
        question = open_questions[0]
        question.set_value(choice).run()
        at.button(key=f"predict_commit_{question.key.removeprefix('predict_')}").click().run()
        assert not at.exception, at.exception
    return at
