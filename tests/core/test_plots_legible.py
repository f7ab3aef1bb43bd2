"""Every figure builder, fed real (small) library results, is legible on a projector at 1280x720: no text below
14 px, and no two of its title, legend, axis titles and annotations overlap.

Boxes are in the figure's pixels (top left is 0, 0). Axis ranges come from Plotly's own layout pass
(``full_figure_for_development``, kaleido) where an annotation sits at a data value; text boxes are estimated from
font size and text length (0.6 em per character, generous, so a near miss counts as an overlap)."""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

import resnet_core
from resnet_core import cam, lesson, plots
from resnet_core.describe import architecture_report, block_comparison, list_models
from resnet_core.landscape import line, surface
from resnet_core.plots import (
    architecture,
    cam_methods,
    cam_trust,
    instruments,
    landscape,
    lesion,
    style,
    training,
)
from resnet_core.plots import cam as cam_plots
from resnet_core.plots import lesson as lesson_plots
from resnet_core.probes import (
    activation_profile,
    compare_activations,
    compare_path_gradients,
    depth_sweep,
    shapes_batch,
)
from resnet_core.train import PRESETS, Race
from resnet_core.weights.demo import load_demo_model
from tests.browser.conftest import CHROMIUM

MIN_PX = 14
# Plotly's layout pass (kaleido) drives Chromium: without Debian's chromium the overlap checks skip, as the
# browser tests do; the size checks need no browser.
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists() and not shutil.which("chromium"),
                                    reason="Debian's chromium is not installed (apt-get install chromium).")
WIDTH = style.LEGEND_WIDTH_PX  # the narrowest a chart is drawn beside the sidebar at 1280x720
EM = 0.6  # width of a character, in font sizes


def _text(value: object) -> list[str]:
    lines = re.split(r"<br\s*/?>", str(value or ""))
    return [re.sub(r"<[^>]+>", "", line) for line in lines]


def _size(text: object, font_px: float) -> tuple[float, float]:
    lines = _text(text)
    return max(len(line) for line in lines) * font_px * EM, len(lines) * font_px * 1.25


def _auto(anchor: str | None, paper: float, low: str, high: str) -> str:
    """Plotly's "auto" anchor of a legend: ``low`` up to 1/3 of the plot, ``high`` from 2/3, else the middle."""
    if anchor not in (None, "auto"):
        return anchor
    return low if paper <= 1 / 3 else high if paper >= 2 / 3 else "middle"


def _anchor(pos: float, size: float, anchor: str | None, low: str, high: str) -> tuple[float, float]:
    if anchor == low:
        return pos, pos + size
    if anchor == high:
        return pos - size, pos
    return pos - size / 2, pos + size / 2


class _Frame:
    """Pixel geometry of one figure: plot area, axes' domains and ranges (from Plotly's layout pass if needed)."""

    def __init__(self, fig: go.Figure) -> None:
        self.fig = fig
        layout = fig.layout
        self.height = layout.height or 450
        margin = layout.margin
        self.left, self.right = margin.l or 80, WIDTH - (margin.r or 80)
        self.top, self.bottom = margin.t or 100, self.height - (margin.b or 80)
        self.full = None

    def x(self, paper: float) -> float:
        return self.left + paper * (self.right - self.left)

    def y(self, paper: float) -> float:
        return self.bottom - paper * (self.bottom - self.top)

    def _axis(self, ref: str) -> tuple[list[float], list[float], str] | None:
        name = ("xaxis" if ref[0] == "x" else "yaxis") + ref[1:]
        if self.full is None:
            self.full = self.fig.full_figure_for_development(warn=False)
        axis = self.full.layout[name]
        if axis is None or axis.range is None or axis.type == "category":
            return None
        return list(axis.domain), list(axis.range), axis.type

    def to_paper(self, value: float, ref: str) -> float | None:
        if ref in (None, "paper") or ref.endswith(" domain"):
            return value
        found = self._axis(ref.split()[0])
        if found is None:
            return None
        (d0, d1), (r0, r1), kind = found
        if kind == "log":
            value = math.log10(value) if value > 0 else r0
        return d0 + (value - r0) / (r1 - r0) * (d1 - d0)


