"""Plotly figures for loss landscapes, built from the DataFrames of ``resnet_core.landscape``.

Frames that hold several nets carry a ``net`` column (the display label) and a ``residual`` column, as in
``plots.instruments``; residual nets are drawn in blue, plain twins in red (see ``style``). Losses span
decades away from the minimum, so contours are of log10(loss), on one colour scale for every panel.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import style


def _nets(frame: pd.DataFrame) -> list[tuple[str, bool, pd.DataFrame]]:
    """(label, residual, rows) per net, plain first (the paper's figures put the net without shortcuts left)."""
    out = [(str(net), bool(rows["residual"].iloc[0]), rows) for net, rows in frame.groupby("net", sort=False)]
    return sorted(out, key=lambda item: item[1])


def _log_loss(values: pd.Series) -> np.ndarray:
    return np.log10(np.clip(values.to_numpy(dtype=float), 1e-12, None))


def surface_figure(surfaces: pd.DataFrame, *, levels: int = 20) -> go.Figure:
    """One contour panel of log10(loss) per net (columns net, residual, alpha, beta, loss), all on the same
    colour scale; the model itself (alpha = beta = 0) is marked in its net's colour."""
    nets = _nets(surfaces)
    logs = _log_loss(surfaces["loss"])
    finite = logs[np.isfinite(logs)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    high = high if high > low else low + 1.0
    fig = make_subplots(rows=1, cols=len(nets), subplot_titles=[label for label, _, _ in nets],
                        horizontal_spacing=0.08)
    for col, (label, residual, rows) in enumerate(nets, start=1):
        grid = rows.pivot_table(index="beta", columns="alpha", values="loss", aggfunc="first")
        z = np.log10(np.clip(grid.to_numpy(dtype=float), 1e-12, None))
        fig.add_trace(go.Contour(
            x=list(grid.columns), y=list(grid.index), z=z.tolist(), coloraxis="coloraxis", name=label,
            contours={"start": low, "end": high, "size": (high - low) / levels, "showlabels": False},
            customdata=grid.to_numpy(dtype=float).tolist(),
            hovertemplate=f"{label}<br>alpha %{{x:.2f}}, beta %{{y:.2f}}<br>loss %{{customdata:.4g}}<extra></extra>",
        ), row=1, col=col)
        fig.add_scatter(x=[0.0], y=[0.0], mode="markers", name=f"{label}: trained weights", showlegend=False,
                        marker={"color": style.net_color(residual), "size": 10, "symbol": "x",
                                "line": {"color": style.INK, "width": 1}},
                        hovertemplate=f"{label}: the trained weights<extra></extra>", row=1, col=col)
        fig.update_xaxes(title_text="alpha (direction 1)", row=1, col=col)
        fig.update_yaxes(title_text="beta (direction 2)" if col == 1 else None, scaleanchor=f"x{col}" if col > 1
                         else "x", row=1, col=col)
    ticks = list(range(math.floor(low), math.ceil(high) + 1))
    fig.update_layout(coloraxis={"colorscale": style.SEQUENTIAL, "cmin": low, "cmax": high,
                                 "colorbar": {"title": "loss", "tickvals": ticks,
                                              "ticktext": [f"{10.0 ** t:g}" for t in ticks]}})
    return style.layout(fig, 420, top=40)


def line_figure(lines: pd.DataFrame, *, x_title: str = "alpha (filter-normalised direction)") -> go.Figure:
    """Loss (log scale) along a 1-D slice per net (columns net, residual, alpha, loss), with accuracy on hover;
    for an interpolation pass ``x_title`` (alpha 0: one model, 1: the other)."""
    fig = go.Figure()
    for label, residual, rows in _nets(lines):
        rows = rows.sort_values("alpha")
        fig.add_scatter(x=list(rows["alpha"]), y=list(rows["loss"]), mode="lines+markers", name=label,
                        line=style.net_line(residual),
                        customdata=list(rows["accuracy"]) if "accuracy" in rows else None,
                        hovertemplate=f"{label}<br>alpha %{{x:.2f}}: loss %{{y:.4g}}, accuracy "
                                      f"%{{customdata:.1%}}<extra></extra>")
    fig.add_vline(x=0.0, line={"color": style.GUIDE, "dash": "dot"})
    return style.layout(fig, 320, top=30, xaxis_title=x_title,
                        yaxis={"type": "log", "title": "loss (cross-entropy, fixed batch)"},
                        legend=style.LEGEND_ABOVE)
