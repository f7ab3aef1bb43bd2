"""Shapes (generated) and the real data sets read from tiny copies written in their real on-disk formats."""

from __future__ import annotations

import gzip
import pickle
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnet_core import data, settings
from resnet_core.data import SHAPES_CLASSES, DataError, load_splits, make_shapes, shapes_split
from resnet_core.settings import can_reach


# ------------------------------------------------------------------------------------------------ Shapes
def test_shapes_tensors_have_the_agreed_types_and_ranges():
    s = make_shapes(200, image_size=24, seed=3)
    assert s.images.shape == (200, 3, 24, 24) and s.images.dtype == torch.float32
    assert float(s.images.min()) >= 0.0 and float(s.images.max()) <= 1.0
    assert s.labels.shape == (200,) and s.labels.dtype == torch.int64
    assert s.masks.shape == (200, 24, 24) and s.masks.dtype == torch.bool
    assert len(SHAPES_CLASSES) >= 8 and s.classes == SHAPES_CLASSES
    assert set(s.labels.tolist()) == set(range(len(SHAPES_CLASSES)))
    assert len(s.mean) == 3 and len(s.std) == 3
    # Every image has an object, and it leaves background around it (covers 5% to 65% of the image).
    coverage = s.masks.float().mean(dim=(1, 2))
    assert float(coverage.min()) > 0.05 and float(coverage.max()) < 0.65


def test_shapes_are_deterministic_and_splits_disjoint():
    a, b = make_shapes(64, 16, seed=7), make_shapes(64, 16, seed=7)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels) and torch.equal(a.masks, b.masks)
    train, test = shapes_split("train", 300, 16), shapes_split("test", 300, 16)
    assert train.mean == test.mean and train.std == test.std  # one normalisation for both splits
    flat_train, flat_test = train.images.flatten(1), test.images.flatten(1)
    nearest = torch.cdist(flat_test, flat_train).min(dim=1).values
    assert float(nearest.min()) > 1.0  # no test image is (nearly) a training image
    with pytest.raises(ValueError, match="split"):
        shapes_split("validation", 10)


def test_object_mask_marks_the_object_pixels():
    s = make_shapes(100, 32, seed=1)
    # Inside the mask all three channels of a pixel share the object colour (up to 5% shading), so the
    # colour spread inside the mask is far below that of the whole image.
    for i in range(10):
        inside = s.images[i][:, s.masks[i]]  # (3, pixels)
        rel = inside / inside.mean(dim=1, keepdim=True).clamp_min(1e-3)
        whole = s.images[i].flatten(1)
        assert float(rel.std(dim=1).max()) < 0.2
        assert float(inside.std(dim=1).mean()) < float(whole.std(dim=1).mean())


def test_colour_alone_does_not_give_the_class():
    s = make_shapes(2000, 16, seed=11)
    features = s.images.mean(dim=(2, 3))  # mean colour of each image
    object_colour = torch.stack([s.images[i][:, s.masks[i]].mean(1) for i in range(len(s))])
    train, test = slice(0, 1500), slice(1500, 2000)
    for feats in (features, object_colour):
        centroids = torch.stack([feats[train][s.labels[train] == k].mean(0) for k in range(len(SHAPES_CLASSES))])
        predicted = torch.cdist(feats[test], centroids).argmin(1)
        accuracy = float((predicted == s.labels[test]).float().mean())
        assert accuracy < 2.0 / len(SHAPES_CLASSES)  # chance is 1/10: colour carries (almost) nothing


def test_normalized_images_and_dataset_protocol():
    s = shapes_split("train", 500, 16)
    x = s.normalized()
    assert x.shape == s.images.shape
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=0.08)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.ones(3), atol=0.08)
    image, label = s[5]
    assert torch.allclose(image, x[5]) and label == int(s.labels[5]) and len(s) == 500


