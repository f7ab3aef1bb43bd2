"""Every setting of the Activations and Gradient-flow pages travels in the URL: set the widgets, open a new session
from the URL they wrote, and the widgets come back with the same values. A hand-edited value the page cannot take
is refused with one sentence (ours; the link's text only verbatim) and the default is shown.

The Architecture page has no settings of its own: its view is the sidebar's, which tests/app/test_shell.py
round-trips."""

from __future__ import annotations

import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.conftest import APP_MAIN

ACTIVATIONS = "../pages/activations.py"
GRADIENT_FLOW = "../pages/gradient_flow.py"


def _open(page: str, query: dict[str, str] | None = None, *, fresh: bool = True) -> AppTest:
    """A new session from a link: its first run validates the link (the sidebar shows the notices, kept in
    ``at.link_notices``), then the page. ``fresh=False`` keeps the server's caches (a second session of the same
    server, as when a shared link is opened), which also keeps the suite quick."""
    if fresh:
        st.cache_resource.clear()
        st.cache_data.clear()
    at = AppTest.from_file(str(APP_MAIN), default_timeout=120)
    for name, value in (query or {}).items():
        at.query_params[name] = value
    at.run()
    assert not at.exception, at.exception
    at.link_notices = [w.value for w in at.sidebar.warning]
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def _url(at: AppTest) -> dict[str, str]:
    return {name: (value[0] if isinstance(value, list) else value) for name, value in at.query_params.items()}


def _activations_widgets(at: AppTest) -> dict[str, object]:
    values = {"act_source": at.button_group(key="act_source").value, "act_batch": at.select_slider(key="act_batch").value,
              "act_bn": at.button_group(key="act_bn").value, "act_layer": at.select_slider(key="act_layer").value}
    if values["act_source"] == "shapes":
        values["act_shape"] = at.number_input(key="act_shape").value
    if values["act_source"] == "photo":
        values["act_photo"] = at.selectbox(key="act_photo").value
    return values


# Random weights chosen by the link: the defaults asserted below are those of a random initialisation.
RANDOM = {"weights": "random"}


def test_activations_settings_round_trip_through_the_url():
    at = _open(ACTIVATIONS, RANDOM)
    # Random weights: batch statistics by default, a batch of 8 led by the chosen image.
    assert at.button_group(key="act_bn").value == "batch" and at.select_slider(key="act_batch").value == 8
    assert any("batch's own mean and variance" in c.value for c in at.caption)
    at.button_group(key="act_source").set_value("shapes").run()
    at.number_input(key="act_shape").set_value(5).run()
    at.select_slider(key="act_batch").set_value(4).run()
    at.button_group(key="act_bn").set_value("running").run()
    at.select_slider(key="act_layer").set_value("layer2.1.tap_sum").run()
    assert not at.exception, at.exception
    shown = _activations_widgets(at)
    assert shown == {"act_source": "shapes", "act_shape": 5, "act_batch": 4, "act_bn": "running",
                     "act_layer": "layer2.1.tap_sum"}
    url = _url(at)
    assert {k: url[k] for k in ("act_source", "act_shape", "act_batch", "act_bn", "act_layer")} == {
        "act_source": "shapes", "act_shape": "5", "act_batch": "4", "act_bn": "running",
        "act_layer": "layer2.1.tap_sum"}
    assert "act_photo" not in url  # a setting that does not apply to the view is not in the link

    again = _open(ACTIVATIONS, url, fresh=False)
    assert _activations_widgets(again) == shown
    assert any(s.value.startswith("Feature maps at layer2.1 sum") for s in again.subheader)
    captions = [caption for element in again.get("image") for caption in element.captions]
    assert any(c.startswith("Shapes image 5 (a ") and "first of a batch of 4" in c for c in captions)


def test_a_photo_choice_round_trips_too():
    at = _open(ACTIVATIONS, RANDOM)
    at.selectbox(key="act_photo").set_value("astronaut").run()
    url = _url(at)
    assert url["act_source"] == "photo" and url["act_photo"] == "astronaut" and "act_shape" not in url
    again = _open(ACTIVATIONS, url, fresh=False)
    assert again.selectbox(key="act_photo").value == "astronaut"


def test_batch_of_one_with_batch_statistics_says_why_in_one_sentence():
    at = _open(ACTIVATIONS, {**RANDOM, "act_batch": "1", "act_bn": "batch"})
    assert [e.value for e in at.error] == [
        "Batch statistics need a batch of at least two images: with one image, batch norm would normalise each "
        "channel by that image's own mean and variance, which means nothing. Use a batch of two or more, or running "
        "statistics."]
    at.button_group(key="act_bn").set_value("running").run()
    assert not at.exception and not at.error
    assert at.select_slider(key="act_layer").value == "layer1.0.tap_out"


def test_hand_edited_page_settings_are_refused_with_a_sentence():
    at = _open(ACTIVATIONS, {**RANDOM, "act_batch": "3", "act_bn": "eval", "act_layer": "layer9.9.tap_out",
                             "act_shape": "-2"})
    warnings = at.link_notices
    assert "The link's 'act_batch' is not a batch size the page offers (1, 2, 4, 8, 16); it was ignored." in warnings
    assert "The link's 'act_bn' is not a batch-norm mode (batch, running); it was ignored." in warnings
    assert any(w.startswith("The link's 'act_shape' is not a Shapes image") for w in warnings)
    # A well-formed layer name the net does not have: the page says so and shows its default layer.
    assert any(w.value == "The link's layer is not a layer of ResNet-20; the page's default layer is shown."
               for w in at.warning)
    assert at.select_slider(key="act_layer").value == "layer1.0.tap_out"
    assert at.select_slider(key="act_batch").value == 8 and at.button_group(key="act_bn").value == "batch"
    url = _url(at)
    assert url["act_batch"] == "8" and url["act_bn"] == "batch" and url["act_layer"] == "layer1.0.tap_out"


def test_gradient_flow_settings_round_trip_through_the_url():
    at = _open(GRADIENT_FLOW, RANDOM)
    assert at.button_group(key="gf_bn").value == "batch"  # random weights at initialisation
    at.select_slider(key="gf_batch").set_value(8).run()
    at.button_group(key="gf_bn").set_value("running").run()
    assert not at.exception, at.exception
    assert any(c.value.startswith("Measured on 8 Shapes images") and "running statistics" in c.value
               for c in at.caption)
    url = _url(at)
    assert (url["gf_state"], url["gf_batch"], url["gf_bn"]) == ("init", "8", "running")
    again = _open(GRADIENT_FLOW, url, fresh=False)
    assert again.select_slider(key="gf_batch").value == 8 and again.button_group(key="gf_bn").value == "running"
    assert again.button_group(key="gf_state").value == "init"
