"""Every page against its declared settings (resnet_core.page_specs), in AppTest on the real app.

- each widget a page draws with a page-setting key is declared, with the declared kind, choices and bounds;
- every declared setting travels through a link and back (its parser is generated from the declaration);
- a choice widget (image source, model, method, preset) set to another value and back leaves every other
  setting as it was, with the default model and with random weights;
- a visit to another page and back keeps a page's settings.
"""

from __future__ import annotations

from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from resnet_core.links import PARAMS, read_link, url_text
from resnet_core.page_specs import (
    GRAD_CAM,
    PAGE_SPECS,
    SIDEBAR,
    TRAINING,
    PageSpec,
    Setting,
    all_specs,
    link_settings,
)
from tests.conftest import APP_SCRIPT

PAGE_FILES = {"architecture": "architecture.py", "why-residuals": "lesson.py", "activations": "activations.py",
              "gradient-flow": "gradient_flow.py", "training": "training.py", "grad-cam": "grad_cam.py"}
# The AppTest element type of each declared widget kind (a segmented control is a button group).
ELEMENT_TYPES = {"selectbox": "selectbox", "multiselect": "multiselect", "segmented_control": "button_group",
                 "radio": "radio", "toggle": "toggle", "slider": "slider", "select_slider": "select_slider",
                 "number_input": "number_input", "file_uploader": "file_uploader"}
INPUT_TYPES = ("selectbox", "multiselect", "button_group", "radio", "toggle", "slider", "select_slider",
               "number_input", "checkbox", "text_input")
# Keys with a page's prefix that are no setting: which run to reopen is a navigation, not a view to share.
NOT_SETTINGS = {"tr_past_pick"}
# Declared settings whose widget a first view does not draw: it depends on another choice (the image source, a
# custom race, a bottleneck net), is an upload box, or is drawn under another key (the weights box).
CONDITIONAL = {"act_photo", "act_shape", "act_upload", "gc_sample", "gc_shape", "gc_upload", "tr_racers", "sb_stride",
               "sb_weights"}


def _page(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"../pages/{PAGE_FILES[page]}").run()
    assert not at.exception, at.exception
    return at


def _session(query: dict[str, str] | None = None, *, fresh: bool = False) -> AppTest:
    if fresh:
        st.cache_resource.clear()
        st.cache_data.clear()
    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=120)
    for name, value in (query or {}).items():
        at.query_params[name] = value
    at.run()
    assert not at.exception, at.exception
    return at


def _values(at: AppTest, specs: tuple[PageSpec, ...]) -> dict[str, Any]:
    """Every declared setting's value this session holds."""
    keys = [key for spec in specs for key in spec.state_keys()]
    return {key: at.session_state[key] for key in keys if key in at.session_state}


def _held(before: dict[str, Any], at: AppTest, specs: tuple[PageSpec, ...]) -> dict[str, Any]:
    """What the session holds now for each setting it held before (a widget drawn for the first time since
    adds its default, which changes nothing that was set)."""
    now = _values(at, specs)
    return {key: now.get(key, "<dropped>") for key in before}


def _drawn(at: AppTest) -> dict[str, tuple[str, Any]]:
    """Widget key -> (element type, widget) for every input widget on the page and in the sidebar."""
    drawn = {}
    for kind in (*INPUT_TYPES, "file_uploader"):
        try:
            widgets = at.get(kind)
        except (KeyError, AttributeError):
            continue
        for widget in widgets:
            if getattr(widget, "key", None):
                drawn[widget.key] = (kind, widget)
    return drawn


# ------------------------------------------------------------------------------- the declaration itself
def test_every_setting_is_declared_once_with_one_link_name():
    keys = [key for spec in all_specs() for key in spec.state_keys()]
    assert len(keys) == len(set(keys))
    links = [s.link for s in link_settings()]
    assert len(links) == len(set(links)) and set(links) == set(PARAMS)
    for spec in all_specs():
        for setting in spec:
            if setting.kind in ("choice", "choices"):
                assert setting.choices and setting.what, setting.name
            if setting.kind == "choice":
                assert setting.default in setting.choices, setting.name
            if setting.kind in ("whole", "decimal"):
                assert setting.low <= setting.high, setting.name
                assert setting.default is None or setting.low <= setting.default <= setting.high, setting.name


