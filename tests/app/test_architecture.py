"""The Architecture page through AppTest: the numbers shown are the library's, for the net picked."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest


def _by_order(at: AppTest) -> list[dict]:
    return [json.loads(e.proto.spec) for e in at.get("plotly_chart")]


def _texts(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_stage_table_and_counts_for_resnet20(app: AppTest) -> None:
    table = app.dataframe[0].value
    assert list(table["layer name"]) == ["conv1", "conv2_x", "conv3_x", "conv4_x", "fc"]
    assert list(table["output size"]) == ["16x32x32", "16x32x32", "32x16x16", "64x8x8", "10"]
    assert table["params"].sum() == 269_722
    assert table.loc[1, "recipe"] == "[3x3, 16; 3x3, 16] x 3"
    metrics = {m.label: m.value for m in app.metric}
    assert metrics == {"Weighted layers": "20", "Parameters": "269,722",
                       "Multiply-accumulates at 32x32": "0.041 G", "Residual blocks": "9"}


def test_charts_carry_the_tables(app: AppTest) -> None:
    stage, layer, diagram, twin, comparison, models = _by_order(app)
    assert stage["data"][0]["x"] == ["conv1", "conv2_x", "conv3_x", "conv4_x", "fc"]
    assert sum(stage["data"][0]["y"]) == 269_722 and sum(stage["data"][1]["y"]) == 40_551_040
    # Per layer: every layer with weights appears once in the params panel, grouped by stage.
    # ResNet-20 has 39 such layers (convolutions, batch norms, fc), more than a projector shows as upright labels:
    # horizontal bars, one row each.
    assert {trace.get("orientation") for trace in layer["data"]} == {"h"}
    layer_params = [v for trace in layer["data"] if trace["xaxis"] == "x" for v in trace["x"]]
    assert sum(layer_params) == 269_722
    assert len([n for trace in layer["data"] if trace["xaxis"] == "x" for n in trace["y"]]) == 39
    # ResNet-20, option A: 7 identity shortcuts (solid) and 2 zero-padded ones (dotted), one arc per block.
    by_name = {trace["name"]: trace for trace in diagram["data"]}
    assert by_name["identity shortcut (solid)"]["customdata"] == [
        "layer1.0", "layer1.1", "layer1.2", "layer2.1", "layer2.2", "layer3.1", "layer3.2"]
    assert by_name["zero-padded identity, option A (dotted)"]["customdata"] == ["layer2.0", "layer3.0"]
    arcs = [s for s in diagram["layout"]["shapes"] if s["type"] == "path"]
    assert sorted(a["line"]["dash"] for a in arcs) == ["dot"] * 2 + ["solid"] * 7
    # Residual vs plain twin: same params and MACs with option A, same depth.
    assert twin["data"][0]["x"] == ["ResNet-20", "Plain-20"]
    assert twin["data"][0]["y"] == [269_722, 269_722] and twin["data"][2]["y"] == [20, 20]
    assert comparison["data"][0]["y"] == [1_179_648, 69_632]
    names = [n for trace in models["data"] for n in trace["customdata"]]
    assert "resnet1202" in names and "wide_resnet101_2" in names
    assert models["data"][-1]["name"] == "chosen" and models["data"][-1]["customdata"] == ["resnet20"]


def test_block_comparison_sentence(app: AppTest) -> None:
    text = _texts(app)
    assert "**1,179,648** convolution weights" in text and "**69,632**" in text and "16.9x fewer" in text


def test_resnet50_projections_are_dashed(app: AppTest) -> None:
    app.sidebar.selectbox(key="sb_arch").set_value("resnet50").run()
    assert not app.exception
    assert app.title[0].value == "Architecture of ResNet-50"
    table = app.dataframe[0].value
    assert list(table["blocks"]) == [0, 3, 4, 6, 3, 0]
    assert table["params"].sum() == 25_557_032
    diagram = _by_order(app)[2]
    by_name = {trace["name"]: trace for trace in diagram["data"]}
    assert by_name["projection shortcut, 1x1 conv (dashed)"]["customdata"] == [
        "layer1.0", "layer2.0", "layer3.0", "layer4.0"]
    assert len(by_name["identity shortcut (solid)"]["customdata"]) == 12
    twin = _by_order(app)[3]
    assert twin["data"][0]["x"] == ["ResNet-50", "Plain-50"]
    assert twin["data"][0]["y"] == [25_557_032, 25_557_032 - 2_776_576]  # the 4 projections' weights
    assert "4 projections" in _texts(app)


def test_plain_twin_has_no_shortcuts_drawn(app: AppTest) -> None:
    app.sidebar.toggle(key="sb_plain").set_value(True).run()
    assert app.title[0].value == "Architecture of Plain-20"
    diagram = _by_order(app)[2]
    assert [trace["name"] for trace in diagram["data"]] == ["no shortcut (plain block)"]
    assert not [s for s in diagram["layout"]["shapes"] if s["type"] == "path"]
    assert "none of its 9 blocks has a shortcut" in _texts(app)
    twin = _by_order(app)[3]
    assert twin["data"][0]["x"] == ["Plain-20", "ResNet-20"]


def test_shortcut_option_c_projects_everywhere(app: AppTest) -> None:
    app.sidebar.radio(key="sb_shortcut").set_value("C").run()
    diagram = _by_order(app)[2]
    assert [trace["name"] for trace in diagram["data"]] == ["projection shortcut, 1x1 conv (dashed)"]
    assert {m.label: m.value for m in app.metric}["Parameters"] != "269,722"
