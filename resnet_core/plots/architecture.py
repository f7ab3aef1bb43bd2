"""Plotly figures for the Architecture page, built from the DataFrames of ``resnet_core.describe``."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import style

# Kept importable from here; the palette lives in style.
STAGE_COLORS = [style.STEM_COLOR, *style.STAGE_CYCLE, style.HEAD_COLOR]
SHORTCUT_STYLE = style.SHORTCUT_STYLE


def stage_figure(stages: pd.DataFrame) -> go.Figure:
    """Params and MACs per stage (two bar panels) from ``stage_table``; x is the paper's stage name."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Parameters per stage", "Multiply-accumulates per stage"))
    x = list(stages["paper_stage"])
    colors = [style.stage_color(stage) for stage in stages["stage"]]
    fig.add_bar(x=x, y=list(stages["params"]), name="params", marker_color=colors, row=1, col=1,
                hovertemplate="%{x}: %{y:,} parameters<extra></extra>")
    fig.add_bar(x=x, y=list(stages["macs"]), name="MACs", marker_color=colors, row=1, col=2,
                hovertemplate="%{x}: %{y:,} MACs<extra></extra>")
    return style.layout(fig, 340, showlegend=False)


def layer_figure(layers: pd.DataFrame) -> go.Figure:
    """Params and MACs of every layer that holds weights (from ``describe``), coloured by stage, in order.

    Up to ``style.MANY_BARS`` layers: vertical bars in two rows. More: horizontal bars in two columns, one
    labelled row per layer (first layer on top), instead of dozens of tiny rotated labels.
    """
    rows = layers[layers["params"] > 0]
    stage_order = list(dict.fromkeys(rows["stage"]))
    horizontal = len(rows) > style.MANY_BARS
    titles = ("Parameters per layer", "Multiply-accumulates per layer")
    if horizontal:
        fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04, subplot_titles=titles)
    else:
        fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, subplot_titles=titles)
    for stage in stage_order:
        mine = rows[rows["stage"] == stage]
        color = style.stage_color(stage)
        text = [f"{m} ({k}, {i} -> {o})" for m, k, i, o in
                zip(mine["module"], mine["kind"], mine["input_shape"], mine["output_shape"], strict=True)]
        for panel, (column, unit) in enumerate((("params", "params"), ("macs", "MACs")), start=1):
            where = {"row": 1, "col": panel} if horizontal else {"row": panel, "col": 1}
            names, values = list(mine["module"]), list(mine[column])
            axes = {"y": names, "x": values, "orientation": "h"} if horizontal else {"x": names, "y": values}
            value = "%{x:,}" if horizontal else "%{y:,}"
            fig.add_bar(**axes, name=stage, legendgroup=stage, showlegend=panel == 1, marker_color=color,
                        hovertext=text, hovertemplate=f"%{{hovertext}}<br>{value} {unit}<extra></extra>", **where)
    if horizontal:
        fig.update_yaxes(autorange="reversed", dtick=1, row=1, col=1)
        style.layout(fig, style.ROW_HEIGHT * len(rows) + 140, bargap=0.15, legend=style.LEGEND_ABOVE)
        # Layer names are the one place a smaller tick size keeps one name per row (set after the defaults).
        fig.update_yaxes(tickfont={"size": 14}, row=1, col=1)
        return fig
    fig.update_xaxes(tickangle=-45, row=2, col=1)
    return style.layout(fig, 560, bargap=0.1)


def twin_figure(twin: pd.DataFrame) -> go.Figure:
    """Residual net vs its plain twin: params, MACs and depth side by side (from ``twin_comparison``)."""
    metrics = [("params", "Parameters"), ("macs", "Multiply-accumulates"), ("depth", "Weighted layers")]
    fig = make_subplots(rows=1, cols=3, subplot_titles=[title for _, title in metrics])
    colors = [style.net_color(bool(residual)) for residual in twin["residual"]]
    for col, (column, title) in enumerate(metrics, start=1):
        fig.add_bar(x=list(twin["label"]), y=list(twin[column]), name=title, marker_color=colors,
                    text=[f"{v:,}" for v in twin[column]], textposition="auto", row=1, col=col,
                    hovertemplate="%{x}: %{y:,}<extra></extra>")
    return style.layout(fig, 320, showlegend=False)


def block_comparison_figure(table: pd.DataFrame) -> go.Figure:
    """Conv weights of a BasicBlock vs a Bottleneck at the same width (from ``block_comparison``)."""
    fig = go.Figure(go.Bar(
        x=list(table["block"]), y=list(table["conv_weights"]),
        marker_color=[style.BLOCK_KIND_COLORS.get(kind, style.OTHER_STAGE) for kind in table["block"]],
        text=[f"{v:,}" for v in table["conv_weights"]], textposition="auto",
        customdata=list(table["recipe"]), hovertemplate="%{x}: %{customdata}<br>%{y:,} conv weights<extra></extra>",
        name="conv weights",
    ))
    return style.layout(fig, 300, top=20, yaxis_title="conv weights")


