"""Weights: torchvision weights through a real (temporary) torch hub cache, safe checkpoints, inference."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
import torch
import torchvision

import resnet_core
from resnet_core.cli import weights_main
from resnet_core.errors import WeightsError
from resnet_core.images import Preprocessing
from resnet_core.models import ARCHITECTURES
from resnet_core.settings import network_available, upload_quota_bytes
from resnet_core.weights import (
    HUB_FOLDER,
    OfflineWeightsError,
    class_names_for,
    hub_checkpoint_path,
    load_model,
    parse_weights_id,
    preprocessing_for,
    weights_choices,
)
from resnet_core.weights.checkpoints import (
    FORMAT,
    CheckpointMismatch,
    infer_architecture,
    load_checkpoint_file,
    read_checkpoint,
    resolve_checkpoint_path,
    save_uploaded_checkpoint,
    store_upload,
)


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    """An empty torch hub cache, and no network: the real loading code runs offline."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("RESNET_EXPLORER_OFFLINE", "1")
    return tmp_path / "torch"


@pytest.fixture(autouse=True)
def runs_in_tmp(tmp_path, monkeypatch) -> Path:
    """Each test's tmp_path is the runs folder: ``ckpt:`` ids may address only files inside it."""
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path))
    return tmp_path


def one_sentence(message: str) -> bool:
    return "\n" not in message and message.endswith(".") and "Traceback" not in message


# ----------------------------------------------------------------------------------------- preprocessing
def test_preprocessing_defaults_by_stem_and_from_model():
    assert preprocessing_for(resnet_core.build("resnet20")) == Preprocessing.CIFAR
    with torch.device("meta"):
        imagenet = resnet_core.build("resnet18")
    assert preprocessing_for(imagenet) == Preprocessing.IMAGENET
    assert (Preprocessing.IMAGENET.resize, Preprocessing.IMAGENET.crop) == (256, 224)
    imagenet.preprocessing = {"resize": 40, "crop": 32, "mean": [0.1, 0.2, 0.3], "std": [1, 1, 1]}
    assert preprocessing_for(imagenet) == Preprocessing(40, 32, (0.1, 0.2, 0.3), (1.0, 1.0, 1.0))
    shapes = Preprocessing.shapes(24)
    assert (shapes.resize, shapes.crop) == (24, 24) and all(0 < s < 1 for s in shapes.std)
    assert Preprocessing.from_dict(shapes.to_dict()) == shapes
    with pytest.raises(ValueError, match="crop"):
        Preprocessing(16, 32, (0.5,) * 3, (0.5,) * 3)


def test_class_names_by_model():
    assert class_names_for(resnet_core.build("resnet20"))[:2] == ["airplane", "automobile"]
    with torch.device("meta"):
        imagenet = resnet_core.build("resnet18")
    names = class_names_for(imagenet)
    assert len(names) == 1000 and names[0] == "tench"
    small = resnet_core.build("resnet20", num_classes=3)
    assert class_names_for(small) == ["class 0", "class 1", "class 2"]
    small.class_names = ["a", "b", "c"]
    assert class_names_for(small) == ["a", "b", "c"]


def test_weights_ids():
    assert weights_choices("resnet50") == ["random", "tv:IMAGENET1K_V1", "tv:IMAGENET1K_V2"]
    assert weights_choices("resnet18") == ["random", "tv:IMAGENET1K_V1"]
    assert weights_choices("resnet56") == ["random"]
    assert parse_weights_id("ckpt:/a/b.pt") == ("ckpt", "/a/b.pt")
    with pytest.raises(WeightsError, match="not a weights choice"):
        parse_weights_id("imagenet")


