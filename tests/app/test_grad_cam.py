"""The Grad-CAM page through the real app (AppTest): upload, top-5, the map, layers, weights, every failure."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

import resnet_core
from resnet_core import cam
from resnet_core.data import SHAPES_CLASSES
from resnet_core.images import Preprocessing, decode_image, preprocess
from resnet_core.settings import uploads_dir
from resnet_core.weights.checkpoints import FORMAT
from tests.conftest import APP_SCRIPT

PAGE = "../pages/grad_cam.py"


@pytest.fixture
def page():
    # A link pins the seeded random init these tests recompute (the page's own default is the best trained
    # model on disk: tests/app/test_demo_defaults.py).
    return _fresh({"weights": "random"})


def _figures(app) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]


def _array(value) -> np.ndarray:
    """Plotly 7 sends numeric arrays as {"dtype", "bdata" (base64), "shape"}; plain lists otherwise."""
    if isinstance(value, dict) and "bdata" in value:
        array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        if shape:
            array = array.reshape([int(s) for s in str(shape).split(",")])
        return array
    return np.asarray(value, dtype=float)


def _heatmaps(figure: dict) -> list[np.ndarray]:
    return [_array(trace["z"]) for trace in figure["data"] if trace["type"] == "heatmap"]


def _png(size=(48, 40)) -> bytes:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _upload(app: AppTest, name: str, data: bytes, mime: str = "image/png") -> AppTest:
    app.session_state["gc_source"] = "upload"
    app.run()
    app.file_uploader(key="gc_upload").set_value((name, data, mime)).run()
    assert not app.exception, app.exception
    return app


def test_upload_shows_top5_and_the_map_of_the_top_class(page):
    data = _png()
    _upload(page, "noise.png", data)
    table = page.dataframe[0].value
    assert table["rank"].tolist() == [1, 2, 3, 4, 5]
    probabilities = table["probability"].to_numpy()
    assert np.all(np.diff(probabilities) <= 0) and 0 < probabilities.sum() <= 1.0 + 1e-6

    # The same computation through the library: the shared model is build("resnet20", seed=0), CIFAR input.
    model = resnet_core.build("resnet20", seed=0, shortcut="A", residual=True, preact=False).eval()
    x = preprocess(decode_image(data), Preprocessing.CIFAR)
    expected_table = cam.predict(model, x, k=5)
    assert table["class"].tolist()[0] == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                          "ship", "truck"][expected_table["index"][0]]
    assert np.allclose(probabilities, expected_table["probability"], atol=1e-5)
    expected = cam.explain(model, x, int(expected_table["index"][0]))

    figures = _figures(page)
    topk = figures[0]
    assert _array(topk["data"][0]["x"]).tolist() == pytest.approx(probabilities.tolist(), abs=1e-6)
    (heat,) = _heatmaps(figures[1])
    assert heat.shape == (32, 32)
    assert np.abs(heat - expected.heatmap).max() < 1e-3 and heat.max() == pytest.approx(1.0)
    assert figures[1]["data"][1]["opacity"] == 0.5
    assert "at layer3.2" in figures[1]["layout"]["title"]["text"]
    labels = [b.label for b in page.get("download_button")]
    # The map's three files (the page's "Download as notebook" button comes after them).
    assert labels[:3] == ["Map (PNG, 16-bit)", "Raw map (.npy)", "Overlay (PNG)"]


def test_class_layer_method_and_opacity_follow_the_widgets(page):
    page.selectbox(key="gc_other").set_value(7).run()  # "horse"
    page.selectbox(key="gc_layer").set_value("layer2.1.tap_branch").run()
    page.slider(key="gc_opacity").set_value(0.8).run()
    assert not page.exception, page.exception
    figure = _figures(page)[1]
    assert figure["layout"]["title"]["text"] == "Grad-CAM for 'horse' at layer2.1.tap_branch"
    assert figure["data"][1]["opacity"] == 0.8
    page.selectbox(key="gc_method").set_value("integrated_gradients").run()
    assert page.selectbox(key="gc_layer").disabled
    assert _figures(page)[1]["layout"]["title"]["text"] == "Integrated gradients (input) for 'horse'"


def test_side_by_side_layers(page):
    page.toggle(key="gc_compare").set_value(True).run()
    assert not page.exception, page.exception
    figure = _figures(page)[-1]
    maps = _heatmaps(figure)
    assert len(maps) == 3 and all(m.shape == (32, 32) for m in maps)
    titles = [a["text"] for a in figure["layout"]["annotations"]]
    assert titles[0].startswith("layer1.2 (32x32 map)") and titles[2].startswith("layer3.2 (8x8 map)")


@pytest.mark.parametrize("data, phrase", [
    (b"this is not an image", "not an image"),
    (_png()[:300], "truncated or damaged"),
])
def test_broken_upload_is_one_sentence(page, data, phrase):
    _upload(page, "broken.png", data)
    errors = [e.value for e in page.error]
    assert len(errors) == 1 and phrase in errors[0] and "\n" not in errors[0]
    assert page.sidebar.selectbox(key="sb_arch").value == "resnet20"  # nothing else was lost


def _fresh(query: dict[str, str]) -> AppTest:
    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=120)
    at.query_params.update(query)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def test_offline_torchvision_weights_explain_where_the_file_goes(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("RESNET_EXPLORER_OFFLINE", "1")
    at = _fresh({"arch": "resnet18", "weights": "tv:IMAGENET1K_V1"})
    assert at.sidebar.selectbox(key="_sbw_select").value == "tv:IMAGENET1K_V1"
    errors = [e.value for e in at.error]
    assert len(errors) == 1
    assert "resnet18-f37072fd.pth" in errors[0] and "$TORCH_HOME/hub/checkpoints" in errors[0]
    assert str(tmp_path) not in errors[0]  # visitors read it: the server's own path stays out


def _shapes_checkpoint(tmp_path: Path) -> Path:
    model = resnet_core.build("resnet20", seed=3, width=4)
    # Inside the uploads folder: links may open checkpoints only from the runs and uploads folders.
    path = uploads_dir() / f"{tmp_path.name}-shapes-net.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    prep = Preprocessing.shapes(32)
    torch.save({"format": FORMAT, "arch": "resnet20", "options": {"width": 4, "num_classes": 10},
                "state_dict": model.state_dict(), "classes": list(SHAPES_CLASSES),
                "preprocessing": prep.to_dict(), "dataset": "shapes", "metrics": {}}, path)
    return path


def test_checkpoint_from_the_url_overrides_the_sidebar_and_runs_the_check(tmp_path):
    path = _shapes_checkpoint(tmp_path)
    at = _fresh({"arch": "resnet56", "weights": f"ckpt:{path}"})
    assert at.sidebar.selectbox(key="sb_arch").value == "resnet20"  # the checkpoint's architecture wins
    assert at.sidebar.segmented_control(key="sb_width").value == "quarter"
    infos = [i.value for i in at.sidebar.info]
    assert any("Architecture from the checkpoint: **ResNet-20**" in text for text in infos)
    assert set(at.dataframe[0].value["class"]) <= set(SHAPES_CLASSES)
    # A Shapes checkpoint can be checked directly (no training): pointing game + cascade shown with numbers.
    assert at.toggle(key="gc_check_own").value is True
    at.button(key="gc_check").click().run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Pointing game (measured here)"].endswith("%")
    # The difference of two rates is in percentage points, written as such (not "+49.7%").
    (pointing,) = [m for m in at.metric if m.label == "Pointing game (measured here)"]
    hit, chance = (float(metrics[label].rstrip("%")) for label in ("Pointing game (measured here)",
                                                                  "Chance (random point)"))
    assert pointing.delta.endswith(" pp vs chance") and pointing.delta[0] in "+-"
    assert float(pointing.delta.split(" ")[0]) == pytest.approx(hit - chance, abs=0.11)  # each shown rounded
    cascade = _figures(at)[-1]
    steps = [trace for trace in cascade["data"] if trace.get("name") == "mean Spearman rank correlation"][0]["x"]
    assert steps == ["trained", "fc", "layer3", "layer2", "layer1", "stem"]
    captions = at.image[0].captions  # six example overlays, each captioned with its class and hit/miss
    assert len(captions) == 6 and all(c.split(": ")[0] in SHAPES_CLASSES for c in captions)
    assert all(c.endswith(("hit", "miss")) for c in captions)


def test_uploaded_bad_checkpoint_is_refused_with_the_key_list(page, tmp_path):
    state = dict(resnet_core.build("resnet20", width=4).state_dict())
    state["layer1.0.conv1.weight"] = torch.zeros(3, 3, 3, 3)
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "arch": "resnet20", "options": {"width": 4}, "state_dict": state}, buffer)
    page.sidebar.file_uploader(key="sb_weights_upload").set_value(("wrong.pt", buffer.getvalue(),
                                                                   "application/octet-stream")).run()
    assert not page.exception, page.exception
    errors = [e.value for e in page.sidebar.error]
    assert len(errors) == 1 and "1 wrong-shape" in errors[0]
    table = page.sidebar.dataframe[0].value
    assert table["key"].tolist() == ["layer1.0.conv1.weight"] and table["problem"].tolist() == ["wrong shape"]
    assert page.sidebar.selectbox(key="_sbw_select").value == "random"  # the previous weights stay


def test_inspect_a_trained_racer_from_the_training_page(app, tmp_path, monkeypatch):
    """Training page -> "Inspect this model" (weights_picker.use_checkpoint) -> the sidebar holds the checkpoint."""
    from resnet_core.cli import train_main

    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path / "runs"))
    assert train_main(["--racer", "resnet20", "--steps", "3", "--width", "4", "--image-size", "16", "--batch-size", "8",
                 "--n-train", "32", "--eval-every", "3", "--no-progress"]) == 0
    app.switch_page("../pages/training.py").run()
    app.selectbox(key="tr_past_pick").set_value(app.selectbox(key="tr_past_pick").options[1]).run()
    app.button(key="past_inspect").click().run()
    assert not app.exception, app.exception
    weights = app.sidebar.selectbox(key="_sbw_select").value
    # Named relative to the runs folder: the link and the notebook carry no server path.
    assert weights.startswith("ckpt:") and not weights.startswith("ckpt:/") and weights.endswith("/resnet-20.pt")
    assert app.sidebar.segmented_control(key="sb_width").value == "quarter"  # width 4 of ResNet-20's 16
    assert any("Architecture from the checkpoint: **ResNet-20**" in i.value for i in app.sidebar.info)
    # The run's checkpoint is also offered in the Weights box, named by its race.
    options = app.sidebar.selectbox(key="_sbw_select").options
    assert any(option.startswith("ResNet-20 from the race of ") and option.endswith(", finished at step 3")
               for option in options)
    app.switch_page(PAGE).run()
    assert not app.exception, app.exception
    assert set(app.dataframe[0].value["class"]) <= set(SHAPES_CLASSES)
    assert app.query_params["weights"] in (weights, [weights])
    # Flipping to the plain twin: the checkpoint cannot fill it, the sidebar says so and random weights are used.
    app.sidebar.toggle(key="sb_plain").set_value(True).run()
    assert any("showing random weights" in w.value for w in app.sidebar.warning)
    assert "random init" in app.caption[0].value


@pytest.mark.parametrize("value, phrase", [
    ("imagenet", "is not 'random', 'tv:<torchvision weights>', 'demo:resnet20', 'demo:plain20' or "
                 "'ckpt:<checkpoint>'"),
    ("ckpt:/no/such/file.pt", "is not a checkpoint in the runs or uploads folders"),  # tests/app/test_urls.py
])
def test_hand_edited_weights_link_falls_back_with_a_sentence(value, phrase):
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=120)
    at.query_params.update({"weights": value})
    at.run()  # the link is read on the session's first run, like the sidebar's other URL values
    warnings = [w.value for w in at.main.children[0].warning]  # at the top of the main area, naming the fallback
    assert any(phrase in w and w.endswith("ResNet-20 with random init (seed 0) weights is shown instead.")
               for w in warnings), warnings
    assert at.sidebar.selectbox(key="_sbw_select").value == "random"
    at.switch_page(PAGE).run()
    assert not at.exception and not at.error and len(at.dataframe[0].value) == 5


def test_the_shapes_demo_opens_on_a_shapes_image_it_classifies(tmp_path, monkeypatch):
    """No ImageNet weights cached, offline: the page's default is the embedded Shapes ResNet-20, and with it a
    held-out Shapes image (not a photo it cannot know), whose true class is the top-1 and the explained class."""
    from resnet_core.data import shapes_split
    from resnet_core.settings import OFFLINE_ENV

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv(OFFLINE_ENV, "1")
    app = _fresh({})
    assert app.sidebar.selectbox(key="_sbw_select").value == "demo:resnet20"
    assert app.button_group(key="gc_source").value == "shapes" and app.number_input(key="gc_shape").value == 0
    truth = SHAPES_CLASSES[int(shapes_split("test", 64, image_size=32).labels[0])]
    assert any(c.value == f"This image shows a {truth}." for c in app.caption)
    table = app.dataframe[0].value
    assert table["class"].iloc[0] == truth and table["probability"].iloc[0] > 0.5
    assert app.radio(key="gc_class").value == SHAPES_CLASSES.index(truth)
    assert _figures(app)[1]["layout"]["title"]["text"] == f"Grad-CAM for '{truth}' at layer3.2"
    assert app.query_params["gc_source"] in ("shapes", ["shapes"])
    # Random weights know CIFAR-10's names, not the Shapes: an unpicked source follows them to a photo.
    app.sidebar.selectbox(key="_sbw_select").set_value("random").run()
    assert not app.exception, app.exception
    assert app.button_group(key="gc_source").value == "photo"


def test_the_check_of_a_photo_model_explains_the_demo_and_shows_its_recorded_numbers(page):
    """With a model that is not a Shapes model the check runs on the embedded demo ResNet-20: the page shows the
    numbers ``demo_models/checks.json`` records (the README's), on the sample it names, as the lesson's step 8."""
    from resnet_core.lesson import gradcam_shapes
    from resnet_core.weights.demo import demo_checks, load_demo_model

    at = page
    assert at.toggle(key="gc_check_own").value is False and at.toggle(key="gc_check_own").disabled
    at.button(key="gc_check").click().run()
    assert not at.exception, at.exception
    recorded = demo_checks()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Pointing game (measured here)"] == f"{recorded['hit_rate']:.1%}"
    assert metrics["Chance (random point)"] == f"{recorded['chance']:.1%}"
    assert metrics[f"Accuracy on these {recorded['images']} images"] == f"{recorded['accuracy']:.1%}"
    captions = [c.value for c in at.caption]
    assert any(c.startswith(f"ResNet-20 trained on Shapes (embedded demo), on the first {recorded['images']} "
                            "held-out Shapes images (the cascade: the first "
                            f"{recorded['cascade_images']}), Grad-CAM at {recorded['layer']}") for c in captions)
    # The numbers belong to the model checked: another sidebar model hides them until the check runs again.
    at.sidebar.selectbox(key="sb_arch").set_value("resnet32").run()
    assert not any(m.label == "Pointing game (measured here)" for m in at.metric)
    # The lesson's step 8 measures the same model on the same sample: the same hit rate.
    _, pointing, _ = gradcam_shapes(load_demo_model("resnet20"))
    assert pointing["measure"][0].startswith("pointing-game hit rate")
    assert pointing["value"][0] == pytest.approx(recorded["hit_rate"], abs=1 / recorded["images"])
    assert pointing["value"][4] == recorded["images"]


def test_a_photo_on_the_shapes_demo_is_called_out_above_the_map_with_the_fix():
    """The model's card says Shapes; a photo gets one sentence at the top of the page's image section and the one
    click that fixes it, which switches to a Shapes image and leaves every other setting as it was."""
    at = _fresh({"arch": "resnet20", "weights": "demo:resnet20", "gc_source": "photo", "gc_opacity": "0.7"})
    warnings = [w.value for w in at.main.warning]
    assert any(w.startswith("This model was trained on the Shapes set (ten synthetic shapes), so on a photo it can "
                            "only answer with a shape") for w in warnings), warnings
    fix = at.button(key="gc_source_fix")
    assert fix.proto.label == "Use a Shapes image"
    fix.click().run()
    assert not at.exception, at.exception
    assert at.segmented_control(key="gc_source").value == "shapes"
    assert not any(w.value.startswith("This model was trained on") for w in at.main.warning)
    assert not [b for b in at.button if b.key == "gc_source_fix"]
    assert at.slider(key="gc_opacity").value == 0.7
    # Random weights learned nothing: no claim about what suits them.
    random = _fresh({"arch": "resnet20", "weights": "random", "gc_source": "photo"})
    assert not any(w.value.startswith("This model was trained on") for w in random.main.warning)
