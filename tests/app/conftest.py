from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.conftest import APP_MAIN


@pytest.fixture
def app() -> AppTest:
    """The real entry point, run once; cached resources cleared so tests don't see each other's models."""
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(APP_MAIN), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def open_page(app: AppTest, page_path: str) -> AppTest:
    """Switch ``app`` to a page (path relative to app/main.py), run it, and fail on any exception."""
    app.switch_page(page_path).run()
    assert not app.exception, app.exception
    return app