# ---------------------------------------------------------------------------------- torchvision weights
def test_torchvision_weights_load_from_the_hub_cache(torch_home):
    reference = torchvision.models.resnet18()
    with torch.no_grad():  # a locally made state_dict: seeded, then nudged so it differs from our seed-0 init
        torch.manual_seed(3)
        for p in reference.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    path = hub_checkpoint_path("resnet18", "IMAGENET1K_V1")
    assert path == torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)

    model = load_model("resnet18", {"residual": False, "width": 16}, "tv:IMAGENET1K_V1")
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(model(x), reference.eval()(x), atol=1e-5)
    assert model.class_names == torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    assert class_names_for(model)[1] == "goldfish"
    assert preprocessing_for(model) == Preprocessing(256, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert model.weights_id == "tv:IMAGENET1K_V1" and not model.training
    assert "ignored residual=False, width=16" in model.weights_notes[0]


def test_offline_weights_name_the_file_and_folder_quickly(torch_home):
    start = time.perf_counter()
    with pytest.raises(OfflineWeightsError) as info:
        load_model("resnet50", weights="tv:IMAGENET1K_V2")
    assert time.perf_counter() - start < 30  # a hang-guard: offline must not wait on the network
    message = str(info.value)
    folder = torch_home / "hub" / "checkpoints"
    assert "resnet50-11ad3fa6.pth" in message and HUB_FOLDER in message and one_sentence(message)
    assert str(torch_home) not in message  # visitors read it: the server's path stays in .path
    assert info.value.path == folder / "resnet50-11ad3fa6.pth"


def test_network_check_is_quick_without_a_resolvable_host(monkeypatch):
    monkeypatch.delenv("RESNET_EXPLORER_OFFLINE", raising=False)
    start = time.perf_counter()
    assert network_available("no-such-host.invalid", timeout=2.0) is False
    assert time.perf_counter() - start < 30  # a hang-guard, not a speed target


def test_damaged_cache_file_is_explained(torch_home):
    path = hub_checkpoint_path("resnet18", "IMAGENET1K_V1")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="damaged") as info:
        load_model("resnet18", weights="tv:IMAGENET1K_V1")
    assert one_sentence(str(info.value)) and path.name in str(info.value) and str(path.parent) not in str(info.value)


def test_torchvision_weights_for_a_cifar_net_are_refused():
    with pytest.raises(WeightsError, match="no ImageNet weights"):
        load_model("resnet20", weights="tv:IMAGENET1K_V1")


