"""ResNet Explorer: `streamlit run app/main.py`.

The server: every visitor's session runs app/navigation.py (the navigation, the shared sidebar, the page), and a
warm start loads the heavy libraries and draws every page's default view in the background as soon as the
server is up (explorer_ui.warm_start), and the page tells the browser to load the chart library at once, while the
server works (explorer_ui.chart_preload).
"""

from __future__ import annotations

import os

# Before torch loads: a training thread and a page computing at the same time each get an OpenMP team; with
# the default busy-waiting they starve each other on a 2-core laptop (measured here: 10x slower).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import streamlit as st  # noqa: E402
from explorer_ui.chart_preload import ChartLibraryPreload  # noqa: E402
from explorer_ui.warm_start import lifespan  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402

app = st.App("navigation.py", lifespan=lifespan, middleware=[Middleware(ChartLibraryPreload)])
