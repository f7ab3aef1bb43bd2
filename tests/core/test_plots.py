"""Figure details a reader depends on."""

from __future__ import annotations

import pandas as pd

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