# -------------------------------------------------------------------------------------------- checkpoints
class RunsCode:
    """Unpickling this calls os.makedirs(marker): a stand-in for any code a malicious pickle would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    state = resnet_core.build("resnet20", width=4).state_dict()
    torch.save({"state_dict": state, "payload": RunsCode(marker)}, path)
    # The file really is dangerous: an unsafe load runs the code...
    torch.load(path, weights_only=False)
    assert marker.exists()
    marker.rmdir()
    # ...and ours refuses it without running anything.
    with pytest.raises(WeightsError, match="refused for safety") as info:
        read_checkpoint(path)
    assert not marker.exists()
    assert one_sentence(str(info.value))
    with pytest.raises(WeightsError, match="refused for safety"):
        save_uploaded_checkpoint(path.read_bytes(), "evil.pt")
    assert not marker.exists()


def _save(obj, tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    torch.save(obj, path)
    return f"ckpt:{path}"


def test_checkpoint_wrappings_all_load(tmp_path):
    model = resnet_core.build("resnet20", seed=5, width=4)
    state = model.state_dict()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model.eval()(x)
    variants = {
        "bare.pt": state,
        "wrapped.pt": {"state_dict": state, "epoch": 3},
        "model.pth": {"model": state, "optimizer": {"lr": 0.1}},
        "ddp.pt": {f"module.{k}": v for k, v in state.items()},
        "ddp-wrapped.ckpt": {"state_dict": {f"module.{k}": v for k, v in state.items()}},
    }
    for name, obj in variants.items():
        loaded = load_model("resnet50", {"residual": False}, _save(obj, tmp_path, name))  # arch from the file
        assert loaded.arch_name == "resnet20", name
        with torch.no_grad():
            assert torch.allclose(loaded(x), expected, atol=1e-6), name
        assert "architecture inferred from the tensors" in loaded.weights_notes


def test_own_format_carries_config_classes_and_preprocessing(tmp_path):
    model = resnet_core.build("resnet20", seed=1, width=8, num_classes=4, residual=False)
    ckpt = {"format": FORMAT, "arch": "resnet20", "options": {"width": 8, "num_classes": 4, "residual": False},
            "state_dict": model.state_dict(), "classes": ["circle", "square", "triangle", "cross"],
            "preprocessing": {"resize": 24, "crop": 24, "mean": [0.5, 0.5, 0.5], "std": [0.3, 0.3, 0.3]},
            "dataset": "shapes", "metrics": {"test_acc": 0.9}}
    loaded = load_model("resnet18", {}, _save(ckpt, tmp_path, "run.pt"))
    assert loaded.arch_name == "resnet20" and loaded.residual is False
    assert loaded.arch_label == "Plain-20"
    assert class_names_for(loaded) == ["circle", "square", "triangle", "cross"]
    assert preprocessing_for(loaded) == Preprocessing(24, 24, (0.5,) * 3, (0.3,) * 3)
    assert loaded.checkpoint_meta == {"dataset": "shapes", "metrics": {"test_acc": 0.9}}


TORCHVISION_BUILDERS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
                        "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2"]


@pytest.mark.parametrize("name", TORCHVISION_BUILDERS)
def test_architecture_inferred_for_every_torchvision_depth(name):
    with torch.device("meta"):  # shapes only: no memory, no init
        state = getattr(torchvision.models, name)(num_classes=7).state_dict()
    inferred = infer_architecture(state)
    spec = ARCHITECTURES[name]
    assert inferred.name == name
    assert (inferred.block, inferred.layers, inferred.groups, inferred.width_per_group) == (
        spec.block, spec.layers, spec.groups, spec.width_per_group)
    assert (inferred.stem, inferred.num_classes, inferred.shortcut, inferred.residual) == ("imagenet", 7, "B", True)


@pytest.mark.parametrize("name, options, expected", [
    ("resnet56", {"width": 8}, {"width": 8, "shortcut": "A", "residual": True}),
    ("resnet20", {"shortcut": "C"}, {"shortcut": "C"}),
    ("resnet20", {"shortcut": "B", "preact": True}, {"shortcut": "B", "preact": True}),
    ("resnet34", {"residual": False}, {"residual": False}),
    ("resnet50", {"preact": True, "shortcut": "C", "in_channels": 1}, {"preact": True, "shortcut": "C",
                                                                       "in_channels": 1}),
])
def test_architecture_inference_reads_options(name, options, expected):
    with torch.device("meta"):
        state = resnet_core.build(name, **options).state_dict()
    inferred = infer_architecture(state)
    assert inferred.name == name
    for key, value in expected.items():
        assert getattr(inferred, key) == value, key


def test_custom_stage_plan_is_built_directly(tmp_path):
    model = resnet_core.ResNet("basic", (1, 2), stem="cifar", num_classes=3, width=4)
    loaded = load_model("resnet20", {}, _save(model.state_dict(), tmp_path, "custom.pt"))
    assert loaded.arch_name == "custom" and [len(s) for s in loaded.stages()] == [1, 2]
    assert loaded.arch_label.startswith("ResNet-8 (1-2)")


def test_mismatch_lists_missing_unexpected_and_wrong_shape_keys(tmp_path):
    state = dict(resnet_core.build("resnet20", width=4).state_dict())
    del state["layer2.0.conv1.weight"]
    state["layer1.0.bn1.weight"] = torch.ones(5)
    state["extra.head.weight"] = torch.zeros(2)
    ckpt = {"format": FORMAT, "arch": "resnet20", "options": {"width": 4}, "state_dict": state}
    with pytest.raises(CheckpointMismatch) as info:
        load_model("resnet20", {}, _save(ckpt, tmp_path, "broken.pt"))
    error = info.value
    assert error.missing == ["layer2.0.conv1.weight"]
    assert error.unexpected == ["extra.head.weight"]
    assert error.wrong_shape == [("layer1.0.bn1.weight", (5,), (4,))]
    assert "1 missing, 1 unexpected, 1 wrong-shape" in str(error) and one_sentence(str(error))
    table = error.table()
    assert table["problem"].tolist() == ["missing from the checkpoint", "not in the model", "wrong shape"]
    assert table.loc[2, "checkpoint shape"] == "(5,)" and table.loc[2, "model shape"] == "(4,)"


@pytest.mark.parametrize("content, phrase", [
    ({"features.0.weight": torch.zeros(3, 3, 3, 3), "classifier.weight": torch.zeros(2, 2)}, "not look like a ResNet"),
    ({"epoch": 3, "note": "hello"}, "no tensors"),
    ([1, 2, 3], "not a state_dict"),
])
def test_not_a_resnet_checkpoint_is_one_sentence(tmp_path, content, phrase):
    with pytest.raises(WeightsError, match=phrase) as info:
        load_model("resnet20", {}, _save(content, tmp_path, "other.pt"))
    assert one_sentence(str(info.value))


def _own(**fields):
    state = resnet_core.build("resnet20", width=4).state_dict()
    ckpt = {"format": FORMAT, "arch": "resnet20", "options": {"width": 4}, "state_dict": state,
            "preprocessing": {"resize": 32, "crop": 32, "mean": [0.5] * 3, "std": [0.5] * 3}}
    ckpt.update(fields)
    return {k: v for k, v in ckpt.items() if v is not None}


def _bottleneck_without_conv2():
    with torch.device("meta"):
        state = dict(resnet_core.build("resnet50", num_classes=3).state_dict())
    state = {k: torch.zeros(v.shape) if v.dim() else torch.zeros(()) for k, v in state.items()
             if not k.startswith(("layer2", "layer3", "layer4"))}  # keep it small: conv1, layer1, fc
    del state["layer1.0.conv2.weight"]
    return state


@pytest.mark.parametrize("make, phrase", [
    (lambda: _own(state_dict=None) | {"state_dict": None}, "'state_dict'"),
    (lambda: {"format": FORMAT, "arch": "resnet20"}, "'state_dict'"),
    (lambda: _own(preprocessing={"resize": 32, "mean": [0.5] * 3, "std": [0.5] * 3}), "lacks crop"),
    (lambda: _own(arch=["resnet20"]), "'arch' is a list"),
    (lambda: _own(options=["width", 4]), "'options'"),
    (lambda: _own(classes=[1, 2]), "'classes'"),
    (_bottleneck_without_conv2, "layer1.0.conv2.weight"),
])
def test_malformed_checkpoints_are_one_sentence(tmp_path, make, phrase):
    """Malformed checkpoints give a WeightsError sentence, never a KeyError or TypeError."""
    weights = _save(make(), tmp_path, "odd.pt")
    with pytest.raises(WeightsError) as info:
        load_model("resnet20", {}, weights)
    assert phrase in str(info.value) and one_sentence(str(info.value))
    with pytest.raises(WeightsError):
        save_uploaded_checkpoint(Path(weights[5:]).read_bytes(), "odd.pt")


def test_non_rgb_checkpoint_is_refused(tmp_path):
    gray = resnet_core.build("resnet20", width=4, in_channels=1).state_dict()
    with pytest.raises(WeightsError, match="1-channel input") as info:
        load_model("resnet20", {}, _save(gray, tmp_path, "gray.pt"))
    assert "RGB" in str(info.value) and one_sentence(str(info.value))
    own = _own(options={"width": 4, "in_channels": 1}, state_dict=gray)
    with pytest.raises(WeightsError, match="1-channel input"):
        load_model("resnet20", {}, _save(own, tmp_path, "gray-own.pt"))
    with pytest.raises(WeightsError, match="1-channel input"):
        save_uploaded_checkpoint((tmp_path / "gray.pt").read_bytes(), "gray.pt")
    assert not (tmp_path / "uploads").exists() or not any((tmp_path / "uploads").iterdir())


def test_uploads_dir_is_in_runs_dir(tmp_path, monkeypatch):
    from resnet_core.settings import runs_dir, uploads_dir

    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path / "elsewhere"))
    assert uploads_dir() == runs_dir() / "uploads" == tmp_path / "elsewhere" / "uploads"
    monkeypatch.delenv("RESNET_EXPLORER_RUNS")
    assert uploads_dir() == runs_dir() / "uploads"


def test_bad_files_and_paths(tmp_path):
    with pytest.raises(WeightsError, match="not a PyTorch checkpoint") as info:
        read_checkpoint(b"\x00garbage" * 10, name="upload.pt")
    assert one_sentence(str(info.value))
    good = tmp_path / "good.pt"
    torch.save(resnet_core.build("resnet20", width=4).state_dict(), good)
    with pytest.raises(WeightsError, match="not a PyTorch checkpoint"):
        read_checkpoint(good.read_bytes()[:2000])  # truncated
    with pytest.raises(WeightsError, match="^There is no checkpoint '/.*missing.pt' in the runs or uploads folders"):
        load_model("resnet20", {}, f"ckpt:{tmp_path / 'missing.pt'}")
    with pytest.raises(WeightsError, match=r"^There is no checkpoint 'relative.pt' in the runs or uploads "):
        load_model("resnet20", {}, "ckpt:relative.pt")  # an id relative to the runs folder, not there
    for outside in ["../relative.pt", "/etc/passwd", "/etc/no-such.pt", f"{tmp_path}/../x.pt", "/" + "a" * 2000]:
        with pytest.raises(WeightsError) as info:
            load_model("resnet20", {}, f"ckpt:{outside}")
        assert str(info.value) == "Checkpoints can only be opened from the runs or uploads folders."


def test_uploaded_checkpoint_is_validated_then_stored(tmp_path):
    good = tmp_path / "mine.pt"
    torch.save(resnet_core.build("resnet20", width=4).state_dict(), good)
    data = good.read_bytes()
    stored = save_uploaded_checkpoint(data, "my net (v2).pth")
    assert stored.parent == (tmp_path / "uploads").resolve()
    assert stored.name == hashlib.sha256(data).hexdigest() + ".pth"  # content-addressed, original suffix
    assert stored.read_bytes() == data
    assert save_uploaded_checkpoint(data, "another name.pth") == stored  # same content, one copy
    with pytest.raises(WeightsError):
        save_uploaded_checkpoint(b"junk", "junk.pt")
    assert sorted(p.name for p in stored.parent.iterdir()) == [stored.name]
    assert load_model("resnet20", {}, f"ckpt:{stored}").arch_name == "resnet20"  # uploads are openable


def test_upload_quota_drops_the_oldest_first(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_EXPLORER_UPLOAD_QUOTA_MB", "0.01")  # 10,485 bytes
    assert upload_quota_bytes() == 10485
    folder = tmp_path / "uploads"
    first = store_upload(b"a" * 4000, "one.png")
    second = store_upload(b"b" * 4000, "two.png")
    os.utime(first, (time.time() - 100, time.time() - 100))
    os.utime(second, (time.time() - 50, time.time() - 50))
    assert store_upload(b"a" * 4000, "again.png") == first  # same content: one file, now the newest
    third = store_upload(b"c" * 4000, "three.jpg")  # 12,000 bytes > quota: the oldest (second) goes
    assert sorted(p.name for p in folder.iterdir()) == sorted([first.name, third.name])
    assert third.suffix == ".jpg" and third.read_bytes() == b"c" * 4000
    with pytest.raises(WeightsError, match="larger than the 0 MB quota") as info:
        store_upload(b"d" * 20000, "huge.pt")
    assert one_sentence(str(info.value)) and "RESNET_EXPLORER_UPLOAD_QUOTA_MB" in str(info.value)
    assert sorted(p.name for p in folder.iterdir()) == sorted([first.name, third.name])  # nothing changed
    monkeypatch.setenv("RESNET_EXPLORER_UPLOAD_QUOTA_MB", "nonsense")
    assert upload_quota_bytes() == 512 * 2**20


def test_checkpoint_paths_are_confined_to_runs_and_uploads(tmp_path, monkeypatch):
    runs = tmp_path / "runs-root"
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(runs))
    (runs / "r1").mkdir(parents=True)
    inside = runs / "r1" / "net.pt"
    torch.save(resnet_core.build("resnet20", width=4).state_dict(), inside)
    secret = tmp_path / "secret.pt"
    torch.save(resnet_core.build("resnet20", width=4).state_dict(), secret)
    (runs / "r1" / "link.pt").symlink_to(secret)
    assert resolve_checkpoint_path(str(inside)) == inside.resolve()
    assert resolve_checkpoint_path(str(runs / "r1" / ".." / "r1" / "net.pt")) == inside.resolve()
    assert resolve_checkpoint_path("r1/net.pt") == inside.resolve()  # the id the app writes: from the runs folder
    refused = [str(secret), str(runs / "r1" / "link.pt"), str(runs / ".." / "secret.pt"),
               str(tmp_path / "missing.pt"), str(runs) + "/" + "x" * 1100 + ".pt", "../secret.pt", str(runs)]
    for value in refused:
        with pytest.raises(WeightsError) as info:
            resolve_checkpoint_path(value)
        assert str(info.value) == "Checkpoints can only be opened from the runs or uploads folders."
    with pytest.raises(WeightsError, match="^There is no checkpoint "):  # inside the folders, saying so is harmless
        load_model("resnet20", {}, f"ckpt:{runs / 'r1' / 'gone.pt'}")
    assert load_checkpoint_file(secret).arch_name == "resnet20"  # local callers (CLI) may read any path


def test_cli_reports_the_architecture(tmp_path, capsys):
    path = tmp_path / "net.pt"
    torch.save({"model": resnet_core.build("resnet32", width=4).state_dict()}, path)
    assert weights_main([str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ResNet-32, width 4, shortcut A, 10 classes:")
    assert "option-A" in out
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"nope")
    assert weights_main([str(bad)]) == 1
    assert "not a PyTorch checkpoint" in capsys.readouterr().out


def _serve(directory: Path):
    """A real HTTP server on localhost (no outside network): the download code runs for real."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_download_reports_progress_and_checks_the_hash(tmp_path):
    import hashlib

    from resnet_core.weights import download_file

    served = tmp_path / "served"
    served.mkdir()
    payload = os.urandom(3 * (1 << 20) + 123)  # three full chunks and a bit
    (served / "weights.pth").write_bytes(payload)
    prefix = hashlib.sha256(payload).hexdigest()[:8]
    server = _serve(served)
    url = f"http://127.0.0.1:{server.server_address[1]}/weights.pth"
    try:
        seen: list[tuple[int, int]] = []
        target = tmp_path / "cache" / f"net-{prefix}.pth"
        assert download_file(url, target, prefix, lambda done, total: seen.append((done, total))) == target
        assert target.read_bytes() == payload
        assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1] == (len(payload), len(payload))
        assert len(seen) == 4
        wrong = tmp_path / "cache" / "net-00000000.pth"
        with pytest.raises(WeightsError, match="corrupt") as info:
            download_file(url, wrong, "00000000")
        assert one_sentence(str(info.value))
        assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [target.name]  # nothing left behind
        with pytest.raises(OSError):
            download_file(url.replace("weights.pth", "missing.pth"), tmp_path / "cache" / "x.pth")
        assert not list((tmp_path / "cache").glob("*.partial"))
    finally:
        server.shutdown()


