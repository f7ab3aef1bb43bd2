"""Figure details a reader depends on."""

from __future__ import annotations

import pandas as pd
import pytest

from resnet_core.plots.instruments import gradient_norm_figure


def _grads(values: list[float]) -> pd.DataFrame:
    n = len(values)
    return pd.DataFrame({"net": ["ResNet-20"] * n, "residual": [True] * n, "block_index": range(n),
                         "block": [f"layer1.{i}" for i in range(n)], "grad_norm": values})


def test_narrow_log_axis_has_full_number_labels():
    axis = gradient_norm_figure(_grads([3.0, 1.0, 0.4])).layout.yaxis
    assert axis.type == "log"
    assert list(axis.ticktext) == ["0.2", "0.5", "1", "2", "5"]
    assert all(0.2 <= v <= 5 for v in axis.tickvals)


def test_wide_log_axis_uses_decades():
    axis = gradient_norm_figure(_grads([1e4, 1.0, 1e-3])).layout.yaxis
    assert axis.dtick == 1 and axis.tickvals is None


def test_lesson_depth_axis_labels_whole_decades():
    from resnet_core.plots.lesson import depth_figure

    ratios = pd.DataFrame({"depth": [20, 56, 20, 56], "residual": [True, True, False, False],
                           "ratio": [7.2, 27.2, 18.3, 5.5e3], "label": ["ResNet-20", "ResNet-56", "Plain-20", "Plain-56"]})
    axis = depth_figure(ratios).layout.yaxis
    assert axis.type == "log" and axis.dtick == 1


# --- one palette: every residual/plain pair is drawn in style's colours, every stage in its one colour ---

def _trace_colors(trace) -> list[str]:
    """The colours a trace is drawn in (line and marker; per-point marker colours flattened)."""
    colors = []
    line = getattr(trace, "line", None)
    if line is not None and line.color is not None:
        colors.append(line.color)
    marker = getattr(trace, "marker", None)
    if marker is not None and marker.color is not None:
        colors.extend([marker.color] if isinstance(marker.color, str) else list(marker.color))
    return colors


def _pair_frame(**columns) -> pd.DataFrame:
    n = 3
    rows = []
    for net, residual in (("ResNet-20", True), ("Plain-20", False)):
        for i in range(n):
            rows.append({"net": net, "residual": residual, "label": f"layer1.{i}", "depth": i, "block": f"layer1.{i}",
                         "block_index": i, **{k: v(residual, i) for k, v in columns.items()}})
    return pd.DataFrame(rows)


def _net_traces(fig) -> dict[str, set[str]]:
    """Colours per trace name, for traces named after a net."""
    out: dict[str, set[str]] = {}
    for trace in fig.data:
        out.setdefault(trace.name, set()).update(_trace_colors(trace))
    return out


def test_instrument_pairs_use_the_style_palette():
    from resnet_core.plots import instruments, style

    stats = _pair_frame(mean=lambda r, i: 0.5 + i, std=lambda r, i: 1.0, inactive_share=lambda r, i: 0.4)
    grads = _pair_frame(grad_norm=lambda r, i: 1.0 + i if r else 10.0 ** -i)
    for fig in (instruments.activation_depth_figure(stats), instruments.gradient_norm_figure(grads)):
        colors = _net_traces(fig)
        assert colors["ResNet-20"] == {style.RESIDUAL}
        assert colors["Plain-20"] == {style.PLAIN}
    sweep = pd.DataFrame({"depth": [20, 56, 20, 56], "residual": [True, True, False, False],
                          "ratio": [3.0, 4.0, 20.0, 900.0],
                          "label": ["ResNet-20", "ResNet-56", "Plain-20", "Plain-56"]})
    colors = _net_traces(instruments.depth_sweep_figure(sweep))
    assert colors == {"residual (ResNet)": {style.RESIDUAL}, "plain (no shortcuts)": {style.PLAIN}}


def test_lesson_pairs_use_the_style_palette():
    from resnet_core.plots import lesson, style

    table2 = pd.DataFrame({"depth": [18, 34], "plain": [27.94, 28.54], "resnet": [27.88, 25.03]})
    assert _net_traces(lesson.paper_table2_figure(table2)) == {"plain": {style.PLAIN}, "ResNet": {style.RESIDUAL}}
    check = pd.DataFrame({"variant": ["residual block", "plain block"], "residual": [True, False],
                          "relative_diff": [0.0, 0.9], "max_abs_diff": [0.0, 2.0]})
    assert list(lesson.identity_figure(check).data[0].marker.color) == [style.RESIDUAL, style.PLAIN]
    ratios = pd.DataFrame({"depth": [20, 56, 20, 56], "residual": [True, True, False, False],
                           "ratio": [7.2, 27.2, 18.3, 5.5e3], "label": ["ResNet-20", "ResNet-56", "Plain-20", "Plain-56"]})
    assert _net_traces(lesson.depth_figure(ratios)) == {"residual": {style.RESIDUAL}, "plain": {style.PLAIN}}


def test_training_pairs_use_the_style_palette():
    from resnet_core.plots import style, training

    racers = ["ResNet-20", "Plain-20", "ResNet-56", "Plain-56"]
    history = pd.DataFrame([{"step": s, "racer": r, "loss": 2.0 / (s + 1), "acc": 0.1 * s, "grad_stem": 0.1,
                             "grad_layer1": 0.2} for s in range(3) for r in racers])
    for fig in (training.race_figure(history), training.grad_norm_figure(history)):
        colors = _net_traces(fig)
        assert colors["ResNet-20"] == {style.RESIDUAL} and colors["Plain-20"] == {style.PLAIN}
        assert colors["ResNet-56"] <= set(style.RESIDUAL_SHADES) and colors["Plain-56"] <= set(style.PLAIN_SHADES)
        assert colors["ResNet-56"] != colors["ResNet-20"]


