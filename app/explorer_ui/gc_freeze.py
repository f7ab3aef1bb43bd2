"""Once per server process: move the long-lived objects of the loaded libraries out of the garbage collector's way.

Streamlit runs a full ``gc.collect(2)`` after every script run (``runner.postScriptGC``, kept on: it stops
cyclic garbage such as autograd graphs piling up between views). A full collection walks every tracked object,
and with torch, pandas, plotly and the app's modules loaded that is about 280,000 objects and 0.11 CPU s per run
(measured); sampled with py-spy on a classroom benchmark it was a third of the server's script time. Modules,
classes and functions loaded at start never become garbage, so they are frozen (``gc.freeze``): the collection
after each run then walks only what was created since.
"""

from __future__ import annotations

import gc

# The libraries the pages import, loaded before the freeze so their objects are frozen too.
import pandas  # noqa: F401
import plotly.graph_objects  # noqa: F401
import streamlit  # noqa: F401
import torch  # noqa: F401

import resnet_core  # noqa: F401
import resnet_core.plots  # noqa: F401

gc.collect()  # garbage from the imports themselves is collected, not frozen
gc.freeze()