def test_concurrent_downloads_of_one_file_take_turns(tmp_path):
    """Two sessions downloading the same weights at once: one download, both get the file, no temp left."""
    import functools
    import hashlib
    import http.server
    import threading

    from resnet_core.weights import download_file

    payload = os.urandom(2 * (1 << 20) + 77)
    prefix = hashlib.sha256(payload).hexdigest()[:8]
    requests: list[str] = []

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            for start in range(0, len(payload), 1 << 18):  # slowly, so the two downloads overlap
                self.wfile.write(payload[start:start + (1 << 18)])
                self.wfile.flush()
                time.sleep(0.05)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Slow))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/weights.pth"
    target = tmp_path / "cache" / f"net-{prefix}.pth"
    barrier = threading.Barrier(2)
    results: list[object] = []

    def fetch() -> None:
        barrier.wait()
        try:
            results.append(download_file(url, target, prefix))
        except Exception as exc:  # noqa: BLE001 - recorded, then asserted on
            results.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        server.shutdown()
        server.server_close()
    assert results == [target, target]
    assert target.read_bytes() == payload
    assert requests == ["/weights.pth"]  # the second caller found the file and skipped its download
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]


# ------------------------------------------------------------------- bounds before anything is allocated
def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("fields, phrase", [
    ({"options": {"width": 4, "num_classes": 10_000_000}}, "num_classes must be a whole number from 1 to 100000"),
    ({"options": {"width": 1_000_000}}, "width must be a whole number from 1 to 512"),
    ({"options": {"width": 4, "residual": "yes"}}, "residual must be one of True, False"),
    ({"options": {"width": 4, "depth": 9}}, "'depth' is not one this project builds with"),
    ({"options": {"width": float("nan")}}, "width must be a whole number"),
    ({"arch": "resnet9999"}, "'resnet9999', which is not an architecture"),
    ({"classes": ["x"] * 200_000}, "200,000 names, more than the 100,000 allowed"),
    ({"classes": ["x" * 5000]}, "at most 200 characters"),
    ({"preprocessing": {"resize": 32, "crop": 32, "mean": [0.5] * 2, "std": [0.5] * 3}},
     "mean needs one value per input channel (3, for RGB images), got 2"),
    ({"preprocessing": {"resize": 32, "crop": 32, "mean": [0.5, float("nan"), 0.5], "std": [0.5] * 3}},
     "mean must be finite"),
    ({"preprocessing": {"resize": 32, "crop": 32, "mean": [0.5] * 3, "std": [0.5, 0.0, 0.5]}},
     "std must be positive"),
    ({"preprocessing": {"resize": 32, "crop": 32, "mean": [0.5] * 3, "std": [0.5, float("inf"), 0.5]}},
     "std must be finite"),
    ({"preprocessing": {"resize": 10**9, "crop": 224, "mean": [0.5] * 3, "std": [0.5] * 3}},
     "resize must be a whole number of pixels from 1 to 1024"),
    ({"preprocessing": {"resize": 32, "crop": 64, "mean": [0.5] * 3, "std": [0.5] * 3}},
     "centre crop (64) is larger than the resize (32)"),
])
def test_own_format_fields_are_bounded_before_use(tmp_path, fields, phrase):
    """Each field is checked before use; bad statistics are blamed on the checkpoint, not on an image."""
    weights = _save(_own(**fields), tmp_path, "bad.pt")
    with pytest.raises(WeightsError) as info:
        load_model("resnet20", {}, weights)
    message = str(info.value)
    assert phrase in message and one_sentence(message) and len(message) < 400
    assert message.startswith("The file 'bad.pt' is marked resnet-explorer/1")


