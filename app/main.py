"""ResNet Explorer: `streamlit run app/main.py`. Builds the navigation and the shared sidebar."""

from __future__ import annotations

import os

# Before torch loads: a training thread and a page computing at the same time each get an OpenMP team; with
# the default busy-waiting they starve each other on a 2-core laptop (measured here: 10x slower).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import streamlit as st  # noqa: E402
from explorer_ui.sidebar import model_picker  # noqa: E402

st.set_page_config(page_title="ResNet Explorer", page_icon=":material/hub:", layout="wide")

PAGES = [
    st.Page("../pages/architecture.py", title="Architecture", icon=":material/account_tree:",
            url_path="architecture", default=True),
    st.Page("../pages/lesson.py", title="Why residuals work", icon=":material/school:", url_path="why-residuals"),
    st.Page("../pages/activations.py", title="Activations", icon=":material/layers:", url_path="activations"),
    st.Page("../pages/gradient_flow.py", title="Gradient flow", icon=":material/trending_up:",
            url_path="gradient-flow"),
    st.Page("../pages/training.py", title="Training race", icon=":material/sprint:", url_path="training"),
    st.Page("../pages/grad_cam.py", title="Grad-CAM", icon=":material/center_focus_strong:", url_path="grad-cam"),
]

page = st.navigation(PAGES)
st.session_state["model_choice"] = model_picker()
page.run()
