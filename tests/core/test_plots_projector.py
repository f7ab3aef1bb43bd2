"""Projector-readable figures: big dark text, thousands separators, horizontal bars for many blocks, few log
ticks, no crowd of labels on the "Every architecture" scatter."""

from __future__ import annotations

import pandas as pd
import torch

from resnet_core.plots import architecture, instruments, style
from resnet_core.probes import FeatureMaps


def _split(blocks: int) -> pd.DataFrame:
    return pd.DataFrame({"block": [f"layer{1 + i // 18}.{i % 18}" for i in range(blocks)],
                         "shortcut": ["identity"] * blocks, "shortcut_share": [0.7] * blocks,
                         "branch_share": [0.3] * blocks, "shortcut_norm": [1.0] * blocks,
                         "branch_norm": [0.5] * blocks})


def _assert_readable(fig) -> None:
    layout = fig.layout
    assert layout.font.size >= 16 and layout.font.color == style.INK
    assert layout.separators == ".,"
    for axis in [a for a in dir(layout) if a.startswith(("xaxis", "yaxis"))]:
        ax = layout[axis]
        if ax is not None and ax.visible is not False:
            assert ax.tickfont.size >= 14 and ax.tickfont.color == style.INK, axis
    for note in layout.annotations:
        assert note.font.size >= 14 and note.font.color == style.INK


def test_many_blocks_are_horizontal_bars_with_one_label_each():
    many = instruments.path_split_figure(_split(54))
    assert {t.orientation for t in many.data} == {"h"}
    assert list(many.data[0].y) == list(_split(54)["block"])
    assert many.layout.yaxis.autorange == "reversed" and many.layout.yaxis.dtick == 1
    assert many.layout.height >= style.ROW_HEIGHT * 54  # a row per block, nothing squeezed
    few = instruments.path_split_figure(_split(9))
    assert {t.orientation for t in few.data} == {None}
    for fig in (many, few):
        _assert_readable(fig)


def _layers(count: int) -> pd.DataFrame:
    return pd.DataFrame({"module": [f"layer1.{i}.conv1" for i in range(count)], "stage": ["layer1"] * count,
                         "kind": ["Conv2d"] * count, "input_shape": ["16x32x32"] * count,
                         "output_shape": ["16x32x32"] * count, "params": [2304] * count, "macs": [2_359_296] * count})


def test_architecture_layer_chart_turns_horizontal_beyond_twenty_layers():
    wide = architecture.layer_figure(_layers(54))
    assert {t.orientation for t in wide.data} == {"h"} and len(wide.data[0].y) == 54
    assert wide.layout.yaxis.autorange == "reversed"
    assert "%{x:,}" in wide.data[0].hovertemplate  # 2,359,296 MACs, not 2359296
    narrow = architecture.layer_figure(_layers(12))
    assert {t.orientation for t in narrow.data} == {None}
    _assert_readable(wide)
    _assert_readable(narrow)


def test_every_architecture_scatter_writes_only_the_chosen_name():
    models = pd.DataFrame({"name": [f"resnet{d}" for d in (18, 34, 50, 101, 152)],
                           "label": [f"ResNet-{d}" for d in (18, 34, 50, 101, 152)], "family": ["ResNet"] * 5,
                           "params": [11_689_512, 21_797_672, 25_557_032, 44_549_160, 60_192_808],
                           "macs": [1.8e9, 3.6e9, 4.1e9, 7.8e9, 11.5e9]})
    fig = architecture.model_list_figure(models, highlight="resnet50")
    written = [(t.name, list(t.text)) for t in fig.data if t.text is not None and "text" in (t.mode or "")]
    assert written == [("chosen", ["ResNet-50"])]
    assert fig.layout.xaxis.dtick == 1 and fig.layout.yaxis.dtick == 1  # decades only, no 2s and 5s between
    # Families take categorical colours, none of them the plain net's red.
    assert not {t.marker.color for t in fig.data} & set(style.PLAIN_SHADES)
    assert not set(style.CATEGORICAL) & set(style.PLAIN_SHADES) and style.PLAIN not in style.STAGE_CYCLE
    assert all(t.hovertext is not None or t.name == "chosen" for t in fig.data)
    _assert_readable(fig)


def test_log_axes_carry_few_ticks():
    n = 40
    grads = pd.DataFrame({"net": ["Plain-110"] * n, "residual": [False] * n, "block_index": range(n),
                          "block": [f"b{i}" for i in range(n)], "grad_norm": [10.0 ** (20 - i) for i in range(n)]})
    axis = instruments.gradient_norm_figure(grads).layout.yaxis
    decades = 39
    assert axis.type == "log" and (decades + 1) / axis.dtick <= style.MAX_LOG_TICKS
    assert axis.exponentformat == "power"
    sweep = pd.DataFrame({"depth": [20, 110, 20, 110], "residual": [True, True, False, False],
                          "ratio": [3.0, 9.0, 20.0, 8.3e12], "label": ["a", "b", "c", "d"]})
    fig = instruments.depth_sweep_figure(sweep)
    assert (13 + 1) / fig.layout.yaxis.dtick <= style.MAX_LOG_TICKS
    plain = next(t for t in fig.data if t.name.startswith("plain"))
    assert list(plain.text) == ["20", "8.30e+12"]


def test_numbers_have_thousands_separators_and_points_are_pp():
    assert style.fmt_count(214546) == "214,546"
    assert style.fmt_value(8327069.5) == "8,327,070" and style.fmt_value(0.01234) == "0.0123"
    assert style.fmt_value(1234.4) == "1,234" and style.fmt_value(999.94) == "1,000"
    assert style.fmt_points(0.497) == "+49.7 pp" and style.fmt_points(-0.031) == "-3.1 pp"
    maps = FeatureMaps(layer="layer3.17.tap_out", maps=torch.zeros(1, 2, 4, 4), channels=[5, 9],
                       channel_means=[8327069.5, 0.5], shape=(1, 64, 8, 8), rule="test")
    titles = [a.text for a in instruments.feature_map_figure(maps).layout.annotations]
    assert titles == ["ch 5<br>mean 8,327,070", "ch 9<br>mean 0.5"]


def test_twin_bars_write_counts_with_separators():
    twin = pd.DataFrame({"label": ["ResNet-20", "Plain-20"], "residual": [True, False], "params": [269_722] * 2,
                         "macs": [40_550_400] * 2, "depth": [20, 20]})
    fig = architecture.twin_figure(twin)
    assert list(fig.data[0].text) == ["269,722", "269,722"] and list(fig.data[1].text) == ["40,550,400"] * 2
    _assert_readable(fig)
