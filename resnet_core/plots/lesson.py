"""Plotly figures for the "Why residuals work" lesson, built from the DataFrames of ``resnet_core.lesson``."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from . import style

# Kept importable from here; the palette lives in style.
RESIDUAL_COLOR, PLAIN_COLOR = style.RESIDUAL, style.PLAIN


def paper_table2_figure(table: pd.DataFrame) -> go.Figure:
    """The paper's ImageNet top-1 error (%) of plain and residual nets at 18 and 34 layers (quoted).

    The axis starts at 0, so bar heights compare honestly: Plain-34's 0.6-point deficit looks as small as it is,
    and the values are written on the bars."""
    fig = go.Figure()
    x = [f"{d} layers" for d in table["depth"]]
    fig.add_bar(x=x, y=list(table["plain"]), name="plain", marker_color=PLAIN_COLOR,
                text=[f"{v:.2f}" for v in table["plain"]], textposition="auto")
    fig.add_bar(x=x, y=list(table["resnet"]), name="ResNet", marker_color=RESIDUAL_COLOR,
                text=[f"{v:.2f}" for v in table["resnet"]], textposition="auto")
    return style.layout(fig, 300, top=20, barmode="group", yaxis={"title": "top-1 error (%)", "rangemode": "tozero"})


def identity_figure(check: pd.DataFrame) -> go.Figure:
    """||y - x|| / ||x|| for each block variant (from ``lesson.identity_check``): 0 means the identity."""
    colors = [RESIDUAL_COLOR if r else PLAIN_COLOR for r in check["residual"]]
    fig = go.Figure(go.Bar(
        x=list(check["relative_diff"]), y=list(check["variant"]), orientation="h", marker_color=colors,
        text=[f"{v:.3g}" for v in check["relative_diff"]], textposition="outside", name="relative difference",
        customdata=list(check["max_abs_diff"]),
        hovertemplate="%{y}<br>||y - x|| / ||x|| = %{x:.4g}<br>max |y - x| = %{customdata:.4g}<extra></extra>",
    ))
    return style.layout(fig, 260, top=20, xaxis_title="||y - x|| / ||x||  (0 = the block is the identity)",
                        yaxis={"autorange": "reversed"})


def split_figure(split: pd.DataFrame) -> go.Figure:
    """Per block, the input-gradient norm through the shortcut, through the branch, and in total.

    The two paths add as vectors: the total's norm is that of their sum, at most the two bar heights added (less
    wherever they point in different directions)."""
    fig = go.Figure()
    fig.add_bar(x=list(split["block"]), y=list(split["shortcut_norm"]), name="through the shortcut (the 1)",
                marker_color=style.SHORTCUT)
    fig.add_bar(x=list(split["block"]), y=list(split["branch_norm"]), name="through the branch (dF/dx)",
                marker_color=style.BRANCH)
    fig.add_scatter(x=list(split["block"]), y=list(split["total_norm"]), name="total (vector sum: at most the two bars added)",
                    mode="lines+markers", line={"color": style.INK})
    return style.layout(fig, 340, top=30, barmode="group", yaxis_title="gradient norm at the block input",
                        legend=style.LEGEND_ABOVE)


def depth_figure(ratios: pd.DataFrame) -> go.Figure:
    """First/last block input-gradient norm ratio against depth, plain vs residual, log scale."""
    fig = go.Figure()
    for residual, color, dash in ((False, PLAIN_COLOR, "dash"), (True, RESIDUAL_COLOR, "solid")):
        mine = ratios[ratios["residual"] == residual].sort_values("depth")
        fig.add_scatter(x=list(mine["depth"]), y=list(mine["ratio"]), mode="lines+markers+text",
                        name="plain" if not residual else "residual", line={"color": color, "dash": dash},
                        text=[f"{v:.3g}" for v in mine["ratio"]], textposition="top left",
                        customdata=list(mine["label"]),
                        hovertemplate="%{customdata}: first/last = %{y:.4g}<extra></extra>")
    fig.add_hline(y=1, line={"color": style.GUIDE, "dash": "dot"})
    return style.layout(fig, 360, top=20, xaxis_title="depth (layers)",
                        yaxis={"type": "log", "title": "gradient norm: first block / last block", "dtick": 1})


def paths_figure(paths: pd.DataFrame) -> go.Figure:
    """Share of the 2^n unrolled paths by length (Binomial(n, 1/2)), from ``lesson.unrolled_paths``."""
    fig = go.Figure(go.Bar(x=list(paths["length"]), y=list(paths["share"]), marker_color=RESIDUAL_COLOR,
                           customdata=[str(p) for p in paths["paths"]], name="share of paths",
                           hovertemplate="length %{x}: %{customdata} paths (%{y:.3%})<extra></extra>"))
    return style.layout(fig, 300, top=20, xaxis_title="path length (blocks whose branch the path goes through)",
                        yaxis={"title": "share of all paths", "tickformat": ".0%"})
