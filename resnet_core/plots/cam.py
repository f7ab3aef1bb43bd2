"""Plotly figures for the Grad-CAM page and the notebook, built from resnet_core.cam's results.

Maps are drawn as a Plotly heat map (its own colour scale and opacity) over the model's view of the photo,
so the figure's data holds the actual map values (what the tests read back).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from ..cam import METHODS, Explanation
from . import style


def _data_uri(view: np.ndarray | Image.Image) -> str:
    image = view if isinstance(view, Image.Image) else Image.fromarray(np.asarray(view, dtype=np.uint8))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _add_map(fig: go.Figure, view: np.ndarray | Image.Image, heatmap: np.ndarray, colormap: str, opacity: float,
             row: int | None = None, col: int | None = None, showscale: bool = True) -> None:
    where = {"row": row, "col": col} if row is not None else {}
    height, width = heatmap.shape
    fig.add_trace(go.Image(source=_data_uri(view), x0=0, y0=0, dx=1, dy=1, hoverinfo="skip"), **where)
    fig.add_trace(go.Heatmap(z=np.round(heatmap.astype(np.float64), 4), zmin=0, zmax=1, colorscale=colormap,
                             opacity=opacity, showscale=showscale, name="map",
                             colorbar={"title": {"text": "map"}, "len": 0.8},
                             hovertemplate="x %{x}, y %{y}: %{z:.3f}<extra></extra>"), **where)
    fig.update_xaxes(showticklabels=False, range=[-0.5, width - 0.5], **where)
    fig.update_yaxes(showticklabels=False, range=[height - 0.5, -0.5], scaleanchor="x" if row is None else None,
                     **where)


def cam_figure(explanation: Explanation, view: np.ndarray | Image.Image, colormap: str = style.CAM_COLORMAP,
               opacity: float = 0.5, title: str | None = None) -> go.Figure:
    """One map over the model's view of the image (H, W, 3 uint8 or PIL, same size as the map)."""
    fig = go.Figure()
    _add_map(fig, view, explanation.heatmap, colormap, opacity)
    label = explanation.class_name or f"class {explanation.class_index}"
    where = f" at {explanation.layer}" if explanation.layer else ""
    style.layout(fig, 520, top=50, title=title or f"{METHODS[explanation.method]} for '{label}'{where}")
    if explanation.no_positive_evidence:
        fig.add_annotation(text="no positive evidence", x=0.5, y=0.5, xref="paper", yref="paper",
                           showarrow=False, **style.BADGE)
    return fig


def layers_figure(explanations: Sequence[Explanation], view: np.ndarray | Image.Image, colormap: str = style.CAM_COLORMAP,
                  opacity: float = 0.5) -> go.Figure:
    """Side by side: the same class explained at several layers, shallow to deep (titles give each map's size)."""
    titles = []
    for e in explanations:
        size = f" ({e.layer_map.shape[1]}x{e.layer_map.shape[0]} map)" if e.layer_map is not None else ""
        titles.append(f"{e.layer}{size}" + (" - no positive evidence" if e.no_positive_evidence else ""))
    fig = make_subplots(rows=1, cols=len(explanations), subplot_titles=titles, horizontal_spacing=0.02)
    for index, explanation in enumerate(explanations):
        _add_map(fig, view, explanation.heatmap, colormap, opacity, row=1, col=index + 1, showscale=index == 0)
    return style.layout(fig, 360)


def topk_figure(table: pd.DataFrame) -> go.Figure:
    """Horizontal bars of the top-k probabilities (``cam.predict``'s table), best on top."""
    fig = go.Figure(go.Bar(x=table["probability"], y=table["class"], orientation="h",
                           text=[f"{p:.1%}" for p in table["probability"]], textposition="auto",
                           customdata=table["index"], hovertemplate="%{y} (class %{customdata}): %{x:.2%}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(range=[0, 1], tickformat=".0%", title="probability")
    return style.layout(fig, 60 + 36 * len(table), top=10, bottom=40)


def pointing_figure(summary: pd.DataFrame) -> go.Figure:
    """Bars: pointing-game hit rate against the chance baselines (``PointingResult.summary()``)."""
    rows = summary[summary["measure"] != "images"]
    fig = go.Figure(go.Bar(x=rows["value"], y=rows["measure"], orientation="h",
                           text=[f"{v:.1%}" for v in rows["value"]], textposition="auto"))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(range=[0, 1], tickformat=".0%")
    return style.layout(fig, 260, top=10, bottom=30)


def cascade_figure(cascade: pd.DataFrame) -> go.Figure:
    """Rank correlation with the trained model's map as weights are randomised from the top down."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=cascade["step"], y=cascade["max"], mode="lines", line={"width": 0},
                             showlegend=False, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=cascade["step"], y=cascade["min"], mode="lines", line={"width": 0}, fill="tonexty",
                             fillcolor=style.BAND, name="min-max over images", hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=cascade["step"], y=cascade["rank_correlation"], mode="lines+markers",
                             name="mean Spearman rank correlation", line={"color": style.RESIDUAL},
                             hovertemplate="randomised up to %{x}: %{y:.2f}<extra></extra>"))
    fig.add_hline(y=0, line={"dash": "dot", "color": style.GUIDE})
    fig.update_yaxes(range=[-1, 1.05], title="rank correlation with the trained map")
    fig.update_xaxes(title="randomised from the top down to")
    return style.layout(fig, 340, top=10, bottom=40, legend=style.LEGEND_ABOVE)