def _broadcast(*shape: int) -> torch.Tensor:
    """A tensor claiming ``shape`` but storing one number: a few bytes on disk."""
    return torch.zeros(1).expand(*shape)


@pytest.mark.parametrize("change, phrase", [
    ({"fc.weight": _broadcast(5_000_000, 64), "fc.bias": _broadcast(5_000_000)}, "5,000,000 outputs"),
    ({"fc.weight": _broadcast(50_000_000, 64)}, "more than 400,000,000 numbers"),
    ({"conv1.weight": _broadcast(100_000, 3, 3, 3)}, "to 100000, beyond the 64 inputs and 512 channels"),
    ({"layer1.99999.conv1.weight": torch.zeros(1)}, "up to 100,000 blocks"),
    ({f"layer{i}.0.conv1.weight": torch.zeros(1) for i in (4, 5, 6)}, "6 stages"),
])
def test_inferred_architectures_are_bounded_before_building(tmp_path, change, phrase):
    state = dict(resnet_core.build("resnet20", width=4).state_dict()) | change
    path = tmp_path / "foreign.pt"
    torch.save(state, path)
    assert path.stat().st_size < 200_000
    before = _peak_rss_mb()
    with pytest.raises(WeightsError, match=phrase) as info:
        load_model("resnet20", {}, f"ckpt:{path}")
    assert one_sentence(str(info.value))
    assert _peak_rss_mb() - before < 200  # refused from shapes, not after allocating gigabytes


