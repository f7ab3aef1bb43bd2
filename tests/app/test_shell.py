"""The app shell through AppTest: entry point, every page in PAGES, the sidebar, URL round trips."""

from __future__ import annotations

import json
import re

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.conftest import APP_SCRIPT


def _pages() -> list[str]:
    """Every page file app/navigation.py navigates to, read at test time so pages added later are covered too."""
    source = APP_SCRIPT.read_text()
    return re.findall(r"st\.Page\(\s*\"(\.\./pages/[\w/]+\.py)\"", source)


def _fresh(query: dict[str, str] | None = None) -> AppTest:
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=120)
    if query:
        at.query_params.update(query)
    return at.run()


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_entry_point_shows_sidebar_and_default_page(app: AppTest) -> None:
    arch = app.sidebar.selectbox(key="sb_arch")
    assert arch.value == "resnet20"
    assert app.sidebar.toggle(key="sb_plain").value is False
    assert app.sidebar.radio(key="sb_shortcut").value == "A"  # the paper's CIFAR default
    assert app.title[0].value == "Architecture of ResNet-20"
    assert app.query_params["arch"] == ["resnet20"] or app.query_params["arch"] == "resnet20"


def test_pages_are_discovered() -> None:
    pages = _pages()
    assert "../pages/architecture.py" in pages
    assert len(pages) == len(set(pages))


@pytest.mark.parametrize("page", _pages())
def test_every_page_runs(app: AppTest, page: str) -> None:
    app.switch_page(page).run()
    assert not app.exception, f"{page}: {app.exception}"
    assert not app.error, f"{page}: {[e.value for e in app.error]}"
    # A page says what it is: a title or header with words, not an empty screen.
    headings = [h.value for h in app.title] + [h.value for h in app.header]
    assert headings and all(h.strip() for h in headings), page
    # The shared sidebar stays in place on every page; the lesson, which builds its own nets, says so instead.
    if page.endswith("lesson.py"):
        assert not app.sidebar.selectbox
        assert app.sidebar.caption[0].value.startswith("The lesson builds and trains its own nets")
    else:
        assert app.sidebar.selectbox(key="sb_arch").value == "resnet20"


def test_changing_architecture_changes_table_and_charts(app: AppTest) -> None:
    before_table = app.dataframe[0].value
    before_chart = json.loads(app.get("plotly_chart")[0].proto.spec)
    app.sidebar.selectbox(key="sb_arch").set_value("resnet56").run()
    assert not app.exception
    after_table = app.dataframe[0].value
    after_chart = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert list(before_table["blocks"]) == [0, 3, 3, 3, 0]
    assert list(after_table["blocks"]) == [0, 9, 9, 9, 0]
    assert before_chart["data"][0]["y"] != after_chart["data"][0]["y"]
    assert sum(after_chart["data"][0]["y"]) == 853_018
    assert _metrics(app)["Parameters"] == "853,018"
    assert app.query_params["arch"] in ("resnet56", ["resnet56"])


def _param(at: AppTest, key: str) -> str:
    value = at.query_params[key]
    return value[0] if isinstance(value, list) else value


def test_url_round_trip() -> None:
    query = {"arch": "resnet50", "plain": "1", "shortcut": "C", "stride": "1x1", "preact": "0", "width": "half"}
    at = _fresh(query)
    assert not at.exception
    assert at.sidebar.selectbox(key="sb_arch").value == "resnet50"
    assert at.sidebar.toggle(key="sb_plain").value is True
    assert at.sidebar.radio(key="sb_shortcut").value == "C"
    assert at.sidebar.radio(key="sb_stride").value == "1x1"
    assert at.title[0].value == "Architecture of Plain-50"
    assert {key: _param(at, key) for key in query} == query  # what came in is what is written back
    # A widget change is written to the URL, so the link reproduces it.
    at.sidebar.toggle(key="sb_plain").set_value(False).run()
    assert _param(at, "plain") == "0" and _param(at, "arch") == "resnet50"
    assert at.title[0].value == "Architecture of ResNet-50"
    # The CIFAR nets have no bottleneck, so the stride choice leaves the URL.
    at.sidebar.selectbox(key="sb_arch").set_value("resnet32").run()
    assert "stride" not in at.query_params and _param(at, "shortcut") == "A"


def test_hand_edited_bad_url_gets_sentences() -> None:
    at = _fresh({"arch": "resnet9000", "plain": "maybe", "width": "huge", "shortcut": "Z"})
    assert not at.exception
    assert not at.sidebar.warning  # the link's notices are at the top of the main area
    warnings = [w.value for w in at.main.children[0].warning]
    assert len(warnings) == 4
    assert any("'arch'" in w and "ResNet-20" in w for w in warnings)
    assert all(w.endswith(".") and "Traceback" not in w for w in warnings)
    # Each refused value is repeated verbatim in a code box, never inside the Markdown of the warning.
    assert sorted(c.value for c in at.main.children[0].code) == ["Z", "huge", "maybe", "resnet9000"]
    assert not any(bad in w for w in warnings for bad in ("resnet9000", "maybe", "huge"))
    # Nothing is lost: the default view is shown and works, and the URL now holds what is shown.
    assert at.title[0].value == "Architecture of ResNet-20"
    assert _metrics(at)["Parameters"] == "269,722"
    assert (_param(at, "arch"), _param(at, "plain"), _param(at, "width")) == ("resnet20", "0", "full")
