"""Every setting of the Activations and Gradient-flow pages travels in the URL: set the widgets, open a new session
from the URL they wrote, and the widgets come back with the same values. A hand-edited value the page cannot take
is refused with one sentence (ours; the link's text only verbatim) and the default is shown.

The Architecture page has no settings of its own: its view is the sidebar's, which tests/app/test_shell.py
round-trips."""

from __future__ import annotations

import io
import json

import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from resnet_core import cam
from resnet_core.train import PRESETS
from tests.conftest import APP_SCRIPT

ACTIVATIONS = "../pages/activations.py"
GRADIENT_FLOW = "../pages/gradient_flow.py"


def _open(page: str, query: dict[str, str] | None = None) -> AppTest:
    """A new session from a link, on the server's shared caches (as when a shared link is opened): its first run
    validates the link (the notices are kept in ``at.link_notices``), then the page."""
    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=120)
    for name, value in (query or {}).items():
        at.query_params[name] = value
    at.run()
    assert not at.exception, at.exception
    at.link_notices = [w.value for w in at.main.children[0].warning]  # the notices' area, first in the main area
    assert not at.sidebar.warning
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

    again = _open(ACTIVATIONS, url)
    assert _activations_widgets(again) == shown
    assert any(s.value.startswith("Feature maps at layer2.1 sum") for s in again.subheader)
    captions = [caption for element in again.get("image") for caption in element.captions]
    assert any(c.startswith("Shapes image 5 (a ") and "first of a batch of 4" in c for c in captions)


def test_a_photo_choice_round_trips_too():
    at = _open(ACTIVATIONS, RANDOM)
    at.selectbox(key="act_photo").set_value("astronaut").run()
    url = _url(at)
    assert url["act_source"] == "photo" and url["act_photo"] == "astronaut" and "act_shape" not in url
    again = _open(ACTIVATIONS, url)
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
    # Each names what is shown instead: a declared default, or the page's own (it depends on the model).
    assert warnings == [
        "The link's 'act_shape' is not a Shapes image (a whole number from 0 to 23); 0 is used instead.",
        "The link's 'act_batch' is not a batch size the page offers (1, 2, 4, 8, 16); the page's default is used "
        "instead.",
        "The link's 'act_bn' is not a batch-norm mode (batch, running); the page's default is used instead."]
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
    again = _open(GRADIENT_FLOW, url)
    assert again.select_slider(key="gf_batch").value == 8 and again.button_group(key="gf_bn").value == "running"
    assert again.button_group(key="gf_state").value == "init"


# ------------------------------------------------------------------------------------------------ Grad-CAM
GRAD_CAM = "../pages/grad_cam.py"


def _grad_cam_widgets(at: AppTest) -> dict[str, object]:
    values = {"gc_source": at.button_group(key="gc_source").value, "gc_class": at.radio(key="gc_class").value,
              "gc_other": at.selectbox(key="gc_other").value, "gc_method": at.selectbox(key="gc_method").value,
              "gc_layer": at.selectbox(key="gc_layer").value, "gc_opacity": at.slider(key="gc_opacity").value,
              "gc_cmap": at.selectbox(key="gc_cmap").value, "gc_methods": at.multiselect(key="gc_methods").value,
              "gc_road": at.toggle(key="gc_road").value, "gc_compare": at.toggle(key="gc_compare").value,
              "gc_trust_methods": at.multiselect(key="gc_trust_methods").value,
              "gc_trust_samples": at.slider(key="gc_trust_samples").value,
              "gc_check_own": at.toggle(key="gc_check_own").value}
    if not isinstance(values["gc_other"], str):  # a pinned class is explained: the top-5 choice is idle
        del values["gc_class"]
    if values["gc_source"] == "photo":
        values["gc_sample"] = at.selectbox(key="gc_sample").value
    if values["gc_source"] == "shapes":
        values["gc_shape"] = at.number_input(key="gc_shape").value
    return values


def _map_title(at: AppTest) -> str:
    (figure,) = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.key == "gc_map"] or [
        json.loads(at.get("plotly_chart")[1].proto.spec)]
    return figure["layout"]["title"]["text"]


