"""One palette over every figure builder in resnet_core.plots: residual blue solid, plain red dashed, from style.

Every public ``*_figure`` function of every module in ``resnet_core/plots`` is found by walking the package, so
a builder added later is checked too: it either draws nets (and gets an example below) or is listed as drawing
none. A source scan forbids colour literals anywhere but ``style.py``.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest

import resnet_core.plots as plots_pkg
from resnet_core.plots import style

PLOTS_DIR = Path(plots_pkg.__file__).parent
RESIDUALS = set(style.RESIDUAL_SHADES)
PLAINS = set(style.PLAIN_SHADES)


def _builders() -> dict[str, Callable[..., go.Figure]]:
    found = {}
    for info in pkgutil.iter_modules(plots_pkg.__path__):
        if info.name == "style":
            continue
        module = importlib.import_module(f"resnet_core.plots.{info.name}")
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ == module.__name__ and not name.startswith("_") and name.endswith("_figure"):
                found[f"{info.name}.{name}"] = fn
    return found


def _pairs(**columns) -> pd.DataFrame:
    rows = []
    for net, residual in (("ResNet-20", True), ("Plain-20", False)):
        for i in range(3):
            rows.append({"net": net, "residual": residual, "label": f"layer1.{i}", "depth": i, "block": f"layer1.{i}",
                         "block_index": i, **{k: v(residual, i) for k, v in columns.items()}})
    return pd.DataFrame(rows)


def _sweep() -> pd.DataFrame:
    return pd.DataFrame({"depth": [20, 56, 20, 56], "residual": [True, True, False, False],
                         "ratio": [3.0, 4.0, 20.0, 900.0], "label": ["ResNet-20", "ResNet-56", "Plain-20", "Plain-56"]})


def _history() -> pd.DataFrame:
    return pd.DataFrame([{"step": s, "racer": r, "loss": 2.0 / (s + 1), "acc": 0.1 * s, "grad_stem": 0.1,
                          "grad_layer1": 0.2} for s in range(3) for r in ("ResNet-20", "Plain-20")])


# Builders that draw residual and plain nets: an example input for each.
EXAMPLES: dict[str, Callable[[], go.Figure]] = {
    "instruments.activation_depth_figure": lambda f: f(_pairs(mean=lambda r, i: 0.5, std=lambda r, i: 1.0 + i,
                                                               inactive_share=lambda r, i: 0.4)),
    "instruments.gradient_norm_figure": lambda f: f(_pairs(grad_norm=lambda r, i: 1.0 + i if r else 10.0 ** -i)),
    "instruments.depth_sweep_figure": lambda f: f(_sweep()),
    "architecture.twin_figure": lambda f: f(pd.DataFrame({"label": ["ResNet-20", "Plain-20"], "residual": [True, False],
                                                          "params": [269_722, 269_722], "macs": [40_550_000] * 2,
                                                          "depth": [20, 20]})),
    "lesson.paper_table2_figure": lambda f: f(pd.DataFrame({"depth": [18, 34], "plain": [27.94, 28.54],
                                                            "resnet": [27.88, 25.03]})),
    "lesson.identity_figure": lambda f: f(pd.DataFrame({"variant": ["ResNet block", "plain block"],
                                                        "residual": [True, False], "relative_diff": [0.0, 1.2],
                                                        "max_abs_diff": [0.0, 3.0]})),
    "lesson.depth_figure": lambda f: f(_sweep()),
    "training.race_figure": lambda f: f(_history()),
    "training.grad_norm_figure": lambda f: f(_history()),
    "landscape.line_figure": lambda f: f(pd.DataFrame({"net": ["ResNet-20"] * 3 + ["Plain-20"] * 3,
                                                       "residual": [True] * 3 + [False] * 3,
                                                       "alpha": [-1.0, 0.0, 1.0] * 2, "loss": [2.0, 1.0, 2.0] * 2,
                                                       "accuracy": [0.5] * 6})),
    "landscape.surface_figure": lambda f: f(pd.DataFrame(
        [{"net": n, "residual": r, "alpha": a, "beta": b, "loss": 1.0 + a * a + b * b}
         for n, r in (("ResNet-20", True), ("Plain-20", False)) for a in (-1.0, 0.0, 1.0) for b in (-1.0, 0.0, 1.0)])),
    "lesion.curve_figure": lambda f: f(pd.DataFrame({"net": ["ResNet-20"] * 2 + ["Plain-20"] * 2,
                                                     "residual": [True, True, False, False], "removed": [1, 2, 1, 2],
                                                     "accuracy": [0.8, 0.7, 0.3, 0.2], "full_accuracy": [0.9] * 2 + [0.8] * 2})),
    "lesion.study_figure": lambda f: f(pd.DataFrame({"net": ["ResNet-20"] * 2 + ["Plain-20"] * 2,
                                                     "residual": [True, True, False, False],
                                                     "block": ["layer1.0", "layer2.0"] * 2,
                                                     "downsampling": [False, True] * 2,
                                                     "removable": [True, True, True, False],
                                                     "accuracy": [0.8, 0.6, 0.2, float("nan")],
                                                     "agreement": [0.9, 0.7, 0.3, float("nan")],
                                                     "full_accuracy": [0.9] * 2 + [0.8] * 2})),
}
# Builders that draw no residual/plain distinction (stages, shortcut kinds, maps, explanations, rankings).
NO_NETS = {
    "architecture.stage_figure", "architecture.layer_figure", "architecture.block_comparison_figure",
    "architecture.block_diagram_figure", "architecture.model_list_figure", "instruments.feature_map_figure",
    "instruments.depth_strip_figure", "instruments.path_split_figure", "lesson.split_figure", "lesson.paths_figure",
    "cam.cam_figure", "cam.layers_figure", "cam.topk_figure", "cam.pointing_figure", "cam.cascade_figure",
    "cam_methods.methods_grid_figure", "cam_methods.ranking_figure", "cam_methods.checks_figure",
    "cam_trust.trust_figure",
}


def test_every_builder_is_classified():
    unknown = sorted(set(_builders()) - set(EXAMPLES) - NO_NETS)
    assert not unknown, (f"{unknown}: a new figure builder; add an example to EXAMPLES if it draws residual/plain "
                         "nets, else add it to NO_NETS")


def _kind(name: str) -> bool | None:
    """True for a residual net's trace, False for a plain one's, None for anything else (guides, chance)."""
    low = name.lower()
    if "plain" in low:
        return False
    if "resnet" in low or "residual" in low:
        return True
    return None


def _colors(trace) -> list[str]:
    out = []
    line = getattr(trace, "line", None)
    if line is not None and isinstance(line.color, str):
        out.append(line.color)
    marker = getattr(trace, "marker", None)
    if marker is not None and marker.color is not None:
        out += [marker.color] if isinstance(marker.color, str) else list(marker.color)
    return out


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_residual_and_plain_traces_use_exactly_styles_colours(name):
    fig = EXAMPLES[name](_builders()[name])
    seen = {True: 0, False: 0}
    for trace in fig.data:
        colors = [c for c in _colors(trace) if c != style.INK]  # a marker's outline ring is ink
        if trace.type in ("contour", "heatmap") or not colors:
            continue
        if len(set(colors)) > 1:  # one trace, one colour per point (bars per net): by the point's label
            labels = list(trace.y if getattr(trace, "orientation", None) == "h" else trace.x)
            for label, color in zip(labels, colors, strict=True):
                assert color in (RESIDUALS if _kind(str(label)) else PLAINS), (name, label, color)
                seen[bool(_kind(str(label)))] += 1
            continue
        kind = _kind(trace.name or "")
        if kind is None:
            continue
        assert set(colors) <= (RESIDUALS if kind else PLAINS), (name, trace.name, colors)
        seen[kind] += 1
        dash = getattr(getattr(trace, "line", None), "dash", None)
        if trace.type == "scatter" and "lines" in (trace.mode or "") and dash is not None:
            assert dash == (style.RESIDUAL_DASH if kind else style.PLAIN_DASH), (name, trace.name, dash)
    assert seen[True] and seen[False], f"{name} drew no trace recognisable as residual and plain"


def test_instrument_lines_are_blue_solid_and_red_dashed_like_the_lesson():
    from resnet_core.plots import instruments, lesson

    for fig in (instruments.depth_sweep_figure(_sweep()), lesson.depth_figure(_sweep())):
        lines = {_kind(t.name): (t.line.color, t.line.dash) for t in fig.data if _kind(t.name or "") is not None}
        assert lines == {True: (style.RESIDUAL, "solid"), False: (style.PLAIN, "dash")}


COLOUR_LITERAL = re.compile(r"""#[0-9a-fA-F]{6}\b|#[0-9a-fA-F]{3}\b|rgba?\(|["'](?:red|blue|green|grey|gray|black|"""
                            r"""white|orange|purple|darkgrey|lightgrey|silver)["']""")


def test_no_colour_literal_outside_style():
    offenders = []
    for path in sorted(PLOTS_DIR.glob("*.py")):
        if path.name == "style.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            code = line.split("#", 1)[0] if not re.search(r"[\"']#", line) else line
            if COLOUR_LITERAL.search(code):
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert not offenders, "colours belong in style.py:\n" + "\n".join(offenders)
