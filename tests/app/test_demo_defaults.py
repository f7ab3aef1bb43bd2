"""The sidebar's default weights through the real app (AppTest): until the user or a link chooses, each page
starts with the best weights it can have, offline (resnet_core.weights.best_model / best_weights)."""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from resnet_core.data import SHAPES_CLASSES
from resnet_core.settings import OFFLINE_ENV
from resnet_core.weights import demo
from tests.conftest import APP_SCRIPT

GRAD_CAM, ARCHITECTURE = "../pages/grad_cam.py", "../pages/architecture.py"


@pytest.fixture
def no_imagenet(tmp_path, monkeypatch):
    """No ImageNet weights cached (torch.hub's cache, under $TORCH_HOME, is an empty folder) and no network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv(OFFLINE_ENV, "1")


def _app(query: dict[str, str] | None = None) -> AppTest:
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=120)
    at.query_params.update(query or {})
    at.run()
    assert not at.exception, at.exception
    return at


def _open(at: AppTest, page: str) -> AppTest:
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def _weights(at: AppTest) -> str:
    return at.sidebar.selectbox(key="_sbw_select").value


def _random_banner(at: AppTest) -> bool:
    return any("randomly initialised" in info.value for info in at.main.info)


def test_grad_cam_opens_with_the_embedded_demo_when_no_imagenet_weights_are_cached(no_imagenet):
    at = _app()
    assert _weights(at) == "random"  # Architecture shows shapes and counts: random init is right there
    _open(at, GRAD_CAM)
    assert _weights(at) == "demo:resnet20" and at.sidebar.selectbox(key="sb_arch").value == "resnet20"
    assert any("ResNet-20 trained on Shapes (embedded demo)" in c.value for c in at.main.caption)
    assert not _random_banner(at)
    assert set(at.main.dataframe[0].value["class"]) <= set(SHAPES_CLASSES)  # the demo's classes, top 5
    accuracy = f"{demo.demo_test_accuracy('resnet20'):.1%}"
    assert any(accuracy in c.value and "resnet-weights fetch resnet18" in c.value for c in at.sidebar.caption)
    assert at.query_params["weights"] in ("demo:resnet20", ["demo:resnet20"])  # a shared link keeps it


def test_defaults_follow_the_page_and_the_net_until_weights_are_chosen(no_imagenet):
    at = _open(_app(), GRAD_CAM)
    at.sidebar.toggle(key="sb_plain").set_value(True).run()  # the net is now chosen; its best weights follow
    assert _weights(at) == "demo:plain20" and not at.sidebar.warning
    assert any("Plain-20 trained on Shapes (embedded demo)" in c.value for c in at.main.caption)
    _open(at, ARCHITECTURE)
    assert _weights(at) == "random" and at.sidebar.toggle(key="sb_plain").value  # the chosen net stays
    _open(at, GRAD_CAM)
    assert _weights(at) == "demo:plain20"
    at.sidebar.selectbox(key="_sbw_select").set_value("random").run()  # chosen: no default replaces it
    _open(at, ARCHITECTURE)
    _open(at, GRAD_CAM)
    assert _weights(at) == "random" and _random_banner(at)


def test_a_links_weights_are_kept(no_imagenet):
    at = _open(_app({"weights": "random"}), GRAD_CAM)
    assert _weights(at) == "random" and _random_banner(at)
    at = _open(_app({"arch": "resnet20", "plain": "1", "weights": "demo:plain20"}), ARCHITECTURE)
    assert _weights(at) == "demo:plain20"  # a link's trained weights stay on every page


def test_a_net_set_by_a_button_is_kept(no_imagenet):
    """A page's button may set the sidebar's net (the budget's "Use ResNet-110"): no default undoes it."""
    at = _app()
    at.session_state["sb_arch"] = "resnet56"  # as a button's callback does, without touching the widget
    _open(at, GRAD_CAM)
    assert at.sidebar.selectbox(key="sb_arch").value == "resnet56"
    assert _weights(at) == "random" and _random_banner(at)  # no trained ResNet-56 on disk
    at.sidebar.selectbox(key="sb_arch").set_value("resnet20").run()
    assert _weights(at) == "demo:resnet20" and not _random_banner(at)
