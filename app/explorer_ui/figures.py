"""Figures (and small summaries) shared by every session: a class opening the same view builds each once.

Building a figure (plotly validates every property it is given) is most of what a rerun of a cached view
costs: measured with cProfile on a second run of each page, ``feature_map_figure`` alone was 1.4 s of the
Activations page's 2.2 s. ``shared_figure`` builds it once per distinct input and hands every session the same
object; ``st.plotly_chart`` only reads it (it serialises a copy), so it must never be changed after it is built.
``shared_result`` does the same for the small derived values a page computes from cached results on every run.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import plotly.graph_objects as go
import streamlit as st
import torch

from explorer_ui.url_params import presenting

# Distinct figures kept: every chart of a few views per page; an old one is simply built again.
MAX_FIGURES = 128


def _tensor_bytes(tensor: torch.Tensor) -> tuple:
    # Streamlit cannot hash tensors (feature maps in FeatureMaps): hash their shape, dtype and values.
    return tuple(tensor.shape), str(tensor.dtype), tensor.detach().cpu().contiguous().numpy().tobytes()


@st.cache_resource(show_spinner=False, max_entries=MAX_FIGURES, hash_funcs={torch.Tensor: _tensor_bytes})
def _build(module: str, name: str, *args: Any, **kwargs: Any) -> go.Figure:
    # Keyed on the function's name and the hashed inputs (DataFrames by content), never on a stale object.
    return getattr(importlib.import_module(module), name)(*args, **kwargs)


def shared_figure(make: Callable[..., go.Figure], *args: Any, **kwargs: Any) -> go.Figure:
    """``make(*args, **kwargs)``, built once per distinct input for the whole server; read-only. In presenter
    view a copy with every text at least ``PROJECTOR_FIGURE_PX``."""
    figure = _build(make.__module__, make.__qualname__, *args, **kwargs)
    return projector_figure(figure) if presenting() else figure


PROJECTOR_TEXT_PX = 20  # presenter view: page text at least this
PROJECTOR_FIGURE_PX = 18  # ... and figure text at least this


def projector_figure(figure: go.Figure) -> go.Figure:
    """A copy of ``figure`` whose every text (layout font, titles, axes, legend, annotations, traces' text) is at
    least ``PROJECTOR_FIGURE_PX``, for the back row of a class."""
    fig = go.Figure(figure)

    def at_least(font: Any) -> dict[str, Any]:
        size = getattr(font, "size", None) if font is not None else None
        return {"size": max(PROJECTOR_FIGURE_PX, size or 0)}

    fig.update_layout(font=at_least(fig.layout.font), title_font=at_least(fig.layout.title.font),
                      legend_font=at_least(fig.layout.legend.font))
    fig.update_xaxes(tickfont={"size": PROJECTOR_FIGURE_PX}, title_font={"size": PROJECTOR_FIGURE_PX})
    fig.update_yaxes(tickfont={"size": PROJECTOR_FIGURE_PX}, title_font={"size": PROJECTOR_FIGURE_PX})
    for annotation in fig.layout.annotations or ():
        annotation.font = at_least(annotation.font)
    fig.update_traces(textfont={"size": PROJECTOR_FIGURE_PX}, selector=lambda t: "textfont" in t)
    return fig


def for_session(figure: go.Figure) -> go.Figure:
    """A figure built for this run only (live data), as this session shows it: presenter view's text sizes."""
    return projector_figure(figure) if presenting() else figure


def projector_style() -> None:
    """Presenter view's CSS, for this session only (it is part of this session's page): page text at least
    ``PROJECTOR_TEXT_PX``."""
    st.markdown(f"""<style>
[data-testid="stMain"] p, [data-testid="stMain"] li, [data-testid="stMain"] label,
[data-testid="stMain"] [data-testid="stMarkdownContainer"], [data-testid="stMain"] [data-testid="stCaptionContainer"],
[data-testid="stMain"] button, [data-testid="stMain"] input {{ font-size: {PROJECTOR_TEXT_PX}px !important; }}
[data-testid="stMain"] h1 {{ font-size: {2 * PROJECTOR_TEXT_PX}px !important; }}
[data-testid="stMain"] h2, [data-testid="stMain"] h3 {{ font-size: {int(1.5 * PROJECTOR_TEXT_PX)}px !important; }}
</style>""", unsafe_allow_html=True)


def shared_result(compute: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``compute(*args, **kwargs)`` (a summary, a count), computed once per distinct input; read-only."""
    return _build(compute.__module__, compute.__qualname__, *args, **kwargs)
