"""The trust table: methods as rows, the six categories' metrics as columns, each metric on its own colour scale.

Built from ``resnet_core.cam.trust_scores``'s rows. A cell's colour is its rank within its metric's column, best
(dark) to worst (light) in the metric's own direction, so that metrics of different units share one figure; its
text is the measured value. The header marks the better direction (up: higher is better, down: lower).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..cam import METHODS, TRUST_METRICS
from . import style

ARROWS = {"higher": "\u2191", "lower": "\u2193"}


def trust_columns(table: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(category, metric, better) for every metric in ``table``, in the order of ``TRUST_METRICS``."""
    present = set(table["metric"])
    return [m for m in TRUST_METRICS if m[1] in present]


def trust_goodness(table: pd.DataFrame) -> pd.DataFrame:
    """Methods x metrics, each value mapped to [0, 1] within its metric: 1 the best, 0 the worst (NaN: none).
    A metric where every method scores the same gives all of them 1."""
    values = table.pivot(index="method", columns="metric", values="value")
    order = list(dict.fromkeys(table["method"]))
    values = values.loc[order]
    out = pd.DataFrame(index=values.index)
    for _, metric, better in trust_columns(table):
        column = values[metric].astype(float)
        low, high = column.min(), column.max()
        if not np.isfinite(low):
            out[metric] = np.nan
        elif high == low:
            out[metric] = column.where(column.isna(), 1.0)
        else:
            scaled = (column - low) / (high - low)
            out[metric] = scaled if better == "higher" else 1.0 - scaled
    return out


def _cell(value: float) -> str:
    if not np.isfinite(value):
        return "-"
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.2e}"


def trust_figure(table: pd.DataFrame) -> go.Figure:
    """The methods (rows) against every metric (columns, grouped by category), coloured per metric."""
    columns = trust_columns(table)
    goodness = trust_goodness(table)
    values = table.pivot(index="method", columns="metric", values="value").loc[goodness.index]
    metrics = [metric for _, metric, _ in columns]
    headers = [f"{category}<br>{metric} {ARROWS[better]}" for category, metric, better in columns]
    labels = [METHODS.get(m, m) for m in goodness.index]
    z = goodness[metrics].to_numpy(dtype=float)
    text = [[_cell(float(values.loc[m, metric])) for metric in metrics] for m in goodness.index]
    fig = go.Figure(go.Heatmap(
        z=z, x=headers, y=labels, text=text, texttemplate="%{text}", zmin=0, zmax=1,
        colorscale="Greens", showscale=True, xgap=2, ygap=2,
        colorbar={"title": {"text": "best in<br>its metric", "side": "top"}, "tickvals": [0, 1],
                  "ticktext": ["worst", "best"]},
        hovertemplate="%{y}<br>%{x}: %{text}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(side="top", tickangle=0)
    fig.update_traces(textfont={"size": style.MIN_TEXT_SIZE})
    return style.layout(fig, 170 + 40 * len(labels), top=110, bottom=10)
