"""Plotly figures for the Activations and Gradient-flow pages, built from the DataFrames of
``resnet_core.probes`` (the pages and the notebook call the same builders).

Frames that compare two nets carry a ``net`` column (the display label, e.g. "ResNet-56" / "Plain-56") and a
``residual`` column; residual nets are drawn in blue solid lines, plain twins in red dashed ones, everywhere
(``style.net_line``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..probes import FeatureMaps
from . import style

# Kept importable from here; the palette lives in style.
RESIDUAL_COLOR = style.RESIDUAL
PLAIN_COLOR = style.PLAIN
SHORTCUT_COLOR = style.SHORTCUT
BRANCH_COLOR = style.BRANCH
STAGE_COLORS = [style.STEM_COLOR, *style.STAGE_CYCLE, style.HEAD_COLOR]
_net_color = style.net_color


def _nets(frame: pd.DataFrame) -> list[tuple[str, bool, pd.DataFrame]]:
    """(label, residual, rows) per net, residual first."""
    out = []
    for net, rows in frame.groupby("net", sort=False):
        out.append((str(net), bool(rows["residual"].iloc[0]), rows))
    return sorted(out, key=lambda item: not item[1])


def activation_depth_figure(stats: pd.DataFrame) -> go.Figure:
    """Mean, std and inactive share (exact zeros after a ReLU, negatives before one) per layer across depth,
    one line per net (``net``/``residual`` columns), from ``ActivationRecording.stats()`` frames."""
    panels = [("mean", "Mean activation"), ("std", "Standard deviation"),
              ("inactive_share", "Inactive share (zero after a ReLU, negative before one)")]
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=[title for _, title in panels])
    for label, residual, rows in _nets(stats):
        for row, (column, title) in enumerate(panels, start=1):
            fig.add_scatter(
                x=list(rows["depth"]), y=list(rows[column]), mode="lines+markers", name=label, legendgroup=label,
                showlegend=row == 1, line=style.net_line(residual), marker={"size": 5},
                customdata=list(rows["label"]),
                hovertemplate=f"{label} %{{customdata}}<br>{title}: %{{y:.4g}}<extra></extra>",
                row=row, col=1)
    fig.update_yaxes(rangemode="tozero", row=2, col=1)
    fig.update_yaxes(range=[0, 1], tickformat=".0%", row=3, col=1)
    fig.update_xaxes(title_text="layer (forward order)", row=3, col=1)
    return style.layout(fig, 620, legend=style.LEGEND_ABOVE)


def histogram_heatmap(hist: pd.DataFrame, title: str = "") -> go.Figure:
    """The "colorful dimension" over depth: x = layer (forward order), y = activation value (fixed bins),
    colour = log10 of the share of values in the bin; from ``ActivationRecording.histograms()``."""
    table = hist.pivot_table(index="bin_center", columns="depth", values="share", aggfunc="sum").sort_index()
    labels = hist.drop_duplicates("depth").set_index("depth")["label"]
    share = table.to_numpy()
    with np.errstate(divide="ignore"):
        z = np.where(share > 0, np.log10(np.where(share > 0, share, 1.0)), np.nan)
    fig = go.Figure(go.Heatmap(
        x=list(table.columns), y=list(table.index), z=z.tolist(), colorscale=style.SEQUENTIAL,
        colorbar={"title": "log10 share"}, customdata=[[labels[d] for d in table.columns]] * len(table.index),
        hovertemplate="%{customdata}<br>value ~ %{y:.2f}<br>log10 share %{z:.2f}<extra></extra>"))
    return style.layout(fig, 360, title=title or None, xaxis_title="layer (forward order)",
                        yaxis_title="activation value")


def feature_map_figure(maps: FeatureMaps, sample: int = 0, columns: int = 8) -> go.Figure:
    """A grid of the kept channels of one layer for one sample; each tile titled with its channel index and
    mean activation. ``maps.maps``: (S, K, h, w)."""
    tiles = maps.maps[sample]
    count = tiles.shape[0]
    cols = min(columns, count)
    rows = math.ceil(count / cols)
    # Two short lines per tile: one line of "ch 12 (mean 0.712)" runs into its neighbour's at 8 tiles a row.
    titles = [f"ch {c}<br>mean {style.fmt_value(m)}" for c, m in zip(maps.channels, maps.channel_means, strict=True)]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.015,
                        vertical_spacing=0.16 if rows > 1 else 0.0)
    for i in range(count):
        fig.add_heatmap(z=tiles[i].flip(0).tolist(), colorscale=style.SEQUENTIAL, showscale=False,
                        hovertemplate=f"channel {maps.channels[i]}<br>%{{z:.3f}}<extra></extra>",
                        row=i // cols + 1, col=i % cols + 1)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
    for i in range(count):  # square pixels in every tile
        suffix = "" if i == 0 else str(i + 1)
        fig.layout[f"yaxis{suffix}"].scaleanchor = f"x{suffix}"
    fig.update_annotations(font_size=14)
    return style.layout(fig, 190 * rows + 50, top=60)


def depth_strip_figure(stats: pd.DataFrame, selected: str | None = None) -> go.Figure:
    """Every recorded layer as one marker along depth, coloured by stage; the selected layer is ringed.
    Points carry the layer name in ``customdata`` so a click can select it."""
    stages = list(dict.fromkeys(stats["stage"]))
    fig = go.Figure()
    for stage in stages:
        rows = stats[stats["stage"] == stage]
        fig.add_scatter(x=list(rows["depth"]), y=[0] * len(rows), mode="markers", name=stage,
                        marker={"size": 11, "symbol": "square", "color": style.stage_color(stage)},
                        customdata=list(rows["layer"]), text=list(rows["label"]),
                        hovertemplate="%{text}<extra></extra>")
    if selected is not None and selected in set(stats["layer"]):
        row = stats[stats["layer"] == selected].iloc[0]
        fig.add_scatter(x=[row["depth"]], y=[0], mode="markers", name="selected", showlegend=False,
                        marker={"size": 20, "symbol": "square-open", "color": style.INK, "line": {"width": 3}},
                        customdata=[selected], hoverinfo="skip")
    fig.update_yaxes(visible=False, range=[-1, 1])
    fig.update_xaxes(title_text="layer (forward order): click one to select it")
    return style.layout(fig, 150, top=10, clickmode="event+select", legend=style.LEGEND_ABOVE,
                        dragmode=False)


def gradient_norm_figure(grads: pd.DataFrame) -> go.Figure:
    """Norm of the gradient at each block input (log scale), one line per net, from ``path_gradients``
    frames with ``net``/``residual`` columns."""
    fig = go.Figure()
    for label, residual, rows in _nets(grads):
        fig.add_scatter(x=list(rows["block_index"]), y=list(rows["grad_norm"]), mode="lines+markers", name=label,
                        line=style.net_line(residual), customdata=list(rows["block"]),
                        hovertemplate=f"{label} %{{customdata}}<br>|grad| %{{y:.3g}}<extra></extra>")
    values = [v for v in grads["grad_norm"] if v > 0]
    decades = math.log10(max(values) / min(values)) if values else 0.0
    # Decade ticks over a wide range; labelled 1-2-5 ticks when the lines span only a decade or two.
    fig.update_yaxes(type="log", title_text="gradient norm at block input")
    if values and decades <= 2:
        low, high = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
        ticks = [m * 10.0**e for e in range(low, high + 1) for m in (1, 2, 5)
                 if min(values) / 2 <= m * 10.0**e <= max(values) * 2]
        fig.update_yaxes(tickmode="array", tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])
    else:  # whole decades, fewer of them on a very wide axis
        fig.update_yaxes(dtick=style.log_dtick(values), exponentformat="power")
    fig.update_xaxes(title_text="block (input side left, output side right)")
    return style.layout(fig, 380, legend=style.LEGEND_ABOVE)


def path_split_figure(split: pd.DataFrame) -> go.Figure:
    """Per block, the shortcut and branch parts of the input gradient as stacked bars. Each bar is the part's
    component along the total gradient as a share of it (``shortcut_share`` + ``branch_share`` = 100%).
    More than ``style.MANY_BARS`` blocks: horizontal bars, one labelled row per block, first block on top."""
    rows = split[split["shortcut"] != "none"]
    fig = go.Figure()
    horizontal = len(rows) > style.MANY_BARS
    blocks = list(rows["block"])
    parts = (("shortcut_share", "through the shortcut", SHORTCUT_COLOR,
              np.stack([rows["shortcut_norm"], rows["shortcut"]], 1), "(|g| %{customdata[0]:.3g}, %{customdata[1]})"),
             ("branch_share", "through the residual branch", BRANCH_COLOR, np.stack([rows["branch_norm"]], 1),
              "(|g| %{customdata[0]:.3g})"))
    for column, name, color, custom, detail in parts:
        share = list(rows[column] * 100)
        if horizontal:
            fig.add_bar(y=blocks, x=share, orientation="h", name=name, marker_color=color, customdata=custom,
                        hovertemplate=f"%{{y}}: %{{x:.1f}}% {detail}<extra></extra>")
        else:
            fig.add_bar(x=blocks, y=share, name=name, marker_color=color, customdata=custom,
                        hovertemplate=f"%{{x}}: %{{y:.1f}}% {detail}<extra></extra>")
    value_title, block_title = "share of the block-input gradient (%)", "block"
    if horizontal:
        return style.layout(fig, max(380, style.ROW_HEIGHT * len(rows) + 120), barmode="relative",
                            legend=style.LEGEND_ABOVE, xaxis_title=value_title,
                            yaxis={"title": block_title, "autorange": "reversed", "dtick": 1})
    return style.layout(fig, 380, barmode="relative", legend=style.LEGEND_ABOVE,
                        yaxis_title=value_title, xaxis_title=block_title)


def depth_sweep_figure(sweep: pd.DataFrame) -> go.Figure:
    """First-block / last-block input-gradient norm ratio against depth (log scale), plain vs residual,
    from ``probes.depth_sweep``."""
    fig = go.Figure()
    for residual in (True, False):
        rows = sweep[sweep["residual"] == residual].sort_values("depth")
        if rows.empty:
            continue
        name = "residual (ResNet)" if residual else "plain (no shortcuts)"
        fig.add_scatter(x=list(rows["depth"]), y=list(rows["ratio"]), mode="lines+markers+text", name=name,
                        line=style.net_line(residual), text=[style.fmt_value(r) for r in rows["ratio"]],
                        textposition="bottom center" if residual else "top center", customdata=list(rows["label"]),
                        hovertemplate="%{customdata}: first/last = %{y:.3g}<extra></extra>")
    fig.add_hline(y=1, line_dash="dot", line_color=style.GUIDE)
    fig.update_yaxes(type="log", title_text="|grad| first block / |grad| last block",
                     dtick=style.log_dtick(list(sweep["ratio"]) + [1.0]), exponentformat="power")
    fig.update_xaxes(title_text="depth (weighted layers)", tickvals=sorted(set(sweep["depth"])))
    return style.layout(fig, 400, legend=style.LEGEND_ABOVE)
