"""Plotly figures for training races, built from the DataFrames of :mod:`resnet_core.train` / ``runs``.

``history``: one row per (step, racer) with loss, acc, lr, images_per_s, grad_<stage>...; ``evals``: one row
per (evaluation step, racer) with test_loss, test_acc. Residual nets are drawn in blues and plain twins in
reds (``style``, as on the other pages), deeper nets darker; a plain net's line is dashed as well, for print.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import style

# Kept importable from here; the palette lives in style.
RESIDUAL_SHADES = list(style.RESIDUAL_SHADES)
PLAIN_SHADES = list(style.PLAIN_SHADES)
SMOOTH_STEPS = 10  # training curves are drawn as a 10-step moving average (one batch is noisy)


def racer_styles(labels: list[str]) -> dict[str, dict[str, str]]:
    """Colour and dash per racer label ("Plain-56", "ResNet-20"...): blues for residual, reds for plain,
    darker for deeper nets of the same kind."""
    def depth(label: str) -> int:
        digits = "".join(ch for ch in label.split("-", 1)[-1] if ch.isdigit())
        return int(digits) if digits else 0

    styles: dict[str, dict[str, str]] = {}
    for plain in (False, True):
        group = sorted((lab for lab in labels if lab.startswith("Plain") == plain), key=depth)
        shades = PLAIN_SHADES if plain else RESIDUAL_SHADES
        for i, label in enumerate(group):
            # The deepest net of a kind gets the darkest shade (index 1), the shallowest the base shade.
            shade = shades[1] if len(group) > 1 and i == len(group) - 1 else shades[0 if i == 0 else 2 + (i - 1) % 2]
            styles[label] = {"color": shade, "dash": "dash" if plain else "solid"}
    return styles


def smoothed(history: pd.DataFrame, column: str, window: int = SMOOTH_STEPS) -> pd.DataFrame:
    """``step``, ``racer`` and the trailing ``window``-step mean of ``column`` per racer."""
    if history.empty:
        return pd.DataFrame(columns=["step", "racer", column])
    out = history[["step", "racer", column]].copy()
    out[column] = out.groupby("racer", sort=False)[column].transform(lambda s: s.rolling(window, min_periods=1).mean())
    return out


def race_figure(history: pd.DataFrame, evals: pd.DataFrame | None = None, *, total_steps: int | None = None,
                window: int = SMOOTH_STEPS) -> go.Figure:
    """Training loss (top) and accuracy (bottom) of every racer on shared axes; held-out accuracy as markers.

    Curves are ``window``-step moving averages. ``total_steps`` fixes the x range, so a live race fills
    the plot from the left instead of rescaling at every update.
    """
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=(f"Training loss ({window}-step average)",
                                        "Accuracy: training (lines), held-out (markers)"))
    labels = list(dict.fromkeys(history["racer"])) if not history.empty else []
    styles = racer_styles(labels)
    loss, acc = smoothed(history, "loss", window), smoothed(history, "acc", window)
    for label in labels:
        look = styles[label]
        line = {"color": look["color"], "dash": look["dash"], "width": 2}
        rows = loss[loss["racer"] == label]
        fig.add_trace(go.Scatter(x=rows["step"], y=rows["loss"], name=label, legendgroup=label, mode="lines",
                                 line=line, hovertemplate=f"{label}<br>step %{{x}}<br>loss %{{y:.3f}}<extra></extra>"),
                      row=1, col=1)
        rows = acc[acc["racer"] == label]
        fig.add_trace(go.Scatter(x=rows["step"], y=rows["acc"], name=label, legendgroup=label, mode="lines",
                                 line=line, showlegend=False,
                                 hovertemplate=f"{label}<br>step %{{x}}<br>training accuracy %{{y:.1%}}<extra></extra>"),
                      row=2, col=1)
        if evals is not None and not evals.empty:
            ev = evals[evals["racer"] == label]
            if len(ev):
                fig.add_trace(go.Scatter(x=ev["step"], y=ev["test_acc"], name=f"{label} (held-out)",
                                         legendgroup=label, mode="markers", showlegend=False,
                                         marker={"color": look["color"], "size": 9, "symbol": "diamond"},
                                         hovertemplate=f"{label}<br>step %{{x}}<br>held-out accuracy %{{y:.1%}}"
                                                       "<extra></extra>"),
                              row=2, col=1)
    fig.update_yaxes(title_text="loss", row=1, col=1, rangemode="tozero")
    fig.update_yaxes(title_text="accuracy", row=2, col=1, range=[0, 1], tickformat=".0%")
    fig.update_xaxes(title_text="step", row=2, col=1)
    if total_steps:
        fig.update_xaxes(range=[0, total_steps])
    return style.layout(fig, 560, top=50, legend=style.LEGEND_ABOVE, hovermode="x unified")


def stage_norms(history: pd.DataFrame, last: int = 20) -> pd.DataFrame:
    """Mean gradient norm per (racer, stage) over each racer's last ``last`` steps (long format:
    racer, stage, grad_norm), stages in forward order."""
    columns = [c for c in history.columns if c.startswith("grad_")]
    if history.empty or not columns:
        return pd.DataFrame(columns=["racer", "stage", "grad_norm"])
    tail = history.groupby("racer", sort=False).tail(last)
    means = tail.groupby("racer", sort=False)[columns].mean().reset_index()
    long = means.melt(id_vars="racer", var_name="stage", value_name="grad_norm")
    long["stage"] = long["stage"].str.removeprefix("grad_")
    return long.dropna(subset=["grad_norm"])


def grad_norm_figure(history: pd.DataFrame, last: int = 20) -> go.Figure:
    """Gradient norm of each stage's parameters (stem, layer1..N, head), averaged over the last ``last``
    steps, one bar per racer (log scale: plain and residual nets differ by orders of magnitude)."""
    frame = stage_norms(history, last)
    styles = racer_styles(list(dict.fromkeys(frame["racer"])))
    fig = go.Figure()
    for label, rows in frame.groupby("racer", sort=False):
        fig.add_trace(go.Bar(x=rows["stage"], y=rows["grad_norm"], name=str(label),
                             marker={"color": styles[str(label)]["color"]},
                             hovertemplate=f"{label}<br>%{{x}}: %{{y:.3g}}<extra></extra>"))
    fig = style.layout(fig, 320, top=50, barmode="group",
                       title=f"Gradient norm per stage (mean of the last {last} steps)",
                       yaxis={"type": "log", "title": "‖∇‖ of the stage's parameters"},
                       legend={**style.LEGEND_ABOVE, "y": -0.2})
    fig.update_yaxes(**log_ticks(list(frame["grad_norm"])))
    return fig


def log_ticks(values: list[float]) -> dict[str, object]:
    """Tick settings for a log axis over ``values`` whose labels never overlap: labelled 1-2-5 ticks when the
    values span at most two decades, else whole decades (fewer on a very wide axis, ``style.log_dtick``) written
    as powers of ten. Plotly's own log ticks add unlabelled-looking 2s and 5s that crowd a 320-px chart."""
    positive = [float(v) for v in values if v is not None and math.isfinite(float(v)) and float(v) > 0]
    if not positive:
        return {"dtick": 1, "exponentformat": "power"}
    low, high = min(positive), max(positive)
    if math.log10(high / low) <= 2:
        ticks = [m * 10.0**e for e in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
                 for m in (1, 2, 5) if low / 2 <= m * 10.0**e <= high * 2]
        return {"tickmode": "array", "tickvals": ticks, "ticktext": [f"{t:g}" for t in ticks]}
    return {"dtick": style.log_dtick(positive), "exponentformat": "power"}
