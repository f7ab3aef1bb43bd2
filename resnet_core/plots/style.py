"""The one palette and the layout defaults of every figure (pages, notebooks and the CLI draw the same).

Meaning decides colour, everywhere:

- a residual net is blue and solid, its plain twin red and dashed (deeper nets of a kind in darker shades of the
  same hue); ``net_line`` gives both, so a line reads the same on every page and in black-and-white print;
- a stage has one colour wherever it appears, looked up by its module name (``stem``, ``layer1`` ...,
  ``head``), never by its position in a table, so a chart that starts at ``layer1`` agrees with one that
  starts at the stem;
- a shortcut kind has one colour and dash (the paper's Fig. 3: solid identity, dashed projection); a block
  without a shortcut is drawn in the plain colour;
- the gradient through the shortcut is the residual blue, through the branch orange;
- magnitudes use one sequential scale, signed quantities one diverging scale.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

RESIDUAL = "#1f77b4"
PLAIN = "#d62728"
# Several nets of one kind in a race: base shade first, then the darkest for the deepest, then the others.
RESIDUAL_SHADES = (RESIDUAL, "#08306b", "#6baed6", "#2171b5")
PLAIN_SHADES = (PLAIN, "#67000d", "#fc9272", "#a50f15")

SHORTCUT = RESIDUAL  # the gradient's share through the identity path
BRANCH = "#ff7f0e"  # ... and through the residual branch F(x)
INK = "#222222"  # totals, selection rings, reference lines that must read as "not a net"
GUIDE = "#7f7f7f"  # reference lines (y = 1, y = 0)
BAND = "rgba(31,119,180,0.2)"  # a min-max band around a single series (RESIDUAL at 20 %)
TRANSPARENT = "rgba(0,0,0,0)"
# A notice printed over an image (white on translucent black reads on any photo).
BADGE: dict[str, Any] = {"font": {"size": 18, "color": "white"}, "bgcolor": "rgba(0,0,0,0.6)"}

STEM_COLOR = "#8c8c8c"
HEAD_COLOR = "#b279a2"
# layer1, layer2, ... in order (ResNets have at most four stages; more would cycle).
# No red among them: red means a plain net, everywhere.
STAGE_CYCLE = ("#4c78a8", "#f58518", "#54a24b", "#9d755d", "#72b7b2")
OTHER_STAGE = "#bab0ac"

# Basic block vs bottleneck in the block-comparison chart.
BLOCK_KIND_COLORS = {"BasicBlock": "#f58518", "Bottleneck": "#4c78a8"}

# How each shortcut kind is drawn (the paper's Fig. 3: solid identity, dashed projection).
SHORTCUT_STYLE: dict[str, dict[str, Any]] = {
    "identity": {"dash": "solid", "color": RESIDUAL, "legend": "identity shortcut (solid)"},
    "projection": {"dash": "dash", "color": "#9467bd", "legend": "projection shortcut, 1x1 conv (dashed)"},
    "zero-pad": {"dash": "dot", "color": "#2ca02c", "legend": "zero-padded identity, option A (dotted)"},
    "none": {"dash": None, "color": PLAIN, "legend": "no shortcut (plain block)"},
}

SEQUENTIAL = "Viridis"  # magnitudes: histograms over depth, feature maps
DIVERGING = "RdBu_r"  # signed values centred on zero
CAM_COLORMAP = "Jet"  # explanation maps over a photo (the convention of the Grad-CAM literature)
# Series without a meaning of their own (one bar chart, several model families) take these in order.
CATEGORICAL = ("#4c78a8", "#f58518", "#54a24b", "#72b7b2", "#eeca3b", "#b279a2", "#9d755d", "#bab0ac",
               "#17becf")  # no red: red means a plain net

MARGIN = {"t": 40, "b": 10, "l": 10, "r": 10}
LEGEND_ABOVE = {"orientation": "h", "y": 1.1}


# Room, in px, that text takes above a plot: a legend row, a subplot title, the figure's title, the gap between.
LEGEND_ROW_PX, SUBPLOT_TITLE_PX, TITLE_PX, LEGEND_GAP_PX = 30, 28, 34, 8
# The narrowest plot a legend must fit on a 1280x720 screen (Streamlit's main column beside the sidebar).
LEGEND_WIDTH_PX = 700


def legend_rows(fig: go.Figure, width: int = LEGEND_WIDTH_PX) -> int:
    """Rows a horizontal legend takes at ``width`` px: entries packed left to right, each its name's width at the
    legend's font (0.6 em per character, a safe over-estimate) plus the symbol and the gap (45 px)."""
    names = [t.name for t in fig.data if t.name and t.showlegend is not False and t.visible is not False]
    names = list(dict.fromkeys(names))  # a legend group shows once
    rows, used = (1 if names else 0), 0.0
    for name in names:
        need = len(str(name)) * FONT_SIZE * 0.6 + 45
        if used and used + need > width:
            rows, used = rows + 1, 0.0
        used += need
    return rows


def legend_above(height: int, *, top: int, bottom: int | None = None, clear: int = 8) -> dict[str, Any]:
    """A horizontal legend whose bottom sits ``clear`` px above the plot area, measured in pixels (Plotly places it
    in fractions of the plot's height, so a fixed fraction runs into a title or a subplot title on a short
    chart). ``top`` must leave room for it (one row of entries needs about 30 px)."""
    plot = max(1, height - top - (MARGIN["b"] if bottom is None else bottom))
    return {"orientation": "h", "yanchor": "bottom", "y": 1 + clear / plot, "x": 0, "xanchor": "left"}