# ------------------------------------------------------------------------------------------------ CIFAR-10
def _write_cifar(root: Path, n_per_batch: int = 4) -> dict[str, np.ndarray]:
    """A tiny CIFAR-10 in the 'python version' layout: pickled dicts with data (N, 3072) uint8 and labels."""
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        arr = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n_per_batch).tolist()
        with open(base / name, "wb") as f:
            pickle.dump({"batch_label": name, "labels": labels, "data": arr,
                         "filenames": [f"{name}_{i}.png" for i in range(n_per_batch)]}, f)
        written[name] = arr
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names, "num_cases_per_batch": n_per_batch, "num_vis": 3072}, f)
    return written


def test_cifar10_tiny_copy_is_read_in_the_documented_layout(tmp_path):
    written = _write_cifar(tmp_path)
    train, test = load_splits("cifar10", image_size=32, root=tmp_path, download=False)
    assert len(train) == 20 and len(test) == 4
    assert train.images.dtype == torch.uint8 and train.images.shape == (20, 3, 32, 32)
    assert train.classes[0] == "airplane" and len(train.classes) == 10
    # Row layout: 1024 red values, then green, then blue, each row-major 32x32.
    first = written["data_batch_1"][0]
    assert int(train.images[0, 0, 0, 0]) == first[0]
    assert int(train.images[0, 1, 0, 0]) == first[1024]
    assert int(train.images[0, 2, 0, 1]) == first[2049]
    assert torch.equal(test.images[3].flatten(), torch.from_numpy(written["test_batch"][3]))
    assert test.mean == train.mean  # the training statistics travel with the test split


def test_torchvision_cifar10_refuses_a_tiny_copy(tmp_path):
    """Why data.py reads CIFAR itself: torchvision checks each file's MD5, which only the originals pass."""
    from torchvision.datasets import CIFAR10

    _write_cifar(tmp_path)
    with pytest.raises(RuntimeError, match="corrupted"):
        CIFAR10(str(tmp_path), train=True, download=False)


def test_cifar10_resized_and_subsampled(tmp_path):
    _write_cifar(tmp_path, n_per_batch=6)
    train, test = load_splits("cifar10", image_size=16, n_train=10, n_test=3, root=tmp_path, download=False)
    assert train.images.shape == (10, 3, 16, 16) and test.images.shape == (3, 3, 16, 16)


def test_corrupt_cifar_file_gives_one_sentence(tmp_path):
    _write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="could not be read") as info:
        load_splits("cifar10", root=tmp_path, download=False)
    assert "\n" not in str(info.value) and str(tmp_path) not in str(info.value)


