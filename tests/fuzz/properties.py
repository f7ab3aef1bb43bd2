"""The two fuzzed properties, run as a whole inside one child process: ``python -m tests.fuzz.properties
images|checkpoints N`` (from the repository root).

Each property draws ``N`` examples with hypothesis. Every example must end in a bounded result or in one
clear error of the documented types (``ImageError`` on the image path; ``WeightsError``, including
``CheckpointMismatch``, on the checkpoint path). Anything else (a RuntimeError from torch, a MemoryError, a
KeyError) fails the property with hypothesis' shrunk example. The parent (``tests/fuzz/watch.py``) watches
this process' resident memory and wall clock from outside.

Prints ``READY <json>`` after the imports (the parent's memory baseline), then one ``RESULT <json>`` line:
examples run, outcomes by type, the largest result tensor and this process' peak RSS.
"""

from __future__ import annotations

import io
import json
import math
import sys
import warnings
from collections import Counter
from typing import Any

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import resnet_core
from resnet_core.errors import WeightsError
from resnet_core.images import (
    MAX_ASPECT_RATIO,
    MAX_PIXELS,
    MAX_RESIZE,
    ImageError,
    Preprocessing,
    decode_image,
    preprocess,
)
from resnet_core.weights import preprocessing_for
from resnet_core.weights.checkpoints import (
    FORMAT,
    MAX_PARAMETERS,
    model_from_checkpoint,
    read_checkpoint,
    require_rgb,
)

# Which formats can hold each mode (checked with Pillow 13); the fuzzer picks among them.
MODE_FORMATS = {
    "1": ("PNG", "TIFF", "BMP", "GIF"), "L": ("PNG", "JPEG", "TIFF", "GIF", "BMP", "WEBP"),
    "LA": ("PNG", "TIFF", "WEBP"), "P": ("PNG", "GIF", "TIFF", "BMP"), "PA": ("TIFF",),
    "RGB": ("PNG", "JPEG", "TIFF", "BMP", "WEBP", "GIF"), "RGBA": ("PNG", "TIFF", "WEBP", "BMP"),
    "CMYK": ("TIFF", "JPEG"), "YCbCr": ("TIFF", "JPEG"), "LAB": ("TIFF",), "I": ("TIFF",),
    "I;16": ("PNG", "TIFF"), "I;16B": ("PNG", "TIFF"), "F": ("TIFF",),
}
IN_MEMORY_MODES = (*MODE_FORMATS, "HSV", "RGBX", "RGBa", "La")
PREPS = (Preprocessing.IMAGENET, Preprocessing.CIFAR, Preprocessing(8, 8, (0.5,) * 3, (0.25,) * 3),
         Preprocessing(MAX_RESIZE, 64, (0.5,) * 3, (0.25,) * 3))
# A result is within budget when it is the crop the preprocessing asked for: at most MAX_RESIZE^2 x 3.
MAX_RESULT_ELEMENTS = 3 * MAX_RESIZE**2

outcomes: Counter[str] = Counter()
largest = 0


def _record(result: torch.Tensor | None, error: BaseException | None) -> None:
    global largest
    if error is not None:
        message = str(error)
        assert "\n" not in message and len(message) < 1000 and message.endswith("."), message
        outcomes[type(error).__name__] += 1
    else:
        assert result is not None and result.numel() <= MAX_RESULT_ELEMENTS
        assert bool(torch.isfinite(result).all())
        largest = max(largest, result.numel())
        outcomes["result"] += 1


# ------------------------------------------------------------------------------------------------ images
@st.composite
def images(draw: st.DrawFn) -> tuple[Image.Image, str]:
    """An image of any mode whose shorter side is 1-24 px and longer side 1-70,000 px (extreme aspect ratios
    are common), and a format that can hold it."""
    mode = draw(st.sampled_from(sorted(MODE_FORMATS)))
    short, long = draw(st.integers(1, 24)), draw(st.one_of(st.integers(1, 64), st.integers(1, 70_000)))
    size = (short, long) if draw(st.booleans()) else (long, short)
    fill = draw(st.integers(0, 255))
    image = Image.new(mode, size, fill if mode not in ("F",) else fill / 255)
    return image, draw(st.sampled_from(MODE_FORMATS[mode]))