def block_diagram_figure(blocks: pd.DataFrame, title: str = "") -> go.Figure:
    """Every block as a box in forward order, its shortcut as an arc above it (from ``block_table``).

    Identity shortcuts are solid, projections dashed, option-A zero-padding dotted; plain blocks have none.
    One invisible-line marker trace per shortcut kind carries the hover text and the legend
    (``customdata`` holds the block names), so the figure's data says which block has which shortcut.
    """
    fig = go.Figure()
    stage_order = list(dict.fromkeys(blocks["stage"]))
    shapes = []
    # Stage colours by name (not position): the blocks start at layer1, the stage charts at the stem.
    for i, row in enumerate(blocks.itertuples(index=False)):
        x0, x1 = i + 0.1, i + 0.9
        shapes.append({"type": "rect", "x0": x0, "x1": x1, "y0": 0, "y1": 1, "line": {"width": 0},
                       "fillcolor": style.stage_color(row.stage), "opacity": 0.85})
        kind_style = SHORTCUT_STYLE[row.shortcut]
        if kind_style["dash"] is not None:
            # A quadratic arc from the block's input to its output: the shortcut bypasses the block.
            shapes.append({"type": "path", "path": f"M {i + 0.05},1 Q {i + 0.5},2.2 {i + 0.95},1",
                           "line": {"color": kind_style["color"], "dash": kind_style["dash"], "width": 2}})
    for kind, kind_style in SHORTCUT_STYLE.items():
        mine = [(i, row) for i, row in enumerate(blocks.itertuples(index=False)) if row.shortcut == kind]
        if not mine:
            continue
        fig.add_scatter(
            x=[i + 0.5 for i, _ in mine], y=[1.6 if kind != "none" else 0.5 for _ in mine], mode="markers",
            marker={"size": 9, "color": kind_style["color"], "symbol": "circle" if kind != "none" else "line-ew"},
            name=kind_style["legend"], customdata=[row.block for _, row in mine],
            hovertext=[f"{row.block}: {row.shortcut}, {row.input_shape} -> {row.output_shape}, "
                       f"{row.params:,} params" for _, row in mine],
            hovertemplate="%{hovertext}<extra></extra>",
        )
    # Stage labels under the boxes.
    for stage in stage_order:
        idx = [i for i, s in enumerate(blocks["stage"]) if s == stage]
        fig.add_annotation(x=(idx[0] + idx[-1] + 1) / 2, y=-0.35, text=stage, showarrow=False)
    return style.layout(
        fig, 300, top=40 if title else 10, shapes=shapes, title=title or None,
        xaxis={"visible": False, "range": [-0.5, len(blocks) + 0.5]}, yaxis={"visible": False, "range": [-0.7, 2.4]},
        legend=style.LEGEND_ABOVE, plot_bgcolor=style.TRANSPARENT,
    )


def model_list_figure(models: pd.DataFrame, highlight: str | None = None) -> go.Figure:
    """Every named architecture: params against MACs (log-log) from ``list_models``; ``highlight`` is ringed."""
    fig = go.Figure()
    for family in dict.fromkeys(models["family"]):
        mine = models[models["family"] == family]
        # Unlabelled points (a dozen names side by side overlap on a projector): the name is in the hover and
        # the table below; only the chosen net is written on the chart.
        fig.add_scatter(x=list(mine["macs"]), y=list(mine["params"]), mode="markers", name=family,
                        hovertext=list(mine["label"]), marker={"size": 12},
                        customdata=list(mine["name"]),
                        hovertemplate="%{hovertext}<br>%{y:,} params<br>%{x:,} MACs<extra></extra>")
    if highlight is not None and highlight in set(models["name"]):
        row = models[models["name"] == highlight].iloc[0]
        fig.add_scatter(x=[row["macs"]], y=[row["params"]], mode="markers+text", name="chosen",
                        customdata=[highlight], text=[str(row["label"])], textposition="middle right",
                        textfont={"size": style.TITLE_SIZE, "color": style.INK},
                        marker={"size": 24, "color": style.TRANSPARENT, "line": {"width": 3, "color": style.INK}},
                        hoverinfo="skip")
    # Whole decades only: Plotly's default labels the 2s and 5s between them too, in small type.
    return style.layout(fig, 440, top=20, xaxis={"type": "log", "title": "multiply-accumulates (native input size)",
                                                  "exponentformat": "SI", "dtick": 1},
                        yaxis={"type": "log", "title": "parameters", "exponentformat": "SI", "dtick": 1})