# ------------------------------------------------------------------------------------------------ MNIST
def _idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    """idx-ubyte: magic (0, 0, type 0x08 = ubyte, ndim), big-endian dims, then the bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


def _write_mnist(root: Path, folder: str, n_train: int = 12, n_test: int = 5) -> dict[str, np.ndarray]:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        _idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        # torchvision also keeps the downloaded archives; it reads the raw files, which is what we test.
        _idx(raw / f"{prefix}-images-idx3-ubyte.gz", images, compress=True)
        out[prefix], out[prefix + "_labels"] = images, labels
    return out


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_family_tiny_copy_loads_through_torchvision(tmp_path, name, folder):
    written = _write_mnist(tmp_path, folder)
    train, test = load_splits(name, image_size=28, root=tmp_path, download=False)
    assert train.images.shape == (12, 3, 28, 28) and test.images.shape == (5, 3, 28, 28)
    # Grey copied into three channels, pixel for pixel.
    assert torch.equal(train.images[:, 0], torch.from_numpy(written["train"]))
    assert torch.equal(train.images[:, 2], train.images[:, 0])
    assert train.labels.tolist() == written["train_labels"].tolist()
    if name == "fashion_mnist":
        assert train.classes[0] == "T-shirt/top"
    else:
        assert train.classes[0].startswith("0")
    resized, _ = load_splits(name, image_size=16, root=tmp_path, download=False)
    assert resized.images.shape == (12, 3, 16, 16)


# ------------------------------------------------------------------------------------------------ offline
def test_offline_message_names_the_directory_and_the_files(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_EXPLORER_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("RESNET_EXPLORER_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(DataError) as info:
        load_splits("cifar10")
    message = str(info.value)
    assert time.perf_counter() - start < 30  # a hang-guard: offline must not wait on the network
    assert str(tmp_path) not in message and "the data folder" in message  # visitors read it: no server path
    assert info.value.folder == tmp_path / "empty"  # the command line prints it
    assert "cifar-10-batches-py/data_batch_1" in message and "batches.meta" in message
    assert "RESNET_EXPLORER_DATA" in message and "\n" not in message
    with pytest.raises(DataError, match=r"MNIST/raw/train-images-idx3-ubyte"):
        load_splits("mnist")


def test_network_probe_gives_up_within_its_timeout(monkeypatch):
    monkeypatch.delenv("RESNET_EXPLORER_OFFLINE", raising=False)
    start = time.perf_counter()
    # 10.255.255.1 is a non-routable address: the request can only time out (or fail at once).
    assert can_reach("http://10.255.255.1/cifar.tar.gz", timeout=0.5) is False
    assert time.perf_counter() - start < 30  # a hang-guard, not a speed target


@pytest.mark.parametrize("value,offline", [("1", True), ("true", True), ("YES", True), (" True ", True),
                                           ("", False), ("0", False), ("false", False), ("no", False)])
def test_one_offline_rule_for_data_and_weights(monkeypatch, value, offline):
    """RESNET_EXPLORER_OFFLINE means the same to data downloads and to weights downloads."""
    import http.server
    import threading

    from resnet_core.settings import network_available

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("RESNET_EXPLORER_OFFLINE", value)
        port = server.server_address[1]
        assert settings.offline_mode() is offline
        assert settings.downloads_allowed() is not offline
        assert network_available("127.0.0.1", port=port, timeout=5.0) is not offline
        assert can_reach(f"http://127.0.0.1:{port}/", timeout=5.0) is not offline
    finally:
        server.shutdown()
        server.server_close()


def test_default_data_dir_is_the_env_var_or_repo_data(monkeypatch, tmp_path):
    monkeypatch.setenv("RESNET_EXPLORER_DATA", str(tmp_path))
    assert settings.data_dir() == tmp_path
    monkeypatch.delenv("RESNET_EXPLORER_DATA")
    assert settings.data_dir() == Path(data.__file__).resolve().parents[1] / "data"


def test_unknown_data_set_is_one_sentence():
    with pytest.raises(DataError, match="Unknown data set 'imagenet'"):
        load_splits("imagenet")


# ------------------------------------------------------------------------------------------------ folders
def test_image_folder_one_subfolder_per_class(tmp_path):
    colours = {"red": (220, 20, 20), "blue": (20, 20, 220)}
    for cls, colour in colours.items():
        (tmp_path / cls).mkdir()
        for i in range(5):
            Image.new("RGB", (40 + i, 30), colour).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "blue" / "grey.png").unlink(missing_ok=True)
    Image.new("L", (30, 30), 128).save(tmp_path / "blue" / "grey.png")
    train, test = load_splits(f"folder:{tmp_path}", image_size=16)
    assert train.classes == ("blue", "red")
    assert len(train) + len(test) == 11 and train.images.shape[1:] == (3, 16, 16)
    red = train.images[train.labels == 1]
    assert int(red[:, 0].float().mean()) == 220 and int(red[:, 2].float().mean()) == 20
    with pytest.raises(DataError, match="does not exist") as info:
        load_splits(f"folder:{tmp_path / 'nope'}")
    assert str(tmp_path) not in str(info.value) and "The image folder 'nope'" in str(info.value)
    assert info.value.folder == tmp_path / "nope"
    (tmp_path / "only" / "cats").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "only" / "cats" / "a.png")
    with pytest.raises(DataError, match="1 class sub-folder") as info:
        load_splits(f"folder:{tmp_path / 'only'}")
    assert str(tmp_path) not in str(info.value)
    assert data.dataset_title(f"folder:{tmp_path}") == f"the image folder '{tmp_path.name}'"
    assert data.dataset_title("cifar10") == "CIFAR-10" and data.dataset_title("shapes") == "Shapes"