def test_a_model_over_the_parameter_limit_is_refused_from_the_meta_device(tmp_path):
    ckpt = _own(arch="resnet110", options={"width": 512})  # each field in bounds, together 1.4 G parameters
    with pytest.raises(WeightsError, match="M parameters, above the 250 M limit") as info:
        load_model("resnet20", {}, _save(ckpt, tmp_path, "huge.pt"))
    assert one_sentence(str(info.value))


def test_nan_weights_are_refused_naming_the_first_tensor(tmp_path):
    state = dict(resnet_core.build("resnet20", width=4).state_dict())
    state["layer2.1.bn2.running_var"] = torch.full((8,), float("nan"))
    state["fc.weight"] = state["fc.weight"].clone().fill_(float("inf"))
    for obj in (state, _own(state_dict=state)):
        with pytest.raises(WeightsError) as info:
            load_model("resnet20", {}, _save(obj, tmp_path, "diverged.pt"))
        assert "NaN or infinite values in the tensor 'layer2.1.bn2.running_var'" in str(info.value)
        assert one_sentence(str(info.value))
    # A broadcast view of one NaN claiming 10^12 elements is checked through its one stored number.
    broadcast = dict(resnet_core.build("resnet20", width=4).state_dict())
    broadcast["fc.weight"] = torch.full((1,), float("nan")).expand(10, 64)
    with pytest.raises(WeightsError, match="'fc.weight'"):
        load_model("resnet20", {}, _save(broadcast, tmp_path, "view.pt"))