def _boxes(fig: go.Figure) -> list[tuple[str, tuple[float, float, float, float]]]:
    frame, layout, out = _Frame(fig), fig.layout, []
    if layout.title.text:
        size = layout.title.font.size or style.TITLE_SIZE
        w, h = _size(layout.title.text, size)
        x = (layout.title.x if layout.title.x is not None else 0.5) * WIDTH
        y = frame.top / 2 if layout.title.y in (None, "auto") else (1 - layout.title.y) * frame.height
        x0, x1 = _anchor(x, w, layout.title.xanchor or "center", "left", "right")
        out.append(("title", (x0, y - h / 2, x1, y + h / 2)))
    names = list(dict.fromkeys(t.name for t in fig.data if t.name and t.showlegend is not False))
    if names and layout.showlegend is not False and (len(fig.data) > 1 or layout.showlegend):
        legend, size = layout.legend, (layout.legend.font.size or style.FONT_SIZE)
        widths = [len(n) * size * EM + 45 for n in names]
        if legend.orientation == "h":
            w, h = min(sum(widths), WIDTH), style.legend_rows(fig) * style.LEGEND_ROW_PX
        else:
            w, h = max(widths), len(names) * size * 1.5
        lx, ly = (legend.x if legend.x is not None else 1.02), (legend.y if legend.y is not None else 1.0)
        x0, x1 = _anchor(frame.x(lx), w, _auto(legend.xanchor, lx, "left", "right"), "left", "right")
        y0, y1 = _anchor(frame.y(ly), h, _auto(legend.yanchor, ly, "bottom", "top"), "top", "bottom")
        out.append(("legend", (x0, y0, x1, y1)))
    for note in layout.annotations:
        if not note.text or note.visible is False:
            continue
        px, py = frame.to_paper(note.x if note.x is not None else 0.5, note.xref), \
            frame.to_paper(note.y if note.y is not None else 0.5, note.yref)
        if px is None or py is None:  # at a category: where Plotly puts it is not estimated here
            continue
        w, h = _size(note.text, note.font.size or style.FONT_SIZE)
        x, y = frame.x(px) + (note.xshift or 0), frame.y(py) - (note.yshift or 0)
        x0, x1 = _anchor(x, w, note.xanchor, "left", "right")
        y0, y1 = _anchor(y, h, note.yanchor, "top", "bottom")
        out.append((f"annotation {_text(note.text)[0]!r}", (x0, y0, x1, y1)))
    for name in [a for a in dir(layout) if a.startswith("xaxis")]:
        axis = layout[name]
        if axis is None or not axis.title.text or axis.visible is False:
            continue
        size = axis.title.font.size or style.FONT_SIZE
        w, h = _size(axis.title.text, size)
        d0, d1 = axis.domain if axis.domain is not None else (0, 1)
        x = frame.x((d0 + d1) / 2)
        # Below the tick labels; Plotly widens a margin too small for it, so it stays inside the figure.
        y = min(frame.bottom + style.TICK_SIZE * 1.6 + h / 2, frame.height - h / 2)
        out.append((f"x title {axis.title.text!r}", (x - w / 2, y - h / 2, x + w / 2, y + h / 2)))
    return out


def _overlaps(boxes: list[tuple[str, tuple[float, float, float, float]]]) -> list[str]:
    found = []
    for i, (a, (ax0, ay0, ax1, ay1)) in enumerate(boxes):
        for b, (bx0, by0, bx1, by1) in boxes[i + 1:]:
            if min(ax1, bx1) - max(ax0, bx0) > 2 and min(ay1, by1) - max(ay0, by0) > 2:
                found.append(f"{a} overlaps {b}")
    return found


def _small_text(fig: go.Figure) -> list[str]:
    layout, small = fig.layout, []

    def check(where: str, size: float | None) -> None:
        if size is not None and size < MIN_PX:
            small.append(f"{where}: {size} px")

    check("font", layout.font.size)
    check("title", layout.title.font.size)
    check("legend", layout.legend.font.size)
    for name in [a for a in dir(layout) if a.startswith(("xaxis", "yaxis"))]:
        axis = layout[name]
        if axis is not None and axis.visible is not False:
            check(f"{name} ticks", axis.tickfont.size)
            check(f"{name} title", axis.title.font.size)
    for note in layout.annotations:
        check(f"annotation {_text(note.text)[0]!r}", note.font.size)
    for trace in fig.data:
        if getattr(trace, "text", None) is not None and "textfont" in trace:
            check(f"text of {trace.name!r}", trace.textfont.size)
        if "marker" in trace and trace.marker is not None and "colorbar" in trace.marker:
            check(f"colour bar of {trace.name!r}", trace.marker.colorbar.tickfont.size)
        if "colorbar" in trace:
            check(f"colour bar of {trace.name!r}", trace.colorbar.tickfont.size)
    return small


