"""Teacher mode in a real browser at 1280x720: a teacher polls the class on a question, three students answer
from their own sessions, the teacher's view shows the three answers beside the measured one; a locked link; the
presenter view. Screenshots of each (artifacts/screenshots/teacher-*.png)."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import new_tab, screenshot, wait_idle

pytestmark = pytest.mark.browser
QUESTION = "Where is the gradient norm largest: the first, middle or last block?"
CHOICES = ("The first block", "A middle block", "The last block")


def _tab(profile):
    return new_tab(profile, 1280, 720, timeout_ms=180_000)


def _no_exception(tab) -> None:
    assert tab.locator('[data-testid="stException"]').count() == 0


def test_a_teacher_polls_three_students(profile, server_url: str) -> None:
    tabs = []
    try:
        teacher = _tab(profile)
        tabs.append(teacher)
        teacher.goto(f"{server_url}/gradient-flow")
        main = teacher.locator('[data-testid="stMain"]')
        main.get_by_text(QUESTION).wait_for()
        wait_idle(teacher, timeout=180_000)
        assert teacher.locator(".st-key-gf_norms .main-svg").count() == 0  # no answer before a prediction
        main.get_by_text(QUESTION).scroll_into_view_if_needed()
        screenshot(teacher, "teacher-question-before")
        main.get_by_role("button", name="Poll the class").click()
        main.get_by_text("Students open:").wait_for()
        main.locator("pre", has_text="key=").first.wait_for()
        codes = [c for c in main.locator("pre").all_inner_texts() if "poll=" in c]
        student_link = next(c.strip() for c in codes if "key=" not in c)
        teacher_link = next(c.strip() for c in codes if "key=" in c)
        assert student_link.startswith(f"{server_url}/gradient-flow?") and "reveal" not in student_link

        for pick in (0, 2, 0):
            student = _tab(profile)
            tabs.append(student)
            student.goto(student_link)
            body = student.locator('[data-testid="stMain"]')
            body.get_by_text(QUESTION).wait_for()
            body.get_by_text("Your answer goes to your class's poll.").wait_for()
            body.get_by_text(CHOICES[pick], exact=True).click()
            body.get_by_role("button", name="Commit my answer").click()
            body.get_by_text(re.compile(r"Measured here: (The first block|A middle block|The last block)\.")).wait_for()
            student.locator(".st-key-gf_norms .main-svg").first.wait_for()
            _no_exception(student)
        body.get_by_text(re.compile(r"Measured here:")).first.scroll_into_view_if_needed()
        screenshot(student, "teacher-question-after")

        view = _tab(profile)
        tabs.append(view)
        view.goto(teacher_link)
        panel = view.locator('[data-testid="stMain"]')
        panel.get_by_text("3 answers so far").wait_for()
        panel.get_by_role("button", name="Close the poll").wait_for()
        view.locator('[data-testid="stImage"] img').first.wait_for()  # the QR code (drawn after the buttons)
        view.locator('[data-testid="stPlotlyChart"]').filter(has_text="answers").first.wait_for()
        panel.get_by_text("Class poll.").scroll_into_view_if_needed()
        wait_idle(view)
        screenshot(view, "teacher-poll-view")
        # The students' link never shows the teacher's controls.
        assert student.get_by_role("button", name="Close the poll").count() == 0
        _no_exception(view)
    finally:
        for tab in tabs:
            tab.close()


def test_a_locked_link_and_the_presenter_view(profile, server_url: str) -> None:
    tab = _tab(profile)
    try:
        tab.goto(f"{server_url}/gradient-flow?gf_batch=8&lock=gf_batch,arch&reveal=1")
        main = tab.locator('[data-testid="stMain"]')
        main.get_by_text(re.compile(r"\(set by this link\)")).first.wait_for()
        wait_idle(tab, timeout=180_000)
        assert tab.locator(".st-key-gf_batch").count() == 0  # the locked widget is not offered
        _no_exception(tab)
        screenshot(tab, "teacher-locked-link")

        tab.goto(f"{server_url}/why-residuals?present=1&reveal=1")
        main.get_by_text("Step 1 of 8").wait_for()
        main.get_by_role("button", name="Next").click()
        main.get_by_text("Step 2 of 8").wait_for()
        tab.locator(".st-key-lesson_identity .main-svg").first.wait_for()
        wait_idle(tab, timeout=180_000)
        assert tab.locator('[data-testid="stSidebar"]').get_attribute("data-collapsed") == "true"  # folded
        size = tab.evaluate("""() => parseFloat(getComputedStyle(
            document.querySelector('[data-testid="stMain"] [data-testid="stMarkdownContainer"] p')).fontSize)""")
        assert size >= 20
        tick = tab.evaluate("""() => parseFloat(getComputedStyle(
            document.querySelector('.st-key-lesson_identity .xtick text')).fontSize)""")
        assert tick >= 18
        assert main.get_by_role("heading", name=re.compile(r"^[13-8]\. ")).count() == 0  # one step per screen
        _no_exception(tab)
        screenshot(tab, "teacher-presenter")
    finally:
        tab.close()