def _encode(image: Image.Image, fmt: str, frames: int) -> bytes:
    buffer = io.BytesIO()
    try:
        extra = {"save_all": True, "append_images": [image] * (frames - 1)} if frames > 1 else {}
        image.save(buffer, format=fmt, **extra)
    except Exception:  # noqa: BLE001 - a size or mode this format cannot store: PNG always can
        buffer = io.BytesIO()
        image.convert("L").save(buffer, format="PNG")
    return buffer.getvalue()


@st.composite
def image_bytes(draw: st.DrawFn) -> bytes:
    """Valid files, their truncations and bit flips, and random bytes (some behind a real signature)."""
    kind = draw(st.sampled_from(["valid", "truncated", "flipped", "random", "signature"]))
    if kind in ("random", "signature"):
        tail = draw(st.binary(max_size=2048))
        prefix = draw(st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"II*\x00",
                                       b"BM", b"RIFF\x00\x00\x00\x00WEBPVP8 "])) if kind == "signature" else b""
        return prefix + tail
    image, fmt = draw(images())
    data = _encode(image, fmt, draw(st.sampled_from([1, 1, 1, 3])) if fmt in ("GIF", "TIFF") else 1)
    if kind == "truncated":
        return data[: draw(st.integers(0, max(0, len(data) - 1)))]
    if kind == "flipped":
        buffer = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            position = draw(st.integers(0, len(buffer) - 1))
            buffer[position] = draw(st.integers(0, 255))
        return bytes(buffer)
    return data


def image_property(examples: int) -> None:
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True, print_blob=True,
              suppress_health_check=list(HealthCheck))
    @given(data=image_bytes(), memory=st.one_of(st.none(), st.sampled_from(IN_MEMORY_MODES)),
           prep=st.sampled_from(PREPS))
    def check(data: bytes, memory: str | None, prep: Preprocessing) -> None:
        try:
            image = decode_image(data)
            if memory is not None:  # an image made in memory (samples, Shapes, a notebook): no decoder ran
                image = Image.new(memory, image.size)
            result, error = preprocess(image, prep), None
            assert result.shape == (1, 3, prep.crop, prep.crop)
            assert image.width * image.height <= MAX_PIXELS
            assert max(image.size) / min(image.size) <= MAX_ASPECT_RATIO
        except ImageError as exc:
            result, error = None, exc
        _record(result, error)

    check()


# ------------------------------------------------------------------------------------------- checkpoints
def _base_state() -> dict[str, torch.Tensor]:
    return dict(resnet_core.build("resnet20", width=4, seed=0).state_dict())


BASE = _base_state()
KEYS = sorted(BASE)

numbers = st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.integers(-3, 70), st.sampled_from([10**6, 10**9, 10**30, 2**31]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([float("nan"), float("inf"), -0.0, 1e-300]),
)
garbage = st.recursive(
    st.one_of(numbers, st.none(), st.booleans(), st.text(max_size=12), st.binary(max_size=8),
              st.sampled_from(["resnet20", "resnet50", "A", "B", "3x3", FORMAT, "x" * 5000])),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=3),
                            st.tuples(inner, inner)),
    max_leaves=8,
)
OPTION_NAMES = ["residual", "shortcut", "stride_on", "preact", "zero_init_residual", "num_classes",
                "in_channels", "width", "depth", ""]
DTYPES = [torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.uint8, torch.bool, torch.complex64,
          torch.int8]


@st.composite
def tensors(draw: st.DrawFn) -> torch.Tensor:
    """A tensor of a random small shape and dtype, or a broadcast view claiming a huge shape."""
    if draw(st.booleans()):
        shape = draw(st.lists(st.integers(0, 6), max_size=4))
        return torch.zeros(shape, dtype=draw(st.sampled_from([torch.float32, *DTYPES])))
    claimed = draw(st.lists(st.sampled_from([1, 3, 64, 10**4, 10**6, 10**9]), min_size=1, max_size=4))
    while math.prod(claimed) > 2**60:  # torch refuses shapes whose element count overflows int64
        claimed.pop()
    return torch.zeros(1).expand(*claimed)