def test_architecture_twin_uses_the_style_palette():
    import torch

    from resnet_core import build
    from resnet_core.describe import twin_comparison
    from resnet_core.plots import architecture, style

    with torch.device("meta"):
        twin = twin_comparison(build("resnet20"), build("resnet20", residual=False), 32)
    fig = architecture.twin_figure(twin)
    assert {tuple(trace.marker.color) for trace in fig.data} == {(style.RESIDUAL, style.PLAIN)}
    plain_blocks = architecture.block_diagram_figure(_blocks(residual=False))
    assert [t.marker.color for t in plain_blocks.data if t.name.startswith("no shortcut")] == [style.PLAIN]


def _blocks(residual: bool = True, name: str = "resnet18"):
    import torch

    from resnet_core import build
    from resnet_core.describe import block_table

    with torch.device("meta"):
        return block_table(build(name, residual=residual), 64)


def test_shortcut_diagram_stage_colours_match_the_stage_charts():
    """Issue 12: the diagram's boxes were coloured by position among the blocks, one stage off the charts."""
    import torch

    from resnet_core import build
    from resnet_core.describe import describe, stage_table
    from resnet_core.plots import architecture, instruments, style

    for name in ("resnet18", "resnet20"):
        with torch.device("meta"):
            model = build(name)
            layers = describe(model, 64)
            stages = stage_table(model, 64, layers=layers)
        blocks = _blocks(name=name)
        bars = architecture.stage_figure(stages).data[0]
        stage_colors = dict(zip(stages["stage"], bars.marker.color, strict=True))
        boxes = [s for s in architecture.block_diagram_figure(blocks).layout.shapes if s.type == "rect"]
        assert [box.fillcolor for box in boxes] == [stage_colors[s] for s in blocks["stage"]]
        assert stage_colors["layer1"] == style.stage_color("layer1") != stage_colors["stem"]
        per_layer = {t.name: t.marker.color for t in architecture.layer_figure(layers).data}
        assert all(per_layer[stage] == stage_colors[stage] for stage in per_layer)
        strip_stats = pd.DataFrame({"stage": blocks["stage"], "depth": range(len(blocks)),
                                    "layer": blocks["block"], "label": blocks["block"]})
        strip = {t.name: t.marker.color for t in instruments.depth_strip_figure(strip_stats).data}
        assert all(strip[stage] == stage_colors[stage] for stage in strip)


def test_figure_modules_take_colours_only_from_style():
    """No hex colour or colour name is written in a figure module other than style."""
    import pathlib
    import re

    import resnet_core.plots as plots

    folder = pathlib.Path(plots.__file__).parent
    pattern = re.compile(r"#[0-9a-fA-F]{6}\b|rgba?\(|\"(?:grey|gray|black|white|red|blue)\"")
    offenders = {path.name: pattern.findall(path.read_text()) for path in folder.glob("*.py") if path.name != "style.py"}
    assert {name: found for name, found in offenders.items() if found} == {}


# --- classroom fixes: honest axes, labels that fit, words that say what is drawn ---

def test_paper_table2_axis_starts_at_zero_so_a_small_gap_looks_small():
    from resnet_core.lesson import PAPER_TABLE2_TOP1
    from resnet_core.plots.lesson import paper_table2_figure

    fig = paper_table2_figure(PAPER_TABLE2_TOP1)
    axis = fig.layout.yaxis
    assert axis.rangemode == "tozero" and axis.range is None  # no axis starting at 20 magnifying 0.6 points
    plain = next(t for t in fig.data if t.name == "plain")
    assert list(plain.y) == [27.94, 28.54] and list(plain.text) == ["27.94", "28.54"]


def test_split_legend_calls_the_total_a_vector_sum():
    from resnet_core.plots.lesson import split_figure

    split = pd.DataFrame({"block": ["layer1.0", "layer1.1"], "shortcut_norm": [1.0, 1.0], "branch_norm": [1.0, 0.5],
                          "total_norm": [1.2, 1.3]})  # below 1 + 1: the two paths point in different directions
    names = [t.name for t in split_figure(split).data]
    assert names[2] == "total (vector sum: at most the two bars added)" and "their sum" not in names[2]


def _race_history(norms: dict[str, float], plain_factor: float) -> pd.DataFrame:
    rows = [{"step": s, "racer": racer, "loss": 1.0, "acc": 0.5, "lr": 0.1,
             **{f"grad_{stage}": value * (1 if racer == "ResNet-56" else plain_factor) for stage, value in norms.items()}}
            for s in range(1, 4) for racer in ("Plain-56", "ResNet-56")]
    return pd.DataFrame(rows)


def test_race_gradient_axis_has_few_labelled_ticks():
    from resnet_core.plots.training import grad_norm_figure

    # Within two decades: labelled 1-2-5 ticks only, each written in full, none outside the bars' range.
    narrow = grad_norm_figure(_race_history({"stem": 0.02, "layer1": 0.05, "layer2": 0.1, "head": 0.3}, 3)).layout.yaxis
    assert narrow.type == "log" and narrow.tickmode == "array"
    assert list(narrow.ticktext) == ["0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1"]
    assert list(narrow.tickvals) == pytest.approx([0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0])
    # A wide range: whole decades as powers of ten, at most style.MAX_LOG_TICKS of them.
    from resnet_core.plots import style

    wide = grad_norm_figure(_race_history({"stem": 1e-9, "layer1": 1e-3, "head": 1.0}, 30)).layout.yaxis
    assert wide.exponentformat == "power" and wide.tickvals is None
    assert (11 + 1) / wide.dtick <= style.MAX_LOG_TICKS
