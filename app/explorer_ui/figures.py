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
    """``make(*args, **kwargs)``, built once per distinct input for the whole server; read-only."""
    return _build(make.__module__, make.__qualname__, *args, **kwargs)


def shared_result(compute: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``compute(*args, **kwargs)`` (a summary, a count), computed once per distinct input; read-only."""
    return _build(compute.__module__, compute.__qualname__, *args, **kwargs)
