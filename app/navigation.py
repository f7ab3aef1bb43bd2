"""The script every visitor's session runs (app/main.py serves it): the navigation and the shared sidebar, then
the page."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from explorer_ui.budget import budget_caption
from explorer_ui.figures import projector_style
from explorer_ui.notices import name_page_fallbacks, open_area, show_link_notices
from explorer_ui.reconnect import notice_ended_session
from explorer_ui.sidebar import model_picker
from explorer_ui.url_params import presenting

# The favicon is a bundled PNG, served by this server: a ":material/...:" page_icon makes the browser fetch an SVG
# from fonts.gstatic.com, and an emoji depends on the browser's fonts. The ":material/...:" icons inside the page
# are fine: Streamlit serves that font itself (tests/browser/test_offline_requests.py records every request).
st.set_page_config(page_title="ResNet Explorer", page_icon=str(Path(__file__).parent / "assets" / "favicon.png"),
                   layout="wide", initial_sidebar_state="collapsed" if presenting() else "auto")

PAGES = [
    st.Page("../pages/architecture.py", title="Architecture", icon=":material/account_tree:", url_path="architecture"),
    st.Page("../pages/lesson.py", title="Why residuals work", icon=":material/school:", url_path="why-residuals"),
    st.Page("../pages/activations.py", title="Activations", icon=":material/layers:", url_path="activations"),
    st.Page("../pages/gradient_flow.py", title="Gradient flow", icon=":material/trending_up:", url_path="gradient-flow"),
    st.Page("../pages/training.py", title="Training race", icon=":material/sprint:", url_path="training"),
    st.Page("../pages/grad_cam.py", title="Grad-CAM", icon=":material/center_focus_strong:", url_path="grad-cam"),
]


def _home() -> None:
    """The root URL. Streamlit serves its default page only at `/` (its url_path then answers "Page not found"),
    so the default is this hidden stub and Architecture keeps a path of its own: `/` forwards there."""


# The stub's own url_path is reserved by Streamlit but unreachable; "home" is never linked to.
HOME = st.Page(_home, title="ResNet Explorer", url_path="home", default=True, visibility="hidden")

page = st.navigation([HOME, *PAGES])
if page is HOME:
    # The link's settings travel along as given: the sidebar validates them there (explorer_ui.url_params).
    st.switch_page(PAGES[0], query_params={k: st.query_params.get_all(k) for k in st.query_params})
open_area()  # the link's refused values go first in the main area
notice_ended_session(page.url_path)  # a page that reconnected to a fresh session after its server stopped
st.session_state["model_choice"] = model_picker(page.url_path)  # the page decides the default weights
budget_caption()
if presenting():
    projector_style()
pending = show_link_notices(st.session_state["model_choice"])
page.run()
name_page_fallbacks(pending)  # a refused page setting names the value its widget ended with