def test_long_mismatch_lists_are_cut_with_a_count(tmp_path):
    state = {f"{k}.renamed": v for k, v in resnet_core.build("resnet20", width=4).state_dict().items()}
    ckpt = _own(state_dict=state)
    with pytest.raises(CheckpointMismatch) as info:
        load_model("resnet20", {}, _save(ckpt, tmp_path, "renamed.pt"))
    message = str(info.value)
    missing, unexpected = len(info.value.missing), len(info.value.unexpected)
    assert missing > 90 and unexpected > 90
    assert f"... and {missing - 3} more; unexpected: " in message and f"... and {unexpected - 3} more)" in message
    assert len(message) < 600 and one_sentence(message)
    table = info.value.table()
    assert len(table) == 201 and table["key"].iloc[-1] == f"... and {missing + unexpected - 200} more"


def test_files_over_the_size_limit_or_compressed_are_refused_before_loading(tmp_path, monkeypatch):
    import zipfile

    import resnet_core.weights.checkpoints.format as checkpoint_format  # where the reader and its limits live

    path = tmp_path / "net.pt"
    torch.save(resnet_core.build("resnet20", width=4).state_dict(), path)
    monkeypatch.setattr(checkpoint_format, "MAX_CHECKPOINT_BYTES", path.stat().st_size - 1)
    with pytest.raises(WeightsError, match="above the 0 MB limit for checkpoints") as info:
        read_checkpoint(path)
    assert one_sentence(str(info.value))
    monkeypatch.undo()
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path))
    squeezed = tmp_path / "squeezed.pt"  # the same entries, deflated: a zip bomb's container
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(squeezed, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info.filename))
    with pytest.raises(WeightsError, match="compressed zip archive") as info:
        read_checkpoint(squeezed)
    assert one_sentence(str(info.value))


def test_statistics_of_the_wrong_length_fail_when_made_not_inside_torch():
    with pytest.raises(WeightsError, match="mean needs one value per input channel"):
        Preprocessing(32, 32, (0.5, 0.5), (0.5, 0.5))
    with pytest.raises(WeightsError, match="std must be positive"):
        Preprocessing.from_dict({"resize": 32, "crop": 32, "mean": [0.5] * 3, "std": [-1, 1, 1]})
    with pytest.raises(WeightsError, match="lacks crop"):
        Preprocessing.from_dict({"resize": 32, "mean": [0.5] * 3, "std": [1, 1, 1]})
