"""Plotly figures for the lesion study, built from the DataFrames of ``resnet_core.lesion``.

Frames that hold several nets carry a ``net`` column (the display label) and a ``residual`` column, as in
``plots.instruments``; residual nets are blue, plain twins red (see ``style``). Downsampling blocks are drawn
hatched and named on the axis with a mark, as in Veit et al.'s Fig. 4.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from . import style

DOWNSAMPLING_MARK = " ↓"  # appended to a downsampling block's name on the axis


def _nets(frame: pd.DataFrame) -> list[tuple[str, bool, pd.DataFrame]]:
    """(label, residual, rows) per net, residual first."""
    out = [(str(net), bool(rows["residual"].iloc[0]), rows) for net, rows in frame.groupby("net", sort=False)]
    return sorted(out, key=lambda item: not item[1])


def _guide(fig: go.Figure, y: float, name: str, line: dict) -> None:
    """A horizontal guide across the plot, named in the legend (a label on the plot would sit on a bar)."""
    fig.add_hline(y=y, line=line)
    fig.add_scatter(x=[None], y=[None], mode="lines", line=line, name=name, hoverinfo="skip")


def study_figure(studies: pd.DataFrame, *, chance: float | None = None) -> go.Figure:
    """Accuracy after removing each block, one bar per block and net (columns net, residual, block,
    downsampling, removable, accuracy, full_accuracy); the full net's accuracy dashed in its colour, chance
    dotted. A block that cannot be removed (a plain block that changes the shape) is labelled, with no bar."""
    fig = go.Figure()
    order: list[str] = []
    for block in studies["block"]:
        if block not in order:
            order.append(block)
    down = set(studies[studies["downsampling"].astype(bool)]["block"])
    names = {b: b + (DOWNSAMPLING_MARK if b in down else "") for b in order}
    for label, residual, rows in _nets(studies):
        color = style.net_color(residual)
        rows = rows.set_index("block").reindex(order)
        removable = rows["removable"].fillna(False).astype(bool)
        fig.add_bar(
            x=[names[b] for b in order], y=[float(v) if ok else 0.0 for v, ok in zip(rows["accuracy"], removable,
                                                                                       strict=True)],
            name=f"{label}: one block removed", marker={"color": color,
                                                         "pattern": {"shape": ["/" if b in down else "" for b in
                                                                               order]}},
            # Read from the back of a room: full size, turned to fit a narrow bar, never shrunk by Plotly.
            text=["" if ok else "not removable" for ok in removable], textposition="outside", textangle=-90,
            textfont={"size": style.TICK_SIZE, "color": style.INK}, constraintext="none", cliponaxis=False,
            customdata=[[float(a) if ok else float("nan"), float(g) if ok else float("nan")]
                        for a, g, ok in zip(rows["accuracy"], rows["agreement"], removable, strict=True)],
            hovertemplate=f"{label} without %{{x}}<br>accuracy %{{customdata[0]:.1%}}<br>agrees with the full "
                          f"net on %{{customdata[1]:.1%}}<extra></extra>")
        full = float(rows["full_accuracy"].dropna().iloc[0])
        _guide(fig, full, f"{label}, all blocks: {full:.1%}", style.net_line(residual))
    if chance is not None:
        _guide(fig, chance, f"chance {chance:.0%}", {"color": style.GUIDE, "dash": "dot"})
    return style.layout(fig, 420, top=30, barmode="group", legend=style.LEGEND_ABOVE,
                        xaxis_title="block removed (↓ downsampling, hatched)",
                        yaxis={"title": "accuracy", "range": [0, 1.05], "tickformat": ".0%"})


def curve_figure(curves: pd.DataFrame, *, chance: float | None = None) -> go.Figure:
    """Mean accuracy against the number of blocks removed together (columns net, residual, removed, accuracy,
    full_accuracy), with the spread over the sampled sets as error bars (min to max); k = 0 is the full net."""
    fig = go.Figure()
    for label, residual, rows in _nets(curves):
        stats = rows.groupby("removed")["accuracy"].agg(["mean", "min", "max"]).reset_index()
        full = float(rows["full_accuracy"].iloc[0])
        x = [0, *stats["removed"]]
        mean = [full, *stats["mean"]]
        fig.add_scatter(
            x=x, y=mean, mode="lines+markers", name=label,
            line=style.net_line(residual),
            error_y={"type": "data", "symmetric": False, "array": [0.0, *(stats["max"] - stats["mean"])],
                     "arrayminus": [0.0, *(stats["mean"] - stats["min"])], "color": style.net_color(residual)},
            hovertemplate=f"{label}, %{{x}} blocks removed: mean accuracy %{{y:.1%}}<extra></extra>")
    if chance is not None:
        _guide(fig, chance, f"chance {chance:.0%}", {"color": style.GUIDE, "dash": "dot"})
    return style.layout(fig, 360, top=30, legend=style.LEGEND_ABOVE, xaxis={"title": "blocks removed together",
                                                                              "dtick": 1},
                        yaxis={"title": "accuracy (mean over sampled sets)", "range": [0, 1.05],
                               "tickformat": ".0%"})
