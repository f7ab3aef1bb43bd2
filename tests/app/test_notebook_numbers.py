"""For each page (Architecture, Activations, Gradient flow, Grad-CAM): open it from a link with non-default
settings, take the settings the page wrote back into its URL (what the "Download as notebook" button passes to
``for_page``), execute that notebook on a fresh kernel, and find its key numbers on the page, formatted as the
page formats them."""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from resnet_core.links import APP_WIDE_LINKS
from resnet_core.notebooks import for_page
from resnet_core.plots.style import fmt_value
from tests.conftest import APP_SCRIPT
from tests.notebook_kernel import execute

pytestmark = pytest.mark.slow


def _open(page: str, query: dict[str, str]) -> AppTest:
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=180)
    for name, value in query.items():
        at.query_params[name] = value
    at.run()
    assert not at.exception, at.exception
    assert not [w.value for w in at.main.warning], "the link's settings were refused"
    at.switch_page(f"../pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def _settings(at: AppTest) -> dict[str, str]:
    """The page's URL after its run: the sidebar's names and the page's own, as the button merges them (the
    app-wide teacher-mode names, such as reveal, belong to no notebook)."""
    return {name: (value[0] if isinstance(value, list) else value) for name, value in at.query_params.items()
            if name not in APP_WIDE_LINKS}


def _text(at: AppTest) -> str:
    return "\n".join(e.value for kind in ("markdown", "caption", "subheader") for e in getattr(at, kind))


def test_architecture_notebook_reproduces_the_page():
    at = _open("architecture", {"arch": "resnet50", "shortcut": "C", "stride": "1x1", "width": "half"})
    settings = _settings(at)
    assert {k: settings[k] for k in ("arch", "shortcut", "stride", "width")} == {
        "arch": "resnet50", "shortcut": "C", "stride": "1x1", "width": "half"}
    numbers = execute(for_page("architecture", settings), small=True)  # SMALL skips only the list of every net
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Weighted layers"] == str(numbers["depth"]) == "50"
    assert metrics["Parameters"] == f"{numbers['params']:,}"
    assert metrics["Multiply-accumulates at 224x224"] == f"{numbers['macs'] / 1e9:.3f} G"
    assert metrics["Residual blocks"] == str(numbers["blocks"])
    assert [int(p) for p in at.dataframe[0].value["params"]] == numbers["stage_params"]
    text = _text(at)
    assert f"{numbers['shortcuts'].get('projection', 0)} projections" in text  # option C: every block projects
    assert numbers["shortcuts"] == {"projection": numbers["blocks"]}
    assert f"**{numbers['conv_weights']['Bottleneck']:,}**" in text


def test_activations_notebook_reproduces_the_page():
    at = _open("activations", {"weights": "random", "plain": "1", "act_source": "shapes", "act_shape": "5",
                               "act_batch": "4", "act_bn": "running", "act_layer": "layer2.1.tap_sum"})
    settings = _settings(at)
    assert settings["act_shape"] == "5" and settings["act_layer"] == "layer2.1.tap_sum" and settings["plain"] == "1"
    numbers = execute(for_page("activations", settings), small=False)
    assert numbers["layer"] == "layer2.1.tap_sum" and numbers["batch"] == 4
    text = _text(at)
    assert f"Feature maps at {numbers['layer_label']}  ({numbers['shape']})" in text
    trends = {"grows": "grows", "shrinks": "shrinks", "stays": "stays about the same"}
    assert [row["net"] for row in numbers["spread"]] == ["Plain-20", "ResNet-20"]
    for row in numbers["spread"]:
        assert (f"{row['net']}: the std {trends[row['trend']]}, {fmt_value(row['first_std'])} after the first block "
                f"and {fmt_value(row['last_std'])} after the last") in text


def test_gradient_flow_notebook_reproduces_the_page():
    at = _open("gradient_flow", {"weights": "random", "arch": "resnet32", "gf_batch": "8", "gf_bn": "running",
                                 "reveal": "1"})
    settings = _settings(at)
    assert settings["arch"] == "resnet32" and settings["gf_batch"] == "8" and settings["gf_bn"] == "running"
    numbers = execute(for_page("gradient-flow", settings), small=False)  # the page's full depth sweep
    text = _text(at)
    assert numbers["nets"] == ["ResNet-32", "Plain-32"]
    growth = "; ".join(f"{net}: first/last = {fmt_value(r)}" for net, r in zip(numbers["nets"], numbers["first_last"],
                                                                                strict=True))
    assert f"Measured here: {growth}." in text
    split = numbers["split"]
    assert (f"the shortcut carries {split['shortcut_share']:.0%} and the branch {split['branch_share']:.0%} on "
            f"average over {int(split['blocks'])} blocks (largest deviation of shortcut + branch from the total: "
            f"{split['max_sum_error']:.1e})") in text
    deep = numbers["sweep"]
    assert (f"Measured here at depth {int(deep['depth'])}: plain {fmt_value(deep['plain'])}, residual "
            f"{fmt_value(deep['residual'])}, {fmt_value(deep['factor'])} times apart.") in text


def test_grad_cam_notebook_reproduces_the_page():
    at = _open("grad_cam", {"weights": "demo:resnet20", "gc_source": "shapes", "gc_shape": "7",
                            "gc_method": "gradcampp", "gc_layer": "layer2.2", "gc_cmap": "Viridis"})
    settings = _settings(at)
    assert {k: settings[k] for k in ("weights", "gc_shape", "gc_method", "gc_layer")} == {
        "weights": "demo:resnet20", "gc_shape": "7", "gc_method": "gradcampp", "gc_layer": "layer2.2"}
    # SMALL shrinks only what the page computes behind its buttons (the comparison, the checks).
    numbers = execute(for_page("grad-cam", settings), small=True)
    top5 = at.dataframe[0].value
    assert list(top5["class"]) == numbers["top5"]
    assert [round(p, 6) for p in top5["probability"]] == [round(p, 6) for p in numbers["probabilities"]]
    assert numbers["layer"] == "layer2.2"
    assert f"Score of '{numbers['class_name']}': logit {numbers['score']:.3f}." in _text(at)
