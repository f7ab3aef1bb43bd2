"""ModelCard: one typed record per model, and the layout rule every instrument shares."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from resnet_core.card import CARD_ATTRIBUTES, ModelCard, card_of
from resnet_core.describe import describe
from resnet_core.images import Preprocessing
from resnet_core.models import (
    ARCHITECTURES,
    ResNet,
    block_position,
    build,
    get_spec,
    iter_blocks,
    stage_last_blocks,
    stage_names,
    stage_of,
)
from resnet_core.train import stage_groups
from resnet_core.weights import class_names_for, load_model, preprocessing_for


def test_build_fills_the_card() -> None:
    model = build("resnet56", residual=False, width=4)
    assert model.card == ModelCard(arch="resnet56", arch_options={"residual": False, "width": 4}, label="Plain-56")
    # the old attribute names read the card
    assert (model.arch_name, model.arch_label, model.weights_id) == ("resnet56", "Plain-56", "random")


def test_old_attribute_names_write_the_card_and_survive_a_copy() -> None:
    model = build("resnet20", width=4)
    model.class_names = ["a"] * 10
    model.preprocessing = Preprocessing(40, 32, (0.5,) * 3, (0.25,) * 3)
    model.weights_notes = ["renamed linear -> fc"]
    assert model.card.class_names == ["a"] * 10 and model.card.notes == ["renamed linear -> fc"]
    assert class_names_for(model) == ["a"] * 10 and preprocessing_for(model).crop == 32
    twin = copy.deepcopy(model)
    twin.card.notes.append("only the copy")
    assert twin.weights_notes == ["renamed linear -> fc", "only the copy"]
    assert model.weights_notes == ["renamed linear -> fc"]
    # nothing the card carries leaks into the state_dict
    assert set(model.state_dict()) == set(build("resnet20", width=4).state_dict())


def test_every_card_field_has_its_old_attribute() -> None:
    model = build("resnet20", width=4)
    for attribute, field_name in CARD_ATTRIBUTES.items():
        assert getattr(model, attribute) is getattr(model.card, field_name)


def test_load_model_fills_the_card() -> None:
    model = load_model("resnet20", {"residual": False, "width": 4})
    assert model.card.label == "Plain-20" and model.card.weights_label == "random init (seed 0)"
    assert model.card.notes == [] and model.card.class_names is None


def test_card_of_a_foreign_module_is_empty() -> None:
    assert card_of(nn.Linear(2, 2)) == ModelCard()
    assert card_of(ResNet("basic", [1, 1], stem="cifar", width=4)).arch is None


@pytest.mark.parametrize(("name", "expected"), [
    ("layer2.3.conv1", ("layer2", 3)), ("layer2.3", ("layer2", 3)), ("layer2", ("layer2", None)),
    ("layer12.0.bn1.weight", ("layer12", 0)), ("conv1", ("stem", None)), ("bn1.weight", ("stem", None)),
    ("maxpool", ("stem", None)), ("fc.bias", ("head", None)), ("bn_final", ("head", None)),
    ("avgpool", ("head", None)), ("layerx", ("head", None)),
])
def test_block_position(name: str, expected: tuple[str, int | None]) -> None:
    assert block_position(name) == expected
    assert stage_of(name) == expected[0]


@pytest.mark.parametrize("arch", ["resnet18", "resnet50", "resnet110", "resnext50_32x4d", "wide_resnet50_2"])
def test_the_layout_comes_from_the_recorded_feature_info(arch: str) -> None:
    spec = get_spec(arch)
    with torch.device("meta"):
        model = build(arch)
    assert stage_names(model) == ["stem", *(f"layer{i + 1}" for i in range(len(spec.layers)))]
    # stage widths and the reduction per stage, from the spec, equal what the model recorded
    assert [info["channels"] for info in model.feature_info[1:]] == list(spec.stage_widths())
    assert model.feature_info[0]["channels"] == spec.base_width
    reductions = [info["reduction"] for info in model.feature_info[1:]]
    stem = 4 if spec.stem == "imagenet" else 1
    expected, r = [], stem
    for stride in spec.strides:
        r *= stride
        expected.append(r)
    assert reductions == expected
    # the last block of each stage is the stage's last child
    assert stage_last_blocks(model) == [f"layer{i + 1}.{n - 1}" for i, n in enumerate(spec.layers)]
    # describe, the trainer's groups and the block list place every name by the same rule
    table = describe(model, spec.input_size)
    for _, row in table.iterrows():
        assert row["stage"] == stage_of(row["module"])
    assert list(stage_groups(model)) == ["stem", *stage_names(model)[1:], "head"]
    assert all(stage_of(name) == name.split(".")[0] for name, _ in iter_blocks(model))


def test_base_width_matches_the_built_network() -> None:
    for name, spec in ARCHITECTURES.items():
        with torch.device("meta"):
            model = build(name)
        assert model.feature_info[0]["channels"] == spec.base_width, name
        assert [info["channels"] for info in model.feature_info[1:]] == list(spec.stage_widths()), name
        assert len(spec.stage_widths(8)) == len(spec.layers)
    assert get_spec("resnet56").base_width == 16 and get_spec("resnet50").base_width == 64


@pytest.mark.parametrize("dataset, expected", [("shapes", "shapes"), ("cifar10", "cifar10"), ("mnist", "mnist"),
                                               (None, "unknown"),
                                               ("folder:/data/pets", "unknown")])
def test_the_card_records_what_a_checkpoint_was_trained_on(dataset, expected) -> None:
    from resnet_core.weights.checkpoints import make_checkpoint, model_from_checkpoint, read_checkpoint

    net = build("resnet20", width=4, seed=0)
    raw = make_checkpoint(arch="resnet20", label="ResNet-20", options={"width": 4}, state_dict=net.state_dict(),
                          classes=[str(i) for i in range(10)],
                          preprocessing={"resize": 32, "crop": 32, "mean": [0.5] * 3, "std": [0.25] * 3},
                          dataset=dataset, metrics={})
    import io

    buffer = io.BytesIO()
    torch.save(raw, buffer)
    assert model_from_checkpoint(read_checkpoint(buffer.getvalue())).card.trained_on == expected
    assert load_model("resnet20", {}, "random").card.trained_on is None  # random weights learned nothing
    assert load_model("resnet20", {}, "demo:resnet20").card.trained_on == "shapes"


def test_a_source_the_model_was_not_trained_for_gets_one_sentence_and_the_fix() -> None:
    from resnet_core.card import source_mismatch

    photo_on_shapes = source_mismatch("shapes", "photo")
    assert photo_on_shapes.sentence.startswith("This model was trained on the Shapes set (ten synthetic shapes), "
                                               "so on a photo it can only answer with a shape")
    assert (photo_on_shapes.fix_source, photo_on_shapes.fix_label) == ("shapes", "Use a Shapes image")
    assert "an uploaded image" in source_mismatch("shapes", "upload").sentence
    assert source_mismatch("shapes", "shapes") is None
    shapes_on_imagenet = source_mismatch("imagenet", "shapes")
    assert "ImageNet photos" in shapes_on_imagenet.sentence and shapes_on_imagenet.fix_source == "photo"
    assert source_mismatch("imagenet", "photo") is None and source_mismatch("imagenet", "upload") is None
    photo_on_cifar = source_mismatch("cifar10", "photo")
    assert "CIFAR-10" in photo_on_cifar.sentence and photo_on_cifar.fix_source is None  # no CIFAR image to offer
    assert source_mismatch("cifar10", "shapes").fix_source is None
    assert "MNIST (handwritten digits)" in source_mismatch("mnist", "upload").sentence
    for kind in ("photo", "upload", "shapes"):  # nothing is claimed for random or unknown weights
        assert source_mismatch(None, kind) is None and source_mismatch("unknown", kind) is None
