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