# Projector-readable text (a class reads these from the back of a room): sizes in px, one dark ink. Set on the
# figure itself, so they win over the light-grey tick labels of Streamlit's chart theme.
FONT_SIZE = 16
TICK_SIZE = 15
TITLE_SIZE = 18
MIN_TEXT_SIZE = 14  # nothing smaller: the floor for a subplot title or a label squeezed onto a tile
TEXT_COLOR = INK
GRID_COLOR = "#d9d9d9"
FONT: dict[str, Any] = {"size": FONT_SIZE, "color": TEXT_COLOR}
TICK_FONT: dict[str, Any] = {"size": TICK_SIZE, "color": TEXT_COLOR}
# Plotly's "decimal, thousands" characters: 214,546 and 0.5.
SEPARATORS = ".,"
# A chart with more blocks (or layers) than this draws its bars horizontally: one readable label per row
# instead of dozens of tiny rotated ones.
MANY_BARS = 20
# Pixels per horizontal bar row, and the most ticks a log axis carries.
ROW_HEIGHT = 18
MAX_LOG_TICKS = 8

PLAIN_DASH = "dash"
RESIDUAL_DASH = "solid"


def net_color(residual: bool) -> str:
    """Blue for a residual net, red for its plain twin."""
    return RESIDUAL if residual else PLAIN


def net_line(residual: bool, **extra: Any) -> dict[str, Any]:
    """A net's line: blue solid for a residual net, red dashed for its plain twin (plus ``extra``)."""
    return {"color": net_color(residual), "dash": RESIDUAL_DASH if residual else PLAIN_DASH, **extra}


def fmt_count(value: float) -> str:
    """A count with thousands separators: 214546 -> "214,546"."""
    return f"{round(value):,}"


def fmt_value(value: float) -> str:
    """A measured value for a label: 3 significant digits, thousands separators once it is 1,000 or more
    (8327069.5 -> "8,327,070"; 0.01234 -> "0.0123"), scientific beyond 1e12 or below 1e-3."""
    magnitude = abs(value)
    if value != value or magnitude == float("inf"):
        return str(value)
    if magnitude >= 1e12 or 0 < magnitude < 1e-3:
        return f"{value:.2e}"
    if magnitude >= 999.5:  # what 3 significant digits would round up to 1e+03
        return f"{value:,.0f}"
    return f"{value:.3g}"


def fmt_points(points: float) -> str:
    """A difference of two percentages, in percentage points: 0.497 (a share) -> "+49.7 pp"."""
    return f"{points * 100:+.1f} pp"


def log_dtick(values: Any) -> int:
    """Decades per tick on a log axis spanning ``values``, so it carries at most ``MAX_LOG_TICKS`` ticks."""
    import math

    positive = [float(v) for v in values if v is not None and float(v) > 0 and math.isfinite(float(v))]
    if not positive:
        return 1
    decades = math.log10(max(positive)) - math.log10(min(positive))
    return max(1, math.ceil((decades + 1) / MAX_LOG_TICKS))


def stage_color(stage: str) -> str:
    """The colour of a stage by its module name: ``stem``, ``layer1`` ... ``layerN``, ``head``."""
    if stage == "stem":
        return STEM_COLOR
    if stage == "head":
        return HEAD_COLOR
    if stage.startswith("layer") and stage[5:].isdigit() and int(stage[5:]) >= 1:
        return STAGE_CYCLE[(int(stage[5:]) - 1) % len(STAGE_CYCLE)]
    return OTHER_STAGE


def layout(fig: go.Figure, height: int, *, top: int = MARGIN["t"], bottom: int = MARGIN["b"],
           **options: Any) -> go.Figure:
    """Apply the shared defaults plus ``options``; returns ``fig``.

    Defaults: margins, colour order for unstyled series, projector-readable fonts in one dark ink (titles,
    ticks, legend, hover, subplot titles that set no size of their own), thousands separators.
    """
    above = options.get("legend") is LEGEND_ABOVE
    margin = {**MARGIN, "t": top, "b": bottom}
    fig.update_layout(height=height, margin=margin, colorway=list(CATEGORICAL), font=FONT, separators=SEPARATORS,
                      legend_font=FONT, hoverlabel_font_size=FONT_SIZE, title_font={"size": TITLE_SIZE,
                                                                                     "color": TEXT_COLOR})
    fig.update_layout(**options)
    if above:  # placed in pixels, clear of the title and of subplot titles, with the room it needs
        subplot_titles = any(a.yref == "paper" and a.y is not None and a.y >= 1 and a.yanchor == "bottom"
                             for a in fig.layout.annotations)
        clear = (SUBPLOT_TITLE_PX if subplot_titles else 0) + LEGEND_GAP_PX
        title = TITLE_PX if fig.layout.title.text else 0
        top = max(top, title + clear + legend_rows(fig) * LEGEND_ROW_PX)
        fig.update_layout(margin_t=top, legend=legend_above(height, top=top, bottom=bottom, clear=clear))
    axis = {"tickfont": TICK_FONT, "title_font": FONT, "gridcolor": GRID_COLOR}
    fig.update_xaxes(**axis)
    fig.update_yaxes(**axis)
    for note in fig.layout.annotations:
        note.font.color = note.font.color or TEXT_COLOR
        note.font.size = note.font.size or FONT_SIZE
    return fig