def test_grad_cam_settings_round_trip_through_the_url():
    at = _open(GRAD_CAM, RANDOM)
    assert at.button_group(key="gc_source").value == "photo"  # random init knows CIFAR-10's classes: a photo
    at.selectbox(key="gc_sample").set_value("astronaut").run()
    at.selectbox(key="gc_other").set_value(7).run()  # pinned: "horse", whatever the image's top 5
    at.selectbox(key="gc_method").set_value("gradcampp").run()
    at.selectbox(key="gc_layer").set_value("layer2.1.tap_branch").run()
    at.slider(key="gc_opacity").set_value(0.8).run()
    at.selectbox(key="gc_cmap").set_value("Viridis").run()
    at.multiselect(key="gc_methods").set_value(["gradcam", "eigencam"]).run()
    at.toggle(key="gc_road").set_value(True).run()
    at.toggle(key="gc_compare").set_value(True).run()
    at.multiselect(key="gc_trust_methods").set_value(["lrp", "fem"]).run()
    at.slider(key="gc_trust_samples").set_value(4).run()
    assert not at.exception, at.exception
    shown = _grad_cam_widgets(at)
    assert _map_title(at) == "Grad-CAM++ for 'horse' at layer2.1.tap_branch"
    url = _url(at)
    assert {k: v for k, v in url.items() if k.startswith("gc_")} == {
        "gc_source": "photo", "gc_sample": "astronaut", "gc_other": "7", "gc_method": "gradcampp",
        "gc_layer": "layer2.1.tap_branch", "gc_opacity": "0.8", "gc_cmap": "Viridis", "gc_methods": "gradcam,eigencam",
        "gc_road": "1", "gc_trust_methods": "lrp,fem", "gc_trust_samples": "4", "gc_compare": "1",
        "gc_check_own": "0"}  # no gc_class: the pinned class wins

    again = _open(GRAD_CAM, url)
    assert _grad_cam_widgets(again) == shown
    assert _map_title(again) == "Grad-CAM++ for 'horse' at layer2.1.tap_branch"
    assert not again.link_notices and not again.main.warning


def test_a_grad_cam_top5_class_and_shapes_image_round_trip():
    at = _open(GRAD_CAM, RANDOM)
    at.button_group(key="gc_source").set_value("shapes").run()
    at.number_input(key="gc_shape").set_value(5).run()
    second = at.radio(key="gc_class").options[1]  # the image's second class
    at.radio(key="gc_class").set_value(int(second.rsplit("(", 1)[1].rstrip(")"))).run()
    assert not at.exception, at.exception
    shown = _grad_cam_widgets(at)
    url = _url(at)
    assert (url["gc_source"], url["gc_shape"], url["gc_class"]) == ("shapes", "5", str(shown["gc_class"]))
    assert "gc_sample" not in url and "gc_other" not in url
    again = _open(GRAD_CAM, url)
    assert _grad_cam_widgets(again) == shown and _map_title(again) == _map_title(at)


def test_an_upload_is_not_written_to_the_link():
    at = _open(GRAD_CAM, RANDOM)
    at.button_group(key="gc_source").set_value("upload").run()
    image = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(image, format="PNG")
    at.file_uploader(key="gc_upload").set_value(("red.png", image.getvalue(), "image/png")).run()
    assert not at.exception, at.exception
    url = _url(at)
    assert not {"gc_source", "gc_sample", "gc_shape", "gc_class"} & set(url)
    assert url["gc_method"] == "gradcam" and url["gc_opacity"] == "0.5"  # the rest of the view still travels


def test_hand_edited_grad_cam_settings_are_refused_with_a_sentence():
    at = _open(GRAD_CAM, {**RANDOM, "gc_opacity": "2", "gc_method": "magic", "gc_methods": "gradcam,gradcam",
                          "gc_layer": "layer9.9.tap_out", "gc_other": "500", "gc_road": "yes"})
    assert at.link_notices == [
        "The link's 'gc_method' is not an explanation method (" + ", ".join(cam.METHODS) + "); gradcam is used "
        "instead.",
        "The link's 'gc_opacity' is not an opacity (a number from 0 to 1 in steps of 0.05); 0.5 is used instead.",
        "The link's 'gc_methods' is not a comma-separated list of explanation methods (" + ", ".join(cam.METHODS)
        + "; each once); " + ", ".join(cam.METHODS) + " are used instead.",
        "The link's 'gc_road' is not 0 or 1; it stays off."]
    # Well-formed values this model cannot take: the page says so in one sentence and shows its default.
    assert [w.value for w in at.main.warning] == [
        "The link's class is not one of this model's 10 classes; none is pinned.",
        "The link's layer is not a layer of ResNet-20; the last block is explained."]
    assert at.selectbox(key="gc_other").value == "(one of the top 5)"
    assert (at.selectbox(key="gc_method").value, at.selectbox(key="gc_layer").value) == ("gradcam", "layer3.2")
    assert at.slider(key="gc_opacity").value == 0.5 and at.multiselect(key="gc_methods").value == list(cam.METHODS)
    url = _url(at)
    assert (url["gc_layer"], url["gc_opacity"], url["gc_road"]) == ("layer3.2", "0.5", "0") and "gc_other" not in url


# -------------------------------------------------------------------------------------------- Training race
TRAINING = "../pages/training.py"


