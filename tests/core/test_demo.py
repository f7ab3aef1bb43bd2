"""The embedded demo models: shipped in the package, loaded offline by the ordinary checkpoint code, as accurate
as their recorded metrics say; their weights ids; and the choice of the best weights a page can have."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch

from resnet_core.data import SHAPES_CLASSES, shapes_split
from resnet_core.errors import WeightsError
from resnet_core.settings import OFFLINE_ENV
from resnet_core.weights import (
    BestModel,
    best_model,
    best_weights,
    class_names_for,
    demo,
    hub_checkpoint_path,
    load_model,
    parse_weights_id,
    preprocessing_for,
    weights_choices,
    weights_label,
)
from resnet_core.weights.checkpoints import FORMAT, OUTSIDE_FOLDERS, read_checkpoint, resolve_checkpoint_path
from tests.conftest import checkout_copy

REPO = Path(__file__).resolve().parents[2]
PACKAGE_FILES = ["resnet20.pt", "plain20.pt", "metrics.json", "history.csv", "checks.json"]


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """torch.hub's cache in an empty folder (torch.hub.get_dir() follows $TORCH_HOME): no ImageNet weights."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def _accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of ``model`` on [0, 1] images, normalised as its checkpoint's preprocessing says."""
    prep = preprocessing_for(model)
    mean = torch.tensor(prep.mean).view(1, 3, 1, 1)
    std = torch.tensor(prep.std).view(1, 3, 1, 1)
    correct = 0
    with torch.no_grad():
        for start in range(0, len(labels), 500):
            logits = model((images[start:start + 500] - mean) / std)
            correct += int((logits.argmax(1) == labels[start:start + 500]).sum())
    return correct / len(labels)


@pytest.mark.parametrize("key", ["resnet20", "plain20"])
def test_embedded_model_loads_offline_and_reaches_its_recorded_accuracy(key, monkeypatch):
    monkeypatch.setenv(OFFLINE_ENV, "1")
    model = load_model("resnet56", {"width": 4}, f"demo:{key}")  # the demo's own architecture wins
    card = model.card
    expected = demo.DEMO_MODELS[key]
    assert (card.arch, card.arch_options.get("residual"), card.label) == ("resnet20", expected.residual,
                                                                         expected.label)
    assert card.weights_id == f"demo:{key}" and card.weights_label.endswith("trained on Shapes (embedded demo)")
    assert class_names_for(model) == list(SHAPES_CLASSES)
    assert preprocessing_for(model).crop == 32 and not model.training
    recorded = demo.demo_metrics()["models"][key]
    assert card.checkpoint_meta["metrics"]["test_acc"] == pytest.approx(recorded["test_acc"], abs=1e-6)

    test = shapes_split("test", recorded["test_images"], 32)  # the held-out images the trainer evaluated on
    accuracy = _accuracy(model, test.images, test.labels)
    assert accuracy == pytest.approx(recorded["test_acc"], abs=0.005)
    assert accuracy > 0.6  # ten classes: chance is 0.1; both nets of the pair learned the set


def test_demo_files_are_ordinary_checkpoints_that_a_ckpt_id_cannot_reach():
    folder = Path(demo.__file__).parent / "demo_models"
    for key, model in demo.DEMO_MODELS.items():
        ckpt = read_checkpoint(folder / model.file)  # the same reader as any checkpoint file
        assert (ckpt.arch, ckpt.options["residual"], ckpt.classes) == ("resnet20", model.residual,
                                                                        list(SHAPES_CLASSES))
        assert demo.read_demo_checkpoint(key).state_dict.keys() == ckpt.state_dict.keys()
        assert torch.load(folder / model.file, weights_only=True)["format"] == FORMAT
        with pytest.raises(WeightsError, match=OUTSIDE_FOLDERS):  # ckpt: stays confined to runs and uploads
            resolve_checkpoint_path(str(folder / model.file))
    sizes = [(folder / name).stat().st_size for name in PACKAGE_FILES]
    assert sum(sizes) < 4 * 2**20  # a few MB in all


def test_metrics_record_the_recipe_and_the_curves():
    metrics = demo.demo_metrics()
    recipe = metrics["recipe"]
    assert (recipe["dataset"], recipe["image_size"], recipe["seed"], recipe["device"]) == ("shapes", 32, 0, "cpu")
    assert [(r["arch"], r["residual"]) for r in recipe["racers"]] == [("resnet20", False), ("resnet20", True)]
    assert metrics["train_seconds"] > 0 and metrics["threads"] >= 1
    history = demo.demo_history()
    assert {row["racer"] for row in history} == {"Plain-20", "ResNet-20"}
    assert max(row["step"] for row in history) == recipe["steps"]
    for key, model in metrics["models"].items():
        assert model["steps"] == recipe["steps"] and model["status"] == "finished"
        last = [row for row in history if row["racer"] == model["label"]][-20:]
        assert sum(row["loss"] for row in last) / len(last) == pytest.approx(model["final_loss"], abs=1e-3)
        assert demo.demo_test_accuracy(key) == model["test_acc"]


def test_weights_ids_labels_and_choices():
    assert parse_weights_id("demo:resnet20") == ("demo", "resnet20")
    assert weights_label("demo:plain20") == "Plain-20 trained on Shapes (embedded demo)"
    with pytest.raises(WeightsError, match="'demo:resnet56' is not an embedded demo model; choose one of "
                                           "demo:resnet20, demo:plain20"):
        parse_weights_id("demo:resnet56")
    assert weights_choices("resnet20") == ["random", "demo:resnet20", "demo:plain20"]
    assert weights_choices("resnet20", {"residual": False}) == ["random", "demo:plain20"]
    assert weights_choices("resnet20", {"residual": True, "width": 8}) == ["random"]  # trained at full width
    assert weights_choices("resnet56") == ["random"]
    assert weights_choices("resnet18") == ["random", "tv:IMAGENET1K_V1"]


def test_a_demo_fits_only_its_own_net():
    assert demo.demo_fit("resnet20", "resnet20", {"residual": True}) is None
    assert demo.demo_fit("plain20", "resnet20", {"residual": False}) is None
    assert demo.demo_fit("resnet20", "resnet20", {"residual": False}) == (
        "The embedded demo holds ResNet-20, not Plain-20; showing random weights for this net.")
    assert "not ResNet-56" in demo.demo_fit("plain20", "resnet56", {})
    assert demo.demo_config("plain20") == {"arch": "resnet20", "options": {"residual": False, "num_classes": 10},
                                           "label": "Plain-20", "notes": []}


def test_best_weights_without_imagenet_weights_on_disk(empty_hub, monkeypatch):
    monkeypatch.setenv(OFFLINE_ENV, "1")
    assert best_weights("resnet20", {"residual": True}) == "demo:resnet20"
    assert best_weights("resnet20", {"residual": False}) == "demo:plain20"
    assert best_weights("resnet20", {"residual": True}, purpose="init") == "random"
    assert best_weights("resnet56", {}) == "random"
    assert best_weights("resnet18", {}) == "random"
    best = best_model("explain")
    assert (best.arch, best.weights) == ("resnet20", "demo:resnet20")
    assert "resnet-weights fetch resnet18" in best.note
    assert best_model("init") == BestModel("resnet20", {"residual": True}, "random")
    with pytest.raises(ValueError, match="purpose must be one of explain, init"):
        best_weights("resnet20", {}, purpose="teach")


def test_best_weights_take_cached_imagenet_weights(empty_hub):
    path = hub_checkpoint_path("resnet18", "IMAGENET1K_V1")
    assert path.parent == empty_hub
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")  # only its presence is looked at: choosing a default reads no file and no network
    assert best_weights("resnet18", {"residual": True, "shortcut": "B"}) == "tv:IMAGENET1K_V1"
    assert best_weights("resnet18", {"residual": False}) == "random"  # torchvision has no plain twin
    assert best_weights("resnet18", {"width": 32}) == "random"
    assert best_model("explain") == BestModel("resnet18", {"residual": True}, "tv:IMAGENET1K_V1")
    assert best_weights("resnet20", {}) == "demo:resnet20"


def test_default_image_follows_the_classes(empty_hub):
    assert demo.default_image_for(load_model("resnet20", {}, "demo:resnet20")) == "shapes"
    assert demo.default_image_for(load_model("resnet20", {})) == "photo"  # random init: CIFAR-10 names


@pytest.mark.slow
def test_wheel_and_sdist_carry_the_demo_models(tmp_path):
    """Built from a copy of the checkout (the checkout is not touched) with setuptools' own backend."""
    source = checkout_copy(tmp_path / "src")
    out = tmp_path / "dist"
    for build in ("build_wheel", "build_sdist"):  # one process each: setuptools keeps state between the two
        script = f"import sys; from setuptools import build_meta; build_meta.{build}(sys.argv[1])"
        done = subprocess.run([sys.executable, "-c", script, str(out)], cwd=source, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    (wheel,), (sdist,) = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {f"resnet_core/weights/demo_models/{name}" for name in PACKAGE_FILES} <= names
    with tarfile.open(sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {f"resnet_core/weights/demo_models/{name}" for name in PACKAGE_FILES} <= members


def test_fit_decides_for_demo_ids_too():
    from resnet_core.weights import effective_weights, weights_fit

    assert weights_fit("demo:plain20", "resnet20", {"residual": False}) is None
    assert effective_weights("demo:plain20", "resnet20", {"residual": True}) == "random"
    assert weights_fit("demo:resnet20", "resnet32", {}) == (
        "The embedded demo holds ResNet-20, not ResNet-32; showing random weights for this net.")


def _pct(value: float) -> str:
    return f"{value:.1%}"  # the one rounding every view uses


def test_the_readmes_figures_are_the_recorded_files():
    """The README quotes the demo models' accuracies (metrics.json) and the localisation check (checks.json) as
    the files hold them, with the same rounding as the pages; a figure typed in by hand and not in a file fails."""
    text = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    metrics, checks = demo.demo_metrics(), demo.demo_checks()
    resnet, plain = metrics["models"]["resnet20"], metrics["models"]["plain20"]
    assert (f"**{_pct(resnet['test_acc'])}** and **{_pct(plain['test_acc'])}** held-out accuracy on "
            f"{resnet['test_images']:,} Shapes test images") in text
    assert (f"**{_pct(checks['hit_rate'])}** of the {checks['images']} images, against a chance of "
            f"{_pct(checks['chance'])} for a random point") in text
    assert (f"accuracy on these {checks['images']} images {_pct(checks['accuracy'])} "
            f"({_pct(resnet['test_acc'])} on all {resnet['test_images']:,} test images") in text
    cascade = checks["cascade"]
    assert (f"over the first {checks['cascade_images']} of the images: {cascade['trained']:.2f} trained, "
            f"{cascade['fc']:.2f} after fc, **{cascade['layer3']:.2f}** once fc and layer3 are randomised, "
            f"{cascade['layer2']:.2f} after layer2, {cascade['layer1']:.2f} after layer1, {cascade['stem']:.2f} "
            "after the stem") in text