@st.composite
def checkpoints(draw: st.DrawFn) -> Any:
    """Our own format or a foreign state_dict, then a few mutations: config fields set to random numbers
    (NaN/inf included) and nested garbage, keys renamed or dropped, tensors of wrong shapes and dtypes."""
    state = dict(BASE)
    config: dict[str, Any] = {"format": FORMAT, "arch": "resnet20", "options": {"width": 4},
                              "classes": [f"c{i}" for i in range(10)], "dataset": "shapes",
                              "preprocessing": {"resize": 32, "crop": 32, "mean": [0.5] * 3, "std": [0.25] * 3}}
    for _ in range(draw(st.integers(0, 4))):
        what = draw(st.sampled_from(["field", "option", "prep", "rename", "drop", "shape", "dtype", "nan",
                                     "value", "add"]))
        key = draw(st.sampled_from(KEYS))
        if what == "field":
            config[draw(st.sampled_from(["format", "arch", "options", "classes", "preprocessing", "metrics",
                                         "dataset"]))] = draw(garbage)
        elif what == "option" and isinstance(config.get("options"), dict):
            config["options"][draw(st.sampled_from(OPTION_NAMES))] = draw(garbage)
        elif what == "prep" and isinstance(config.get("preprocessing"), dict):
            config["preprocessing"][draw(st.sampled_from(["resize", "crop", "mean", "std", "extra"]))] = draw(
                st.one_of(garbage, st.lists(numbers, max_size=5)))
        elif what == "rename" and key in state:
            state[draw(st.sampled_from([key + ".x", "module." + key, key.replace("layer", "layer9"),
                                        key.replace(".0.", ".99999."), "x" * 400]))] = state.pop(key)
        elif what == "drop":
            state.pop(key, None)
        elif what == "shape":
            state[key] = draw(tensors())
        elif what in ("dtype", "nan") and key in state and (
                not isinstance(state[key], torch.Tensor) or state[key].numel() > 10**6):
            continue  # a broadcast view would be materialised here, by the generator, not the library
        elif what == "dtype" and key in state:
            state[key] = state[key].to(draw(st.sampled_from(DTYPES)))
        elif what == "nan" and key in state and state[key].is_floating_point() and state[key].numel():
            state[key] = state[key].clone().view(-1).index_fill(0, torch.tensor([0]), float("nan")).view(
                state[key].shape)
        elif what == "value":
            state[key] = draw(garbage)
        elif what == "add":
            state[draw(st.text(max_size=20))] = draw(tensors())
    wrapper = draw(st.sampled_from(["own", "own", "bare", "state_dict", "model", "module"]))
    if wrapper == "own":
        return {**config, "state_dict": state}
    if wrapper == "bare":
        return state
    if wrapper == "module":
        return {f"module.{k}": v for k, v in state.items()}
    return {wrapper: state, "epoch": draw(garbage)}


def _checkpoint_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def checkpoint_property(examples: int) -> None:
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True, print_blob=True,
              suppress_health_check=list(HealthCheck))
    @given(obj=checkpoints(), cut=st.one_of(st.none(), st.integers(0, 200_000)))
    def check(obj: Any, cut: int | None) -> None:
        data = _checkpoint_bytes(obj)
        if cut is not None:
            data = data[:cut]
        try:
            ckpt = read_checkpoint(data, name="fuzz.pt")
            model = model_from_checkpoint(ckpt)
            require_rgb(model, ckpt.source)
            assert sum(p.numel() for p in model.parameters()) <= MAX_PARAMETERS
            prep = preprocessing_for(model)
            with torch.no_grad():
                result = model(torch.zeros(1, 3, min(prep.crop, 64), min(prep.crop, 64)))
            assert result.shape == (1, model.fc.out_features)
            _record(result, None)
        except WeightsError as exc:
            _record(None, exc)

    check()


PROPERTIES = {"images": image_property, "checkpoints": checkpoint_property}


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def main(argv: list[str]) -> int:
    name, examples = argv[0], int(argv[1])
    warnings.simplefilter("ignore")  # Pillow warns about every damaged tag: the outcome is what is checked
    torch.set_num_threads(1)  # one core per property: the suite runs on 2 cores beside other work
    print("READY " + json.dumps({"rss": _peak_rss_bytes()}), flush=True)
    PROPERTIES[name](examples)
    print("RESULT " + json.dumps({"property": name, "examples": sum(outcomes.values()),
                                  "outcomes": dict(outcomes), "largest_result_elements": largest,
                                  "peak_rss": _peak_rss_bytes()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