# ------------------------------------------------------------------------------------- real inputs, small
@pytest.fixture(scope="module")
def figures() -> dict[str, go.Figure]:
    built: dict[str, Callable[[], go.Figure]] = {}
    with torch.device("meta"):
        meta, meta_twin = resnet_core.build("resnet50"), resnet_core.build("resnet50", residual=False)
    report = architecture_report(meta, meta_twin, 224)
    built["architecture.stage_figure"] = lambda: architecture.stage_figure(report.stages)
    built["architecture.layer_figure"] = lambda: architecture.layer_figure(report.layers)
    built["architecture.twin_figure"] = lambda: architecture.twin_figure(report.twin)
    built["architecture.block_diagram_figure"] = lambda: architecture.block_diagram_figure(report.blocks)
    built["architecture.block_comparison_figure"] = lambda: architecture.block_comparison_figure(
        block_comparison(256))
    built["architecture.model_list_figure"] = lambda: architecture.model_list_figure(list_models(),
                                                                                      highlight="resnet50")

    demo = load_demo_model("resnet20")
    x_all, test = cam.shapes_check_images(demo, 16)
    x = x_all[:1]
    view = (test.images[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    names = demo.class_names
    explanation = cam.explain(demo, x, None, None, "gradcam", class_names=names)
    report_check = cam.localisation_check(demo, n=16, cascade_images=4, examples=2)
    comparison = cam.compare_methods(demo, x, methods=["gradcam", "gradcampp", "integrated_gradients"],
                                     class_names=names, steps=4)
    built["cam.cam_figure"] = lambda: cam_plots.cam_figure(explanation, view)
    built["cam.layers_figure"] = lambda: cam_plots.layers_figure(cam.explain_layers(demo, x, class_names=names), view)
    built["cam.topk_figure"] = lambda: cam_plots.topk_figure(cam.predict(demo, x, names, k=5))
    built["cam.pointing_figure"] = lambda: cam_plots.pointing_figure(report_check.pointing.summary())
    built["cam.cascade_figure"] = lambda: cam_plots.cascade_figure(report_check.cascade)
    built["cam_methods.methods_grid_figure"] = lambda: cam_methods.methods_grid_figure(comparison, view)
    built["cam_methods.ranking_figure"] = lambda: cam_methods.ranking_figure(comparison.table)
    built["cam_methods.checks_figure"] = lambda: cam_methods.checks_figure(cam.method_checks(
        demo, x_all, test.labels, test.masks, methods=["gradcam", "gradcampp"], cascade_images=2))
    built["cam_trust.trust_figure"] = lambda: cam_trust.trust_figure(cam.trust_scores(
        demo, x, ["gradcam", "eigencam", "lrp"], masks=test.masks[0].numpy(), samples=2))

    net, twin = resnet_core.build("resnet20", width=4, seed=0), resnet_core.build("resnet20", width=4, seed=0,
                                                                                     residual=False)
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    profile = activation_profile(net, images, "taps", keep="maps", max_channels=8, max_side=16)
    stats, hists = compare_activations(net, twin, images, "blocks", labels=("ResNet-20", "Plain-20"))
    inputs, target = shapes_batch(net, n=4)
    flow = compare_path_gradients(net, twin, inputs, target, labels=("ResNet-20", "Plain-20"))
    built["instruments.activation_depth_figure"] = lambda: instruments.activation_depth_figure(stats)
    built["instruments.histogram_heatmap"] = lambda: instruments.histogram_heatmap(
        hists[hists["net"] == "ResNet-20"], title="ResNet-20")
    built["instruments.feature_map_figure"] = lambda: instruments.feature_map_figure(next(iter(profile.maps.values())))
    built["instruments.depth_strip_figure"] = lambda: instruments.depth_strip_figure(profile.stats())
    built["instruments.gradient_norm_figure"] = lambda: instruments.gradient_norm_figure(flow)
    built["instruments.path_split_figure"] = lambda: instruments.path_split_figure(flow[flow["residual"]])
    built["instruments.depth_sweep_figure"] = lambda: instruments.depth_sweep_figure(
        depth_sweep((20, 32), family="cifar", batch=4, width=4))

    pair = lesson.load_pair(lesson.DEMO_PAIR)
    px, py = lesson.shapes_batch("train", 8, pair.image_size)[:2]
    grid = surface(pair.models["ResNet-20"], px, py, steps=3).assign(net="ResNet-20", residual=True)
    cut = line(pair.models["ResNet-20"], px, py, steps=3).assign(net="ResNet-20", residual=True)
    built["landscape.surface_figure"] = lambda: landscape.surface_figure(grid)
    built["landscape.line_figure"] = lambda: landscape.line_figure(cut)
    lx, ly = lesson.shapes_batch("test", 16, pair.image_size)[:2]
    studies, curves = lesson.lesion_pair(pair, lx, ly, max_removed=2, samples=1)
    built["lesion.study_figure"] = lambda: lesion.study_figure(studies, chance=pair.chance)
    built["lesion.curve_figure"] = lambda: lesion.curve_figure(curves, chance=pair.chance)

    built["lesson.paper_table2_figure"] = lambda: lesson_plots.paper_table2_figure(lesson.PAPER_TABLE2_TOP1)
    built["lesson.identity_figure"] = lambda: lesson_plots.identity_figure(
        lesson.identity_check("resnet20", "layer2.1", width=4))
    built["lesson.split_figure"] = lambda: lesson_plots.split_figure(lesson.gradient_split("resnet20", width=4))
    built["lesson.depth_figure"] = lambda: lesson_plots.depth_figure(lesson.depth_ratios((20, 32), width=4,
                                                                                         batch=4))
    built["lesson.paths_figure"] = lambda: lesson_plots.paths_figure(lesson.unrolled_paths(54))

    quartet = PRESETS[lesson.CURVES_RACE_NAME]  # four racers: the longest legend a race draws
    race = Race(replace(quartet, steps=3, width=4, image_size=16, batch_size=8, n_train=64, n_test=16,
                        eval_every=3, eval_samples=16, checkpoint_every=0)).train()
    built["training.race_figure"] = lambda: training.race_figure(race.history(), race.evals(), total_steps=3)
    built["training.grad_norm_figure"] = lambda: training.grad_norm_figure(race.history())
    return {name: make() for name, make in built.items()}


def _builders() -> set[str]:
    """Every public figure function of resnet_core.plots (module.name), read at test time."""
    import importlib
    import inspect
    import pkgutil

    found = set()
    for info in pkgutil.iter_modules(plots.__path__):
        if info.name == "style":
            continue
        module = importlib.import_module(f"resnet_core.plots.{info.name}")
        for name, value in vars(module).items():
            if (inspect.isfunction(value) and value.__module__ == module.__name__ and not name.startswith("_")
                    and inspect.signature(value).return_annotation in ("go.Figure", go.Figure)):
                found.add(f"{info.name}.{name}")
    return found


def test_every_figure_builder_is_checked(figures):
    assert set(figures) == _builders()


def test_no_text_is_smaller_than_14_px(figures):
    small = {name: found for name, fig in figures.items() if (found := _small_text(fig))}
    assert not small, small


@needs_chromium
def test_no_title_legend_axis_title_or_annotation_overlaps_another(figures):
    crowded = {name: found for name, fig in figures.items() if (found := _overlaps(_boxes(fig)))}
    assert not crowded, crowded


@needs_chromium
def test_the_checks_catch_the_faults_a_teacher_found(figures):
    """The checks above can fail: the race chart's legend just above the plot (where it ran into the subplot
    title), the lesion chart's labels on the plot (two "all blocks" labels on top of each other, "chance"
    on a bar) and a 12 px subplot title are each caught."""
    race = go.Figure(figures["training.race_figure"])
    race.update_layout(margin_t=50, legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0})
    assert any("legend overlaps annotation 'Training loss" in found for found in _overlaps(_boxes(race)))
    study = go.Figure(figures["lesion.study_figure"])
    for y, text, where in ((0.95, "Plain-20, all blocks: 95%", "top left"), (0.93, "ResNet-20, all blocks: 93%",
                                                                              "top left")):
        study.add_hline(y=y, annotation_text=text, annotation_position=where)
    assert any("all blocks" in found for found in _overlaps(_boxes(study)))
    grid = go.Figure(figures["cam_methods.methods_grid_figure"])
    grid.update_annotations(font_size=12)
    assert any(found.startswith("annotation") and "12 px" in found for found in _small_text(grid))