def _race_widgets(at: AppTest) -> dict[str, object]:
    preset = at.selectbox(key="tr_preset").value
    k = f"tr_{preset}"
    values = {"tr_preset": preset, "tr_data": at.selectbox(key=f"{k}_data").value,
              "tr_schedule": at.selectbox(key=f"{k}_schedule").value}
    for name in ("steps", "batch", "lr", "warmup", "width", "size"):
        values[f"tr_{name}"] = at.number_input(key=f"{k}_{name}").value
    if preset == "Custom race":
        values["tr_racers"] = at.multiselect(key=f"{k}_racers").value
    return values


def test_race_settings_round_trip_through_the_url():
    at = _open(TRAINING)
    at.selectbox(key="tr_preset").set_value("Plain-56 vs ResNet-56").run()
    k = "tr_Plain-56 vs ResNet-56"
    at.number_input(key=f"{k}_steps").set_value(300).run()
    at.number_input(key=f"{k}_lr").set_value(0.05).run()
    at.number_input(key=f"{k}_width").set_value(4).run()
    at.selectbox(key=f"{k}_schedule").set_value("cosine").run()
    assert not at.exception, at.exception
    shown = _race_widgets(at)
    url = _url(at)
    assert {k: v for k, v in url.items() if k.startswith("tr_")} == {
        "tr_preset": "Plain-56 vs ResNet-56", "tr_data": "shapes", "tr_steps": "300", "tr_batch": str(shown["tr_batch"]),
        "tr_lr": "0.05", "tr_warmup": str(shown["tr_warmup"]), "tr_width": "4", "tr_size": str(shown["tr_size"]),
        "tr_schedule": "cosine"}
    again = _open(TRAINING, url)
    assert _race_widgets(again) == shown and not again.link_notices

    # A custom race: its racers travel too.
    at.selectbox(key="tr_preset").set_value("Custom race").run()
    at.multiselect(key="tr_Custom race_racers").set_value(["Plain-56", "Plain-20", "ResNet-56"]).run()
    at.number_input(key="tr_Custom race_batch").set_value(32).run()
    shown = _race_widgets(at)
    url = _url(at)
    assert url["tr_racers"] == "Plain-56,Plain-20,ResNet-56" and url["tr_batch"] == "32"
    again = _open(TRAINING, url)
    assert _race_widgets(again) == shown
    assert [c.value for c in again.caption if c.value.startswith("Racers")] == []  # custom: a multiselect


def test_hand_edited_race_settings_are_refused_with_a_sentence():
    base = PRESETS["Plain-20 vs ResNet-20"]
    at = _open(TRAINING, {"tr_preset": "Plain-1000", "tr_steps": "5", "tr_lr": "1e-3", "tr_racers": "Plain-20,Plain-20",
                          "tr_schedule": "linear"})
    assert at.link_notices == [
        "The link's 'tr_preset' is not a race the page offers (" + ", ".join(PRESETS) + ", Custom race); "
        "Plain-20 vs ResNet-20 is used instead.",
        "The link's 'tr_racers' is not a comma-separated list of racers (Plain-20, ResNet-20, Plain-32, ResNet-32, "
        "Plain-44, ResNet-44, Plain-56, ResNet-56, Plain-110, ResNet-110; each once, at most 4); Plain-20, "
        "ResNet-20 are used instead.",
        f"The link's 'tr_steps' is not a number of steps (a whole number from 10 to 20,000); {base.steps} is used "
        "instead.",
        f"The link's 'tr_lr' is not a learning rate (a number from 0.0001 to 2); {base.lr:g} is used instead.",
        f"The link's 'tr_schedule' is not a schedule (step, cosine, constant); {base.schedule} is used instead."]
    shown = _race_widgets(at)
    assert (shown["tr_preset"], shown["tr_steps"], shown["tr_lr"], shown["tr_schedule"]) == (
        base.name, base.steps, base.lr, base.schedule)
    assert not at.main.warning and not at.error
    assert _url(at)["tr_steps"] == str(base.steps)


# ----------------------------------------------------------------------------------------------- the lesson
LESSON = "../pages/lesson.py"
LESSON_SETTINGS = ("lesson_zero_init", "lesson_blocks", "lesson_grid", "lesson_any_model", "lesson_any_grid",
                   "lesson_any_data")


def _lesson_widgets(at: AppTest) -> dict[str, object]:
    return {"lesson_zero_init": at.toggle(key="lesson_zero_init").value,
            "lesson_blocks": at.slider(key="lesson_blocks").value,
            "lesson_grid": at.select_slider(key="lesson_grid").value,
            "lesson_any_model": at.selectbox(key="lesson_any_model").value,
            "lesson_any_grid": at.select_slider(key="lesson_any_grid").value,
            "lesson_any_data": at.selectbox(key="lesson_any_data").value}


