"""Memory budget in the app: the sidebar says it, and an over-budget view is refused with a button that fits."""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from resnet_core.settings import ENV_MEMORY_BUDGET
from tests.conftest import APP_SCRIPT


@pytest.fixture
def small_budget_app(monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv(ENV_MEMORY_BUDGET, "100MB")  # read at call time by resnet_core.settings.memory_budget
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def test_sidebar_shows_the_budget(small_budget_app: AppTest) -> None:
    captions = [c.value for c in small_budget_app.sidebar.caption]
    assert f"Memory budget 100 MB per request ({ENV_MEMORY_BUDGET})" in captions


def test_activations_refuses_resnet1202_and_offers_the_nearest_net(small_budget_app: AppTest) -> None:
    at = small_budget_app
    at.session_state["sb_arch"] = "resnet1202"
    at.switch_page("../pages/activations.py").run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1
    assert errors[0].startswith("Recording the activations of ResNet-1202 at 32 px (batch 8) needs about ")
    assert "(budget 100 MB per request): try " in errors[0] and "ResNet-110" in errors[0]
    assert not at.get("plotly_chart")  # nothing was computed
    button = next(b for b in at.button if b.label.startswith("Use ResNet-110"))
    button.click().run()
    assert not at.exception, at.exception
    assert at.session_state["sb_arch"] == "resnet110"
    assert not at.error
    assert at.title[0].value == "Activations of ResNet-110"
    assert at.get("plotly_chart")


def test_training_refuses_slider_extremes_before_start(small_budget_app: AppTest,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    at = small_budget_app
    # Shapes at 64 px alone take over 600 MB: a budget where a smaller batch fits (read at call time).
    monkeypatch.setenv(ENV_MEMORY_BUDGET, "3GB")
    at.switch_page("../pages/training.py").run()
    assert not at.exception, at.exception
    preset = at.session_state["tr_preset"]
    at.number_input(key=f"tr_{preset}_batch").set_value(1024)
    at.number_input(key=f"tr_{preset}_size").set_value(64)
    at.number_input(key=f"tr_{preset}_width").set_value(64)
    at.run()
    errors = [e.value for e in at.error]
    assert any(e.startswith("The race ") and "(batch 1024, 64 px, width 64) needs about" in e for e in errors)
    assert at.button(key="tr_start").disabled
    fix = next(b for b in at.button if b.label.startswith("Use batch "))
    fix.click().run()
    assert not at.exception, at.exception
    assert not [e for e in at.error if e.value.startswith("The race ")]
    assert not at.button(key="tr_start").disabled
    assert 2 <= at.number_input(key=f"tr_{preset}_batch").value < 1024


def test_building_a_net_over_the_budget_is_refused_before_it_is_allocated(small_budget_app: AppTest,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The sidebar's own build is costed too: Wide ResNet-101-2 (127 M parameters, 508 MB) under 300 MB."""
    at = small_budget_app
    monkeypatch.setenv(ENV_MEMORY_BUDGET, "300MB")
    at.session_state["sb_arch"] = "wide_resnet101_2"
    at.session_state["sb_shortcut"] = "B"
    at.switch_page("../pages/gradient_flow.py").run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert errors and errors[0].startswith("Building Wide ResNet-101-2 needs about 508 MB of memory")
    assert not at.get("plotly_chart")