def _samples(setting: Setting) -> list[Any]:
    """Values the setting's widget can hold, to send through a link: every choice, or both bounds and a middle."""
    if setting.kind == "choice":
        return list(setting.choices)
    if setting.kind == "choices":
        return [[], list(setting.choices[:1]), list(setting.choices[: setting.most or len(setting.choices)])]
    if setting.kind == "flag":
        return [False, True]
    if setting.kind == "whole":
        return [int(setting.low), int(setting.high), int(setting.low + setting.high) // 2]
    if setting.kind == "decimal":
        middle = setting.low + 10 * setting.step if setting.step else (setting.low + setting.high) / 2
        return [setting.low, setting.high, round(middle, 6)]
    if setting.kind == "arch":
        return list(setting.choices) or ["resnet18", "resnet110", "resnext50_32x4d"]
    if setting.kind == "layer":
        return ["stem", "layer2.0.tap_out", "layer4.1"]
    if setting.kind == "weights":
        return ["random", "demo:resnet20"]
    if setting.kind == "trained_weights":
        return ["demo:plain20"]
    if setting.kind == "setting_names":
        return [[], ["gc_method"], ["arch", "weights", "gc_method", "lesson_blocks"]]
    if setting.kind == "token":
        return ["abcd", "Ab3-_x9", "x" * 40]
    raise AssertionError(f"no samples for {setting.kind}")


@pytest.mark.parametrize("setting", link_settings(), ids=lambda s: s.link)
def test_every_linked_setting_round_trips_through_its_link_text(setting: Setting):
    for value in _samples(setting):
        link = read_link({setting.link: [url_text(value)]})
        assert not link.notices, (setting.link, value, link.notices)
        assert link.values[setting.link] == value


def _bad_text(setting: Setting) -> str:
    if setting.kind in ("whole", "decimal"):
        return str(int(setting.high) + 1)
    return "nonsense value"


@pytest.mark.parametrize("setting", [s for s in link_settings() if s.kind not in ("flag",)], ids=lambda s: s.link)
def test_a_value_outside_the_declaration_is_refused_with_the_setting_named(setting: Setting):
    link = read_link({setting.link: [_bad_text(setting)]})
    assert setting.link not in link.values
    (notice,) = link.notices
    assert f"'{setting.link}'" in notice.sentence and notice.raw == _bad_text(setting)


# ------------------------------------------------------------------------------ the pages against it
@pytest.mark.parametrize("page", [p for p in PAGE_SPECS if p != "why-residuals"])
def test_each_drawn_widget_is_the_declared_one(page: str):
    """Every input widget with a page's key is declared, as the widget kind it is, offering as many options as
    declared, within declared bounds; every declared setting a first view shows is drawn. (The lesson's page takes
    about 20 s to draw here; its widgets are read by tests/app/test_url_settings.py's lesson tests.)"""
    at = _page(_session(), page)
    _check_drawn(at, PAGE_SPECS[page])


def _check_drawn(at: AppTest, spec: PageSpec) -> None:
    declared = {key: setting for s in (SIDEBAR, spec) for setting in s
                for key in ([setting.state_key()] if setting.per is None
                            else [setting.state_key(owner) for owner in s[setting.per].choices])}
    prefixes = tuple({s.name.split("_")[0] + "_" for s in spec} | {"sb_"})
    drawn = _drawn(at)
    for key, (kind, widget) in drawn.items():
        if key in NOT_SETTINGS or key.startswith("_") or key == "sb_weights_upload":
            continue
        if key.startswith(prefixes):
            assert key in declared, f"{key} is drawn on {spec.page} but declared nowhere"
        if key not in declared:
            continue
        setting = declared[key]
        assert kind == ELEMENT_TYPES[setting.widget], (key, kind, setting.widget)
        options = getattr(widget, "options", None)
        if setting.kind in ("choice", "choices") and options is not None:
            assert len(options) == len(setting.choices), (key, options)
        if setting.kind in ("whole", "decimal") and kind in ("slider", "number_input"):
            assert (widget.min, widget.max) == (setting.low, setting.high), key
    drawn_settings = {declared[key].name for key in drawn if key in declared}
    # A first view draws every declared setting but those shown only for another choice.
    expected = {s.name for s in (*SIDEBAR, *spec) if s.name not in CONDITIONAL}
    assert expected <= drawn_settings <= expected | CONDITIONAL, (spec.page, expected - drawn_settings)


# ----------------------------------------------------------------------- choices switched and back
def _grad_cam_settings_changed(at: AppTest) -> None:
    at.selectbox(key="gc_method").set_value("gradcampp").run()
    at.slider(key="gc_opacity").set_value(0.8).run()
    at.selectbox(key="gc_cmap").set_value("Viridis").run()
    at.multiselect(key="gc_methods").set_value(["gradcam", "eigencam"]).run()
    at.toggle(key="gc_road").set_value(True).run()
    assert not at.exception, at.exception


@pytest.mark.slow
@pytest.mark.parametrize("weights", ["default", "random"])
def test_grad_cam_image_source_model_and_method_switched_and_back_keep_every_other_setting(weights: str):
    at = _page(_session({} if weights == "default" else {"weights": "random"}, fresh=True), "grad-cam")
    _grad_cam_settings_changed(at)
    before = _values(at, (SIDEBAR, GRAD_CAM))
    source = at.button_group(key="gc_source").value
    for other in [s for s in GRAD_CAM["gc_source"].choices if s != source]:
        at.button_group(key="gc_source").set_value(other).run()  # Upload: the page stops until a file comes
        assert not at.exception, at.exception
        at.button_group(key="gc_source").set_value(source).run()
        assert not at.exception, at.exception
        assert _held(before, at, (SIDEBAR, GRAD_CAM)) == before, f"{source} -> {other} -> {source}"
    assert at.button(key="gc_compare_methods").disabled is False  # methods still chosen
    method = at.selectbox(key="gc_method").value
    at.selectbox(key="gc_method").set_value("eigencam").run()
    at.selectbox(key="gc_method").set_value(method).run()
    assert _held(before, at, (SIDEBAR, GRAD_CAM)) == before
    arch = at.sidebar.selectbox(key="sb_arch").value
    at.sidebar.selectbox(key="sb_arch").set_value("resnet32").run()
    at.sidebar.selectbox(key="sb_arch").set_value(arch).run()
    assert not at.exception, at.exception
    after = _values(at, (SIDEBAR, GRAD_CAM))
    # The model's own choices follow the model (its weights, shortcut); the page's settings are untouched.
    page_keys = [k for k in GRAD_CAM.state_keys() if k in before]
    assert {k: after.get(k) for k in page_keys} == {k: before[k] for k in page_keys}


@pytest.mark.slow
def test_activations_source_and_model_switched_and_back_keep_every_other_setting():
    at = _page(_session({"weights": "random"}), "activations")
    at.select_slider(key="act_batch").set_value(2).run()
    at.button_group(key="act_bn").set_value("running").run()
    at.selectbox(key="act_photo").set_value("astronaut").run()
    before = _values(at, (SIDEBAR, PAGE_SPECS["activations"]))
    for other in ("upload", "shapes"):
        at.button_group(key="act_source").set_value(other).run()
        at.button_group(key="act_source").set_value("photo").run()
        assert not at.exception, at.exception
        assert _held(before, at, (SIDEBAR, PAGE_SPECS["activations"])) == before, other
    assert at.selectbox(key="act_photo").value == "astronaut" and at.select_slider(key="act_batch").value == 2


@pytest.mark.slow
def test_race_preset_switched_and_back_keeps_the_presets_settings():
    at = _page(_session(), "training")
    preset = at.selectbox(key="tr_preset").value
    steps_key = TRAINING["tr_steps"].state_key(preset)
    at.number_input(key=steps_key).set_value(120).run()
    at.number_input(key=TRAINING["tr_width"].state_key(preset)).set_value(8).run()
    before = _values(at, (TRAINING,))
    other = next(p for p in TRAINING["tr_preset"].choices if p != preset)
    at.selectbox(key="tr_preset").set_value(other).run()
    assert not at.exception, at.exception
    at.selectbox(key="tr_preset").set_value(preset).run()
    assert not at.exception, at.exception
    after = _values(at, (TRAINING,))
    assert {k: v for k, v in after.items() if k in before} == before
    assert at.number_input(key=steps_key).value == 120


@pytest.mark.slow
def test_a_visit_to_another_page_and_back_keeps_the_pages_settings():
    at = _page(_session(), "grad-cam")
    _grad_cam_settings_changed(at)
    before = _values(at, (SIDEBAR, GRAD_CAM))
    _page(at, "training")
    _page(at, "architecture")
    _page(at, "grad-cam")
    assert _held(before, at, (SIDEBAR, GRAD_CAM)) == before
    assert at.selectbox(key="gc_method").value == "gradcampp" and at.slider(key="gc_opacity").value == 0.8
    assert at.multiselect(key="gc_methods").value == ["gradcam", "eigencam"]


@pytest.mark.slow
@pytest.mark.parametrize("weights", ["default", "random"])
@pytest.mark.parametrize("page", [p for p in PAGE_SPECS if p not in ("why-residuals", "grad-cam")])
def test_the_model_switched_and_back_keeps_every_page_setting(page: str, weights: str):
    """The sidebar's architecture to another net and back (Grad-CAM's is in its own test above)."""
    at = _page(_session({} if weights == "default" else {"weights": "random"}), page)
    spec = PAGE_SPECS[page]
    at.sidebar.toggle(key="sb_preact").set_value(True).run()  # a sidebar setting changed, to be kept too
    before = _values(at, (spec, SIDEBAR))
    arch = at.sidebar.selectbox(key="sb_arch").value
    at.sidebar.selectbox(key="sb_arch").set_value("resnet32" if arch != "resnet32" else "resnet20").run()
    assert not at.exception, at.exception
    at.sidebar.selectbox(key="sb_arch").set_value(arch).run()
    assert not at.exception, at.exception
    assert _held(before, at, (spec, SIDEBAR)) == before and before["sb_preact"] is True
    assert at.sidebar.selectbox(key="sb_arch").value == arch