def test_lesson_settings_are_refused_or_round_trip_through_the_url(tmp_path, monkeypatch):
    # A runs folder of its own: the lesson then uses the embedded demo pair and lists only the demos.
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path / "runs"))
    at = _open(LESSON, {"lesson_blocks": "0", "lesson_grid": "15", "lesson_zero_init": "maybe",
                        "lesson_any_model": "ckpt:/etc/passwd", "lesson_any_data": "imagenet", "reveal": "1"})
    assert at.link_notices == [
        "The link's 'lesson_zero_init' is not 0 or 1; it stays off.",
        "The link's 'lesson_blocks' is not a number of blocks (a whole number from 1 to 200); 54 is used instead.",
        "The link's 'lesson_grid' is not a grid the lesson offers (11, 21, 31); 11 is used instead.",
        "The link's 'lesson_any_model' is not a trained model ('demo:resnet20', 'demo:plain20' or a checkpoint in "
        "the runs or uploads folders); the page's default is used instead.",
        "The link's 'lesson_any_data' is not a data set the lesson offers (recorded, shapes, cifar10, mnist, "
        "fashion_mnist); recorded is used instead."]
    defaults = _lesson_widgets(at)
    assert (defaults["lesson_zero_init"], defaults["lesson_blocks"], defaults["lesson_grid"]) == (False, 54, 11)
    assert {k: v for k, v in _url(at).items() if k.startswith("lesson_")} == {
        name: ("0" if value is False else str(value)) for name, value in defaults.items()}

    at.toggle(key="lesson_zero_init").set_value(True).run()
    at.slider(key="lesson_blocks").set_value(12).run()
    at.select_slider(key="lesson_any_grid").set_value(21).run()
    at.selectbox(key="lesson_any_data").set_value("shapes").run()
    models = at.selectbox(key="lesson_any_model").options
    assert not at.exception, at.exception
    shown = _lesson_widgets(at)
    # With every branch at zero the shortcut carries all of it: one number, not a range "from 100% to 100%".
    text = "\n".join(m.value for m in at.markdown)
    assert "is 100% in all 9 blocks" in text and "from 100% to 100%" not in text
    url = _url(at)
    assert (url["lesson_zero_init"], url["lesson_blocks"], url["lesson_any_grid"], url["lesson_any_data"]) == (
        "1", "12", "21", "shapes")
    again = _open(LESSON, url)
    assert _lesson_widgets(again) == shown and not again.link_notices and len(models) >= 2
    assert "2^12 = 4,096 paths" in "\n".join(m.value for m in again.markdown)


def test_the_lesson_hides_the_model_picker_and_keeps_the_choice_for_the_other_pages(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path / "runs"))
    at = _open(ACTIVATIONS, {"arch": "resnet32", "plain": "1", "weights": "random"})
    assert at.sidebar.selectbox(key="sb_arch").value == "resnet32" and at.sidebar.toggle(key="sb_plain").value
    at.switch_page(LESSON).run()
    assert not at.exception, at.exception
    # The lesson ignores the sidebar's model: no picker there, one line saying so.
    assert not at.sidebar.selectbox and not at.sidebar.toggle and not at.sidebar.radio
    assert [c.value for c in at.sidebar.caption][0].startswith("The lesson builds and trains its own nets")
    at.switch_page(ACTIVATIONS).run()
    assert not at.exception, at.exception
    assert at.sidebar.selectbox(key="sb_arch").value == "resnet32" and at.sidebar.toggle(key="sb_plain").value
    assert at.title[0].value == "Activations of Plain-32"


def test_a_refused_page_setting_names_the_value_the_page_ended_with():
    """Opened straight on the page (as a browser opens /activations?...): the notice, at the top, names the value
    the page chose after it ran (ResNet-20's batch of 8, batch statistics for random weights), not "its default"."""
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=120)
    for name, value in {**RANDOM, "act_batch": "3", "act_bn": "eval"}.items():
        at.query_params[name] = value
    at.switch_page(ACTIVATIONS).run()  # AppTest reaches a page directly when its URL path is its file's name
    assert not at.exception, at.exception
    assert at.title[0].value.startswith("Activations of")
    assert [w.value for w in at.main.children[0].warning] == [
        "The link's 'act_batch' is not a batch size the page offers (1, 2, 4, 8, 16); 8 is used instead.",
        "The link's 'act_bn' is not a batch-norm mode (batch, running); batch is used instead."]
    assert [c.value for c in at.main.children[0].code] == ["3", "eval"]
    assert at.select_slider(key="act_batch").value == 8 and at.button_group(key="act_bn").value == "batch"
