"""Figures for comparing CAM methods on one image: the grid of overlays and the ranking bars.

Built from ``resnet_core.cam.compare_methods``'s result; each grid cell holds the method's actual map values
(what the tests read back), titled with its label, time and faithfulness scores.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from ..cam import METHODS, MethodComparison
from . import style
from .cam import _add_map

GRID_COLUMNS = 3


def methods_grid_figure(comparison: MethodComparison, view: np.ndarray | Image.Image,
                        colormap: str = style.CAM_COLORMAP, opacity: float = 0.5,
                        columns: int = GRID_COLUMNS) -> go.Figure:
    """Every method's map over the image, in ranking order (best first), for one class and layer.

    Each title: rank, label, time, and insertion minus deletion AUC (higher is more faithful).
    """
    table = comparison.table.set_index("method")
    order = [m for m in comparison.table["method"] if m in comparison.explanations]
    rows = max(1, math.ceil(len(order) / columns))
    titles = []
    for method in order:
        row = table.loc[method]
        empty = " - no positive evidence" if comparison.explanations[method].no_positive_evidence else ""
        # Two lines, so a title fits over its own map at 14 px.
        titles.append(f"#{int(row['rank'])} {METHODS.get(method, method)}<br>{row['seconds'] * 1000:.0f} ms, "
                      f"AUC diff {row['auc_difference']:+.2f}{empty}")
    height = 80 + 320 * rows
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=titles, horizontal_spacing=0.03,
                        vertical_spacing=min(0.3, 60 / height) if rows > 1 else 0.0)
    for index, method in enumerate(order):
        _add_map(fig, view, comparison.explanations[method].heatmap, colormap, opacity,
                 row=index // columns + 1, col=index % columns + 1, showscale=index == 0)
    fig.update_annotations(font={"size": style.MIN_TEXT_SIZE})
    return style.layout(fig, height, top=60)


def ranking_figure(table: pd.DataFrame) -> go.Figure:
    """Insertion and deletion AUC per method (``compare_methods``'s table), best-ranked on top."""
    labels = [METHODS.get(m, m) for m in table["method"]]
    fig = go.Figure()
    fig.add_trace(go.Bar(y=labels, x=table["insertion_auc"], orientation="h", name="insertion AUC (higher is better)",
                         marker={"color": style.RESIDUAL},
                         hovertemplate="%{y}: insertion AUC %{x:.3f}<extra></extra>"))
    fig.add_trace(go.Bar(y=labels, x=table["deletion_auc"], orientation="h", name="deletion AUC (lower is better)",
                         marker={"color": style.BRANCH},
                         hovertemplate="%{y}: deletion AUC %{x:.3f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(range=[0, 1], title="area under the class-probability curve")
    return style.layout(fig, 80 + 34 * len(table), top=10, bottom=40, barmode="group", legend=style.LEGEND_ABOVE)


def checks_figure(table: pd.DataFrame) -> go.Figure:
    """Per method: pointing game against chance, and the cascade's rank correlation once everything is random
    (``cam.method_checks``'s table)."""
    labels = table["label"].tolist()
    fig = make_subplots(rows=1, cols=2, subplot_titles=["pointing game (hit rate)",
                                                        "rank correlation, all weights randomised"],
                        horizontal_spacing=0.25)
    fig.add_trace(go.Bar(y=labels, x=table["pointing"], orientation="h", name="pointing game",
                         marker={"color": style.RESIDUAL}), row=1, col=1)
    fig.add_trace(go.Bar(y=labels, x=table["chance"], orientation="h", name="chance", marker={"color": style.GUIDE}),
                  row=1, col=1)
    fig.add_trace(go.Bar(y=labels, x=table["cascade_all"], orientation="h", name="cascade (0 = changed, good)",
                         marker={"color": style.BRANCH}), row=1, col=2)
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(range=[0, 1], tickformat=".0%", row=1, col=1)
    fig.update_xaxes(range=[-1, 1], row=1, col=2)
    return style.layout(fig, 80 + 30 * len(table), top=40, bottom=30, barmode="group", legend=style.LEGEND_ABOVE)
