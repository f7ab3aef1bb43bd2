"""Weights for every net: seeded random init, torchvision ImageNet weights, checkpoint files.

Weights ids (strings, also in the app's URL as ``weights=``):

``"random"``
    the seeded random initialisation of ``build(name, seed=0)``;
``"tv:<ENUM MEMBER>"``
    torchvision's ImageNet weights, e.g. ``"tv:IMAGENET1K_V2"``, through torchvision's weight enums and
    torch.hub's cache (``torch.hub.get_dir()/checkpoints``): used from the cache, downloaded when the
    network allows, otherwise a sentence naming the file and the folder where it can be placed;
``"ckpt:<absolute path>"``
    a checkpoint file, always read with ``torch.load(weights_only=True)`` so a pickle cannot run code.

Checkpoints may be a bare state_dict, ``{"state_dict": ...}``, ``{"model": ...}`` (``module.`` prefixes from
DataParallel/DDP stripped), or the project's own format (``{"format": "resnet-explorer/1", "arch", "options",
"state_dict", "classes", "preprocessing", ...}``). Without a config the architecture is inferred from the
tensors' names and shapes.
"""

from __future__ import annotations

import io
import math
import numbers
import os
import pickle
import pickletools
import re
import socket
import threading
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlparse

import pandas as pd
import torch
from torch import nn

from .blocks import SHORTCUT_OPTIONS, STRIDE_PLACEMENTS
from .models import ARCHITECTURES, ResNet, build, display_name, get_spec, instantiate

FORMAT = "resnet-explorer/1"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".tar")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


# ------------------------------------------------------------------------------------------------- limits
# Every number a checkpoint (or a Preprocessing) carries is checked against these before it is used, so a
# file of a few MB cannot ask for a model, an image or an error message of many GB.
MAX_CHECKPOINT_BYTES = 1024 * 2**20  # the largest torchvision ResNet file (ResNeXt-101 32x8d) is 340 MB
MAX_PICKLE_BYTES = 16 * 2**20  # the pickled structure beside the tensors (ResNet-152's is about 100 KB)
MAX_TENSORS = 5_000  # entries in a state_dict (ResNet-1202 has about 3,000)
MAX_ELEMENTS = 400_000_000  # all tensors together (1.6 GB as float32; Wide ResNet-101-2 has 127 M)
MAX_PARAMETERS = 250_000_000  # the model a config or inferred plan asks for, counted on the meta device
MAX_KEY_CHARS = 300
MAX_CLASSES = 100_000
MAX_CLASS_NAME_CHARS = 200
MAX_WIDTH = 512  # base channels (64 for ImageNet nets, 16 for CIFAR nets)
MAX_STAGES = 4
MAX_BLOCKS_PER_STAGE = 200  # ResNet-1202 (CIFAR, n=200)
MAX_GROUPS = 256
MAX_IN_CHANNELS = 64
MAX_RESIZE = 1024  # preprocessing's resize and crop (torchvision's ResNets use 232-256 and 224)
MAX_STATISTIC = 1000.0  # |mean| and std, for pixels scaled to [0, 1]
MIN_STD = 1e-6
MAX_PATH_CHARS = 1024


def _clip(text: object, limit: int = 80) -> str:
    """``text`` as one printable line of at most ``limit`` characters: names from a file must neither grow a
    message nor break it into lines."""
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in str(text)[: limit + 1])
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _some(names: Sequence[object], shown: int = 3) -> str:
    """"'a', 'b', 'c' ... and 12 more": a bounded list of names for one sentence."""
    listed = ", ".join(f"'{_clip(n, 60)}'" for n in list(names[:shown]))
    return listed + (f" ... and {len(names) - shown} more" if len(names) > shown else "")


# ------------------------------------------------------------------------------------------------- errors
class WeightsError(ValueError):
    """A user-facing problem with weights; ``str(error)`` is one sentence saying what to do."""


# --------------------------------------------------------------------------------------------- preprocessing
def _whole(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or value != int(value) or not 1 <= value <= MAX_RESIZE:
        raise WeightsError(f"{name} must be a whole number of pixels from 1 to {MAX_RESIZE}, got {_clip(value, 40)}")
    return int(value)


def _statistics(values: Any, name: str) -> tuple[float, ...]:
    if isinstance(values, torch.Tensor):
        values = values.tolist() if values.numel() <= 16 else [None] * 17
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise WeightsError(f"{name} must be a list of numbers, got a {type(values).__name__}")
    if len(values) != 3:
        raise WeightsError(f"{name} needs one value per input channel (3, for RGB images), got {len(values)}")
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
        raise WeightsError(f"{name} must hold numbers, got {_clip(list(values), 60)}")
    floats = tuple(float(v) for v in values)
    if not all(math.isfinite(v) and abs(v) <= MAX_STATISTIC for v in floats):
        raise WeightsError(f"{name} must be finite numbers within +-{MAX_STATISTIC:g}, got {_clip(floats, 60)}")
    return floats


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes model input: resize the shorter side, centre-crop, normalise per channel.

    Validated when made (a WeightsError naming the statistic): ``1 <= crop <= resize <= MAX_RESIZE``, one
    finite mean and std per RGB channel, ``MIN_STD <= std <= MAX_STATISTIC``. So ``preprocess`` never fails
    in torch on bad statistics, and a checkpoint's bad statistics are blamed on the checkpoint.
    """

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    IMAGENET: ClassVar[Preprocessing]
    CIFAR: ClassVar[Preprocessing]

    def __post_init__(self) -> None:
        problem = _preprocessing_problem(self.resize, self.crop, self.mean, self.std)
        if problem is not None:
            raise WeightsError(f"The preprocessing is unusable: {problem}.")
        object.__setattr__(self, "resize", int(self.resize))
        object.__setattr__(self, "crop", int(self.crop))
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    @classmethod
    def shapes(cls, image_size: int = 32) -> Preprocessing:
        """The built-in Shapes set at ``image_size`` px, normalised with its own training statistics."""
        mean, std = _shapes_stats(image_size)
        return cls(image_size, image_size, mean, std)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        """From ``to_dict``'s form; raises WeightsError (missing key or bad value), nothing else."""
        if not isinstance(data, Mapping):
            raise WeightsError(f"The preprocessing is unusable: it is a {type(data).__name__}, not a mapping.")
        missing = [k for k in ("resize", "crop", "mean", "std") if k not in data]
        if missing:
            raise WeightsError(f"The preprocessing is unusable: it lacks {', '.join(missing)}.")
        return cls(data["resize"], data["crop"], data["mean"], data["std"])

    def to_dict(self) -> dict[str, Any]:
        return {"resize": self.resize, "crop": self.crop, "mean": list(self.mean), "std": list(self.std)}

    def describe(self) -> str:
        mean = ", ".join(f"{m:.3f}" for m in self.mean)
        std = ", ".join(f"{s:.3f}" for s in self.std)
        return f"resize {self.resize}, centre crop {self.crop}, mean ({mean}), std ({std})"


def _preprocessing_problem(resize: Any, crop: Any, mean: Any, std: Any) -> str | None:
    """What is wrong with these preprocessing values (a phrase), or None when they are usable."""
    try:
        resize, crop = _whole(resize, "resize"), _whole(crop, "crop")
        if crop > resize:
            return f"the centre crop ({crop}) is larger than the resize ({resize})"
        _statistics(mean, "mean")
        stds = _statistics(std, "std")
    except WeightsError as exc:
        return str(exc)
    if not all(s >= MIN_STD for s in stds):
        return f"std must be positive (at least {MIN_STD:g}) for every channel, got {_clip(stds, 60)}"
    return None


Preprocessing.IMAGENET = Preprocessing(256, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
Preprocessing.CIFAR = Preprocessing(32, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


def _shapes_stats(image_size: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    from .data import shapes_stats  # local: data is optional for everything else here (and cached there)

    return shapes_stats(image_size)


def preprocessing_for(model: nn.Module) -> Preprocessing:
    """``model.preprocessing`` when weights/checkpoint set it; else ImageNet 224 or CIFAR 32 by the stem."""
    prep = getattr(model, "preprocessing", None)
    if isinstance(prep, Preprocessing):
        return prep
    if isinstance(prep, Mapping):
        return Preprocessing.from_dict(prep)
    return Preprocessing.CIFAR if getattr(model, "stem_kind", "imagenet") == "cifar" else Preprocessing.IMAGENET


def _num_classes(model: nn.Module) -> int:
    fc = getattr(model, "fc", None)
    return int(fc.out_features) if isinstance(fc, nn.Linear) else 0


def class_names_for(model: nn.Module) -> list[str]:
    """Class names: from the weights/checkpoint if set, else ImageNet / CIFAR-10 names by class count."""
    names = getattr(model, "class_names", None)
    count = _num_classes(model)
    if names is not None and (count == 0 or len(names) == count):
        return list(names)
    if count == 1000:
        from torchvision.models._meta import _IMAGENET_CATEGORIES

        return list(_IMAGENET_CATEGORIES)
    if count == 10 and getattr(model, "stem_kind", "") == "cifar":
        return list(CIFAR10_CLASSES)
    return [f"class {i}" for i in range(count)]


# ------------------------------------------------------------------------------------------ more errors
class OfflineWeightsError(WeightsError):
    """torchvision weights are not cached and cannot be downloaded; ``path`` is where the file belongs."""

    def __init__(self, message: str, *, path: Path, url: str) -> None:
        super().__init__(message)
        self.path, self.url = path, url


class CheckpointMismatch(WeightsError):
    """The checkpoint's tensors do not fit the model: missing, unexpected and wrong-shape keys."""

    MAX_ROWS = 200

    def __init__(self, message: str, *, missing: list[str], unexpected: list[str],
                 wrong_shape: list[tuple[str, tuple[int, ...], tuple[int, ...]]]) -> None:
        super().__init__(message)
        self.missing, self.unexpected, self.wrong_shape = missing, unexpected, wrong_shape

    def table(self) -> pd.DataFrame:
        """One row per problem key: key, problem, checkpoint shape, model shape."""
        rows = [{"key": k, "problem": "missing from the checkpoint", "checkpoint shape": "",
                 "model shape": ""} for k in self.missing]
        rows += [{"key": k, "problem": "not in the model", "checkpoint shape": "", "model shape": ""}
                 for k in self.unexpected]
        rows += [{"key": k, "problem": "wrong shape", "checkpoint shape": _clip(tuple(a)),
                  "model shape": str(tuple(b))} for k, a, b in self.wrong_shape]
        if len(rows) > self.MAX_ROWS:  # a page shows this table: keep it readable and small
            rows = [*rows[: self.MAX_ROWS], {"key": f"... and {len(rows) - self.MAX_ROWS} more", "problem": "",
                                             "checkpoint shape": "", "model shape": ""}]
        return pd.DataFrame(rows, columns=["key", "problem", "checkpoint shape", "model shape"])


# ------------------------------------------------------------------------------------------ weights ids
def parse_weights_id(weights: str) -> tuple[str, str]:
    """``"random"`` -> ("random", ""), ``"tv:IMAGENET1K_V2"`` -> ("tv", "IMAGENET1K_V2"), ``"ckpt:/p"`` -> ("ckpt", "/p")."""
    if weights == "random":
        return "random", ""
    kind, sep, value = weights.partition(":")
    if sep and kind in ("tv", "ckpt") and value:
        return kind, value
    raise WeightsError(f"'{_clip(weights)}' is not a weights choice; use 'random', 'tv:<torchvision weights name>' "
                       "or 'ckpt:<path to a checkpoint file>'.")


def torchvision_weights_enum(arch: str) -> Any | None:
    """torchvision's weights enum for ``arch`` (e.g. ``ResNet50_Weights``), or None when it has none."""
    from torchvision.models import get_model_weights

    if arch not in ARCHITECTURES or not get_spec(arch).torchvision:
        return None
    try:
        return get_model_weights(arch)
    except ValueError:
        return None


def weights_choices(arch: str) -> list[str]:
    """Weights ids offered for ``arch``: "random", then every torchvision enum member (V1, V2 ...)."""
    enum = torchvision_weights_enum(arch)
    return ["random"] + ([f"tv:{member.name}" for member in enum] if enum is not None else [])


def weights_label(weights: str) -> str:
    """Short human label for a weights id."""
    kind, value = parse_weights_id(weights)
    if kind == "random":
        return "random init (seed 0)"
    if kind == "tv":
        return f"torchvision {value}"
    return f"checkpoint {Path(value).name}"


def _torchvision_member(arch: str, member: str) -> Any:
    enum = torchvision_weights_enum(arch)
    if enum is None:
        raise WeightsError(f"torchvision has no ImageNet weights for {display_name(arch)}; choose random "
                           "weights or a checkpoint.")
    try:
        return enum[member]
    except KeyError:
        names = ", ".join(m.name for m in enum)
        raise WeightsError(f"torchvision has no weights '{member}' for {display_name(arch)}; "
                           f"choose one of {names}.") from None


def hub_checkpoint_path(arch: str, member: str) -> Path:
    """Where torch.hub caches these weights: ``torch.hub.get_dir()/checkpoints/<file name of the URL>``."""
    url = _torchvision_member(arch, member).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def network_available(host: str = "download.pytorch.org", port: int = 443, timeout: float = 3.0) -> bool:
    """Can we open a TCP connection to ``host`` within ``timeout`` seconds (DNS included)?

    The lookup runs in a daemon thread joined with a timeout, so a hanging resolver can't stall the app.
    Offline mode (``RESNET_EXPLORER_OFFLINE`` 1/true/yes, the one rule in ``data.offline_mode``) answers
    False at once.
    """
    from .data import offline_mode  # local, like _shapes_stats: one rule for data and weights

    if offline_mode():
        return False
    result: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(result and result[0])


ProgressCallback = Callable[[int, int], None]  # (bytes done, bytes total or 0 when unknown)
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")


_DOWNLOAD_LOCKS: dict[Path, threading.Lock] = {}
_DOWNLOAD_LOCKS_GUARD = threading.Lock()


def _download_lock(destination: Path) -> threading.Lock:
    key = destination.resolve()
    with _DOWNLOAD_LOCKS_GUARD:
        return _DOWNLOAD_LOCKS.setdefault(key, threading.Lock())


def download_file(url: str, destination: Path, hash_prefix: str | None = None,
                  on_progress: ProgressCallback | None = None, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``destination`` in 1 MiB chunks, reporting progress; atomic and hash-checked.

    Like ``torch.hub.download_url_to_file`` (a temporary file renamed at the end; the SHA-256 must start
    with ``hash_prefix``), plus a callback so the app can draw its own progress bar. Nothing is left behind on
    failure. Raises WeightsError on a hash mismatch, OSError on network errors.

    Concurrent calls for one destination (two browser sessions) take turns on a per-destination lock; one
    that finds the file already there (the other one just finished) returns it without downloading. Each
    download writes its own uniquely named temporary file in the destination's folder.
    """
    import hashlib
    import tempfile
    import urllib.request

    destination.parent.mkdir(parents=True, exist_ok=True)
    with _download_lock(destination):
        if destination.exists():
            return destination
        fd, name = tempfile.mkstemp(dir=destination.parent, prefix=destination.name + ".", suffix=".partial")
        os.close(fd)
        _fetch(url, destination, Path(name), hashlib.sha256(), hash_prefix, on_progress, timeout,
               urllib.request.urlopen)
    return destination


def _fetch(url: str, destination: Path, partial: Path, digest: Any, hash_prefix: str | None,
           on_progress: ProgressCallback | None, timeout: float, urlopen: Callable[..., Any]) -> None:
    """Stream ``url`` into ``partial``, check the hash, rename onto ``destination``; ``partial`` never stays."""
    try:
        with urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if on_progress is not None:
                    on_progress(done, total)
        if hash_prefix and not digest.hexdigest().startswith(hash_prefix):
            raise WeightsError(f"The download of {destination.name} is corrupt (its SHA-256 does not start with "
                               f"{hash_prefix}); try again.")
        partial.replace(destination)
    finally:
        partial.unlink(missing_ok=True)


def download_torchvision_weights(arch: str, member: str, on_progress: ProgressCallback | None = None) -> Path:
    """Fetch torchvision's weights file into torch.hub's cache (checked against the hash in its name)."""
    url = _torchvision_member(arch, member).url
    path = hub_checkpoint_path(arch, member)
    if path.exists():
        return path
    match = _HASH_IN_NAME.search(path.name)
    return download_file(url, path, match.group(1) if match else None, on_progress)


def load_torchvision_state_dict(arch: str, member: str, *, download: bool = True,
                                progress: bool = True) -> dict[str, torch.Tensor]:
    """torchvision's state_dict for ``arch``/``member`` through torch.hub's cache.

    A cached file is used as is; otherwise it is downloaded (``progress`` shows torch.hub's progress bar)
    when ``download`` and the network allow. Raises OfflineWeightsError naming the file and the folder.
    """
    weights = _torchvision_member(arch, member)
    path = hub_checkpoint_path(arch, member)
    label = f"{display_name(arch)} {member}"
    if not path.exists() and not (download and network_available(urlparse(weights.url).hostname or "")):
        raise OfflineWeightsError(
            f"The {label} weights are not in the torch hub cache and cannot be downloaded (no network): "
            f"download {weights.url} and save it as {path.name} in {path.parent}, then reload.",
            path=path, url=weights.url)
    try:
        return torch.hub.load_state_dict_from_url(weights.url, model_dir=str(path.parent), map_location="cpu",
                                                  progress=progress, check_hash=True, weights_only=True,
                                                  file_name=path.name)
    except (pickle.UnpicklingError, EOFError, RuntimeError, zipfile.BadZipFile) as exc:
        if not path.exists():  # the download itself failed (e.g. hash mismatch): nothing is left behind
            raise WeightsError(f"Downloading the {label} weights failed ({exc}); try again later.") from None
        raise WeightsError(f"The cached file {path} is damaged or not a weights file; delete it and reload "
                           "to download it again.") from None
    except OSError as exc:  # URLError, HTTPError, connection reset
        raise OfflineWeightsError(
            f"Downloading the {label} weights failed ({exc}): download {weights.url} and save it as "
            f"{path.name} in {path.parent}, then reload.", path=path, url=weights.url) from None


# ---------------------------------------------------------------------------------------------- checkpoints
@dataclass
class Checkpoint:
    """A checkpoint read safely: its tensors and whatever config it carried (None where it had none)."""

    state_dict: dict[str, torch.Tensor]
    source: str
    arch: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    classes: list[str] | None = None
    preprocessing: Preprocessing | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net", "weights")
_PREFIXES = ("module.", "_orig_mod.", "model.")


def _tensor_dict(obj: Mapping[str, Any]) -> dict[str, torch.Tensor] | None:
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    return tensors if tensors and len(tensors) >= len(obj) / 2 else None


def _strip_prefixes(state_dict: dict[str, torch.Tensor], notes: list[str]) -> dict[str, torch.Tensor]:
    """Remove wrapper prefixes (DataParallel/DDP ``module.``, torch.compile ``_orig_mod.``, Lightning ``model.``)."""
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if state_dict and all(k.startswith(prefix) for k in state_dict):
                state_dict = {k[len(prefix):]: v for k, v in state_dict.items()}
                notes.append(f"removed the '{prefix}' prefix from every key")
                changed = True
    return state_dict


_OPTION_CHOICES: dict[str, tuple[Any, ...]] = {
    "residual": (True, False), "preact": (True, False), "zero_init_residual": (True, False),
    "shortcut": SHORTCUT_OPTIONS, "stride_on": STRIDE_PLACEMENTS,
}
_OPTION_RANGES = {"num_classes": (1, MAX_CLASSES), "width": (1, MAX_WIDTH), "in_channels": (1, MAX_IN_CHANNELS)}


def _option_problem(key: str, value: Any) -> str | None:
    """Why ``key=value`` is not a build option this project takes (a phrase), or None."""
    if key in _OPTION_CHOICES:
        choices = _OPTION_CHOICES[key]
        if isinstance(value, bool) != isinstance(choices[0], bool) or value not in choices:
            return f"option {key} must be one of {', '.join(map(str, choices))}, not {_clip(repr(value), 40)}"
        return None
    if key in _OPTION_RANGES:
        low, high = _OPTION_RANGES[key]
        if key == "width" and value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
            return f"option {key} must be a whole number from {low} to {high}, not {_clip(repr(value), 40)}"
        return None
    return f"option {_clip(repr(key), 40)} is not one this project builds with"


def _check_tensors(state_dict: Mapping[Any, Any], source: str) -> None:
    """Bounded count, names, layout, dtype and total size; no NaN/inf (naming the first tensor holding one)."""
    if len(state_dict) > MAX_TENSORS:
        raise WeightsError(f"The {source} holds {len(state_dict):,} tensors, more than the {MAX_TENSORS:,} any "
                           "ResNet has; choose a ResNet checkpoint.")
    total = 0
    for key, tensor in state_dict.items():
        if not isinstance(key, str) or len(key) > MAX_KEY_CHARS:
            raise WeightsError(f"The {source} has a tensor named {_clip(repr(key), 60)}, which is not a layer "
                               "name; choose a ResNet checkpoint.")
        if tensor.layout != torch.strided or tensor.is_quantized or tensor.is_nested:
            raise WeightsError(f"The {source} stores the tensor '{_clip(key)}' as {_clip(tensor.layout)} "
                               "rather than a dense tensor; save the model's plain state_dict.")
        if tensor.dtype not in _FLOAT_DTYPES and tensor.dtype not in _INTEGER_DTYPES:
            raise WeightsError(f"The {source} holds the tensor '{_clip(key)}' as {_clip(tensor.dtype)}, which a "
                               "ResNet's weights never are; save the weights as float32 or float16.")
        total += tensor.numel()
        if total > MAX_ELEMENTS:
            raise WeightsError(f"The {source} holds more than {MAX_ELEMENTS:,} numbers, more than any "
                               "ResNet this project builds; choose a smaller checkpoint.")
    for key, tensor in state_dict.items():
        if tensor.dtype in _FLOAT_DTYPES and not _finite(tensor):
            raise WeightsError(f"The {source} holds NaN or infinite values in the tensor '{_clip(key)}' (the run "
                               "that saved it diverged); use a checkpoint from before it diverged.")


def _finite(tensor: torch.Tensor) -> bool:
    """No NaN/inf in ``tensor``, at a cost bounded by the bytes stored: a broadcast view (stride 0) of a few
    stored numbers can claim billions of elements, so such a view is checked through its storage."""
    stored = tensor.untyped_storage().nbytes() // tensor.element_size()
    if tensor.numel() > stored:
        tensor = torch.empty(0, dtype=tensor.dtype).set_(tensor.untyped_storage(), 0, (stored,))
    return bool(torch.isfinite(tensor).all())


_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
_INTEGER_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool)  # counters


def _own_format(obj: Mapping[str, Any], source: str, notes: list[str]) -> Checkpoint:
    """Our own format, every field checked against bounds before use: a bad one raises WeightsError naming it."""
    def bad(field_name: str, what: str) -> WeightsError:
        return WeightsError(f"The {source} is marked {FORMAT} but its '{field_name}' {what}; re-save it with "
                            "the trainer or save a plain state_dict with torch.save(model.state_dict(), path).")

    state = obj.get("state_dict")
    if not isinstance(state, Mapping) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise bad("state_dict", "is missing or is not a mapping of names to tensors")
    arch = obj.get("arch")
    if arch is not None and not isinstance(arch, str):
        raise bad("arch", f"is a {type(arch).__name__}, not an architecture name")
    if arch is not None and arch not in ARCHITECTURES:
        raise bad("arch", f"names {_clip(repr(arch), 40)}, which is not an architecture this project builds")
    options = obj.get("options") or {}
    if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
        raise bad("options", "is not a mapping of option names to values")
    for key, value in list(options.items())[:20]:
        problem = _option_problem(key, value)
        if problem:
            raise bad("options", f"are invalid ({problem})")
    if len(options) > 20:
        raise bad("options", f"hold {len(options)} entries, more than the build options there are")
    if options.get("in_channels", 3) != 3:
        raise WeightsError(f"The {source} holds a network for {options['in_channels']}-channel input, but ResNet "
                           "Explorer feeds RGB images (3 channels); use a checkpoint trained on colour images.")
    classes = obj.get("classes")
    if classes is not None and classes != []:
        if isinstance(classes, str | bytes) or not isinstance(classes, Sequence):
            raise bad("classes", "is not a list of class names")
        if len(classes) > MAX_CLASSES:
            raise bad("classes", f"holds {len(classes):,} names, more than the {MAX_CLASSES:,} allowed")
        if not all(isinstance(c, str) and len(c) <= MAX_CLASS_NAME_CHARS for c in classes):
            raise bad("classes", f"is not a list of class names (each text of at most {MAX_CLASS_NAME_CHARS} "
                      "characters)")
    prep = obj.get("preprocessing")
    preprocessing = None
    if prep:
        if not isinstance(prep, Mapping):
            raise bad("preprocessing", "is not a mapping")
        missing = [k for k in ("resize", "crop", "mean", "std") if k not in prep]
        if missing:
            raise bad("preprocessing", f"lacks {', '.join(missing)}")
        problem = _preprocessing_problem(prep["resize"], prep["crop"], prep["mean"], prep["std"])
        if problem:
            raise bad("preprocessing", f"statistics are unusable ({problem})")
        preprocessing = Preprocessing.from_dict(prep)
    meta: dict[str, Any] = {}
    if isinstance(obj.get("dataset"), str) and len(obj["dataset"]) <= 200:
        meta["dataset"] = obj["dataset"]
    metrics = obj.get("metrics")
    if isinstance(metrics, Mapping) and len(metrics) <= 100 and all(
            isinstance(k, str) and len(k) <= 100 and (v is None or isinstance(v, bool | numbers.Real)
                                                    or isinstance(v, str) and len(v) <= 200)
            for k, v in metrics.items()):
        meta["metrics"] = dict(metrics)
    elif "metrics" in obj:
        notes.append("ignored the checkpoint's metrics (not a short mapping of names to numbers)")
    _check_tensors(state, source)
    return Checkpoint(
        state_dict=_strip_prefixes(dict(state), notes), source=source, arch=arch, options=dict(options),
        classes=list(classes) if classes else None, preprocessing=preprocessing, meta=meta, notes=notes)


def extract_state_dict(obj: Any, source: str = "checkpoint") -> Checkpoint:
    """Turn what ``torch.load`` returned into a Checkpoint (bare, wrapped, DDP-prefixed or our own format).

    Anything malformed raises WeightsError (one sentence), never a bare KeyError or TypeError.
    """
    try:
        return _extract_state_dict(obj, source)
    except WeightsError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever shape a foreign file has, the user gets one sentence
        raise WeightsError(f"The {source} is not a checkpoint ResNet Explorer can read ({type(exc).__name__}: "
                           f"{_clip(exc)}); save a state_dict with torch.save(model.state_dict(), path).") from None


def _extract_state_dict(obj: Any, source: str) -> Checkpoint:
    if not isinstance(obj, Mapping):
        raise WeightsError(f"The {source} holds a {type(obj).__name__}, not a state_dict; save it with "
                           "torch.save(model.state_dict(), path).")
    notes: list[str] = []
    if obj.get("format") == FORMAT:
        return _own_format(obj, source, notes)
    state_dict = None
    for key in _WRAPPER_KEYS:
        if isinstance(obj.get(key), Mapping):
            state_dict = _tensor_dict(obj[key])
            if state_dict is not None:
                notes.append(f"read the tensors under '{key}'")
                break
    if state_dict is None:
        state_dict = _tensor_dict(obj)
    if state_dict is None:
        raise WeightsError(f"The {source} holds no tensors ResNet Explorer recognises (top-level keys: "
                           f"{_some(list(obj), 6)}); save a state_dict with torch.save(model.state_dict(), path).")
    _check_tensors(state_dict, source)
    return Checkpoint(state_dict=_strip_prefixes(state_dict, notes), source=source, notes=notes)


def _container_problem(handle: Any) -> str | None:
    """Why the file's container is unsafe to hand to torch.load (a phrase), or None; reads headers only.

    torch.save writes an uncompressed zip: a compressed entry could inflate to any size (a zip bomb), and the
    pickle beside the tensors (data.pkl) is small in every real checkpoint, while a large one can expand into
    many times its size in Python objects. The legacy (pre-zip) format starts with its pickles: their size is
    read without unpickling.
    """
    if zipfile.is_zipfile(handle):
        handle.seek(0)
        with zipfile.ZipFile(handle) as archive:
            entries = archive.infolist()
            if len(entries) > 2 * MAX_TENSORS + 16:
                return f"it is a zip archive of {len(entries):,} entries"
            if any(e.compress_type != zipfile.ZIP_STORED for e in entries):
                return "it is a compressed zip archive, which torch.save never writes"
            if sum(e.file_size for e in entries) > MAX_CHECKPOINT_BYTES:
                return "its entries together are larger than the size limit"
            if any(e.filename.endswith(".pkl") and e.file_size > MAX_PICKLE_BYTES for e in entries):
                return f"its pickled structure is larger than {MAX_PICKLE_BYTES // 2**20} MB"
        return None
    handle.seek(0)
    for _ in range(4):  # magic number, protocol, system info, then the object itself
        start = handle.tell()
        try:
            for opcode, _arg, position in pickletools.genops(handle):
                if position - start > MAX_PICKLE_BYTES:
                    return f"its pickled structure is larger than {MAX_PICKLE_BYTES // 2**20} MB"
                if opcode.name == "STOP":
                    break
        except Exception:  # noqa: BLE001 - not a pickle stream: torch.load will say so in its own words
            return None
    return None


def read_checkpoint(source: str | os.PathLike[str] | bytes, name: str | None = None) -> Checkpoint:
    """Read a checkpoint file or uploaded bytes with ``torch.load(weights_only=True)`` -- never anything else.

    A pickle that would import or call Python code is refused with a WeightsError (the code does not run).
    Files over ``MAX_CHECKPOINT_BYTES`` are refused from their size before a byte is read, and the container
    is checked (``_container_problem``) before torch.load sees it.
    """
    given = name or (None if isinstance(source, bytes) else Path(source).name)
    label = f"file '{_clip(given, 60)}'" if given else "uploaded file"  # reads "The {label} ..."
    if isinstance(source, bytes):
        size = len(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise WeightsError(f"The checkpoint file {_clip(path, 200)} does not exist; check the path or upload "
                               "the file.")
        size = path.stat().st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise WeightsError(f"The {label} is {size / 2**20:,.0f} MB, above the {MAX_CHECKPOINT_BYTES // 2**20} MB "
                           "limit for checkpoints; save only the model's state_dict, or a smaller network.")
    try:
        with io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb") as handle:
            problem = _container_problem(handle)
            if problem is None:
                handle.seek(0)
                obj = torch.load(handle, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # The safe unpickler refuses imports ("GLOBAL ...", classes) and calls; anything else is garbage bytes.
        text = str(exc).lower()
        if not any(word in text for word in ("global", "class", "reduce", "build", "blocked")):
            raise WeightsError(f"The {label} is not a PyTorch checkpoint (torch.load cannot read it, or it is "
                               "truncated); upload a .pt/.pth file written by torch.save.") from None
        raise WeightsError(
            f"The {label} contains Python objects or code besides tensors, so it was refused for safety "
            "(loaded with weights_only=True); re-save it with torch.save(model.state_dict(), path).") from None
    except Exception:  # noqa: BLE001 - torch.load's parsers raise many types on bad bytes; all mean "unreadable"
        raise WeightsError(f"The {label} is not a PyTorch checkpoint (torch.load cannot read it, or it is "
                           "truncated); upload a .pt/.pth file written by torch.save.") from None
    if problem is not None:
        raise WeightsError(f"The {label} was refused before loading because {problem}; save it with "
                           "torch.save(model.state_dict(), path).")
    return extract_state_dict(obj, label)


@dataclass(frozen=True)
class InferredArchitecture:
    """An architecture read off a state_dict's names and shapes."""

    block: str
    layers: tuple[int, ...]
    stem: str
    width: int
    groups: int
    width_per_group: int
    num_classes: int
    in_channels: int
    residual: bool
    shortcut: str
    preact: bool
    name: str | None  # the registered architecture with this plan, if any
    notes: tuple[str, ...] = ()

    def build_options(self) -> dict[str, Any]:
        """Options for ``build(self.name, **options)`` (only meaningful when ``name`` is set)."""
        spec = get_spec(self.name) if self.name else None
        opts: dict[str, Any] = {"residual": self.residual, "shortcut": self.shortcut, "preact": self.preact,
                                "num_classes": self.num_classes}
        if self.in_channels != 3:
            opts["in_channels"] = self.in_channels
        if spec is None or self.width != (64 if spec.stem == "imagenet" else 16):
            opts["width"] = self.width
        return opts

    def build(self) -> ResNet:
        """The (randomly initialised, seed 0) model this state_dict belongs to."""
        if self.name is not None:
            return build(self.name, seed=0, **self.build_options())
        model = instantiate(lambda: ResNet(self.block, self.layers, stem=self.stem, num_classes=self.num_classes,
                                           in_channels=self.in_channels, width=self.width, groups=self.groups,
                                           width_per_group=self.width_per_group, residual=self.residual,
                                           shortcut=self.shortcut, preact=self.preact), seed=0)
        model.arch_name = "custom"
        model.arch_options = {}
        return model

    def build_meta(self) -> ResNet:
        """The same network on the meta device (shapes only, nothing allocated, no initialisation)."""
        with torch.device("meta"):
            if self.name is not None:
                return build(self.name, **self.build_options())
            return ResNet(self.block, self.layers, stem=self.stem, num_classes=self.num_classes,
                          in_channels=self.in_channels, width=self.width, groups=self.groups,
                          width_per_group=self.width_per_group, residual=self.residual,
                          shortcut=self.shortcut, preact=self.preact)

    @property
    def label(self) -> str:
        if self.name is not None:
            base = display_name(self.name, self.residual)
        else:
            depth = (2 if self.block == "basic" else 3) * sum(self.layers) + 2
            base = f"{'ResNet' if self.residual else 'Plain'}-{depth} ({'-'.join(map(str, self.layers))})"
        extras = [f"width {self.width}"] if self.stem == "cifar" and self.width != 16 else []
        extras += ["pre-activation"] if self.preact else []
        extras += [f"shortcut {self.shortcut}"] if self.residual else []
        extras += [f"{self.num_classes} classes"]
        return f"{base}, {', '.join(extras)}"


_BLOCK_KEY = re.compile(r"^layer(\d+)\.(\d+)\.")


def infer_architecture(state_dict: Mapping[str, torch.Tensor]) -> InferredArchitecture:
    """Read block type, blocks per stage, width, groups/width_per_group, classes, stem, pre-activation and
    shortcut option off the tensors. Raises WeightsError when the state_dict is not a ResNet's (also when a
    tensor it needs is missing or has the wrong shape)."""
    try:
        return _infer_architecture(state_dict)
    except WeightsError:
        raise
    except KeyError as exc:
        raise WeightsError(f"The weights lack the tensor {_clip(repr(exc.args[0]))} that a ResNet of this kind has, so the "
                           "architecture cannot be read off them; choose a complete ResNet checkpoint.") from None
    except Exception as exc:  # noqa: BLE001 - odd shapes (0-d tensors, zero channels) mean "not a ResNet"
        raise WeightsError(f"The weights' tensors do not have a ResNet's shapes ({type(exc).__name__}: {_clip(exc)}); "
                           "choose a ResNet checkpoint.") from None


def _infer_architecture(state_dict: Mapping[str, torch.Tensor]) -> InferredArchitecture:
    if "conv1.weight" not in state_dict or "fc.weight" not in state_dict:
        raise WeightsError(f"These weights do not look like a ResNet (no conv1.weight / fc.weight; first keys: "
                           f"{_some(list(state_dict), 4)}); choose a ResNet checkpoint.")
    conv1 = state_dict["conv1.weight"]
    if conv1.dim() != 4 or state_dict["fc.weight"].dim() != 2:
        raise WeightsError(f"conv1.weight has {conv1.dim()} dimensions and fc.weight "
                           f"{state_dict['fc.weight'].dim()} (a ResNet's have 4 and 2); choose a ResNet checkpoint.")
    width, in_channels, kernel = int(conv1.shape[0]), int(conv1.shape[1]), int(conv1.shape[-1])
    stems = {7: "imagenet", 3: "cifar"}
    if kernel not in stems:
        raise WeightsError(f"The first convolution is {kernel}x{kernel}; ResNet stems are 7x7 (ImageNet) or "
                           "3x3 (CIFAR), so these weights are not a ResNet's.")
    stem = stems[kernel]
    counts: dict[int, int] = {}
    blocks_with_projection: set[tuple[int, int]] = set()
    for key in state_dict:
        match = _BLOCK_KEY.match(key)
        if match:
            stage, index = int(match.group(1)), int(match.group(2))
            counts[stage] = max(counts.get(stage, 0), index + 1)
            if key.startswith(f"layer{stage}.{index}.downsample."):
                blocks_with_projection.add((stage - 1, index))
    if not counts or sorted(counts) != list(range(1, len(counts) + 1)):
        raise WeightsError("The weights have no consecutive layer1, layer2, ... stages, so they are not a "
                           "ResNet's; choose a ResNet checkpoint.")
    layers = tuple(counts[s] for s in sorted(counts))
    # Bounds before anything is built: a few-MB file must not be able to ask for a huge network.
    if len(layers) > MAX_STAGES or max(layers) > MAX_BLOCKS_PER_STAGE:
        raise WeightsError(f"The weights describe {len(layers)} stages of up to {max(layers):,} blocks, beyond "
                           f"the {MAX_STAGES} stages of {MAX_BLOCKS_PER_STAGE} blocks any ResNet here has; "
                           "choose a ResNet checkpoint.")
    if not 1 <= width <= MAX_WIDTH or not 1 <= in_channels <= MAX_IN_CHANNELS:
        raise WeightsError(f"The first convolution maps {in_channels} input channels to {width}, beyond the "
                           f"{MAX_IN_CHANNELS} inputs and {MAX_WIDTH} channels allowed; choose a ResNet checkpoint.")
    block = "bottleneck" if "layer1.0.conv3.weight" in state_dict else "basic"
    preact = "bn_final.weight" in state_dict or "bn1.weight" not in state_dict
    groups, width_per_group = 1, 64
    if block == "bottleneck":
        conv2 = state_dict["layer1.0.conv2.weight"]
        mid = int(conv2.shape[0])
        groups = max(1, mid // int(conv2.shape[1]))
        width_per_group = (mid // groups) * 64 // width
        if groups > MAX_GROUPS or not 1 <= width_per_group <= 64 * MAX_WIDTH // width:
            raise WeightsError(f"The first bottleneck has {mid} channels in {groups} groups, beyond what any "
                               "ResNet or ResNeXt here has; choose a ResNet checkpoint.")
    expansion = 4 if block == "bottleneck" else 1
    shape_changes: set[tuple[int, int]] = set()
    inplanes = width
    for stage in range(len(layers)):
        out = width * 2**stage * expansion
        if stage > 0 or inplanes != out:
            shape_changes.add((stage, 0))
        inplanes = out
    every_block = {(s, i) for s, n in enumerate(layers) for i in range(n)}
    notes: list[str] = []
    residual = True
    if blocks_with_projection == every_block:
        shortcut = "C"
    elif blocks_with_projection == shape_changes:
        shortcut = "B"
    elif not blocks_with_projection:
        # Option-A shortcuts and no shortcuts both leave no tensors: the tensors cannot tell them apart.
        if stem == "cifar":
            shortcut = "A"
            notes.append("no projection weights: assumed option-A (zero-padded identity) shortcuts, "
                         "which hold no weights; a plain twin would look the same")
        else:
            residual, shortcut = False, "B"
            notes.append("no projection weights: assumed the plain twin (no shortcuts); option-A shortcuts "
                         "would look the same")
    else:
        shortcut = "B"
        notes.append("projection weights in an irregular set of blocks; assumed option B")
    num_classes = int(state_dict["fc.weight"].shape[0])
    if not 1 <= num_classes <= MAX_CLASSES:
        raise WeightsError(f"The classifier (fc.weight) has {num_classes:,} outputs; a checkpoint may have 1 to "
                           f"{MAX_CLASSES:,} classes, so choose a classification ResNet checkpoint.")
    name = None
    for spec in ARCHITECTURES.values():
        if (spec.block, spec.layers, spec.stem, spec.groups, spec.width_per_group) == (
                block, layers, stem, groups, width_per_group):
            name = spec.name
            break
    return InferredArchitecture(block, layers, stem, width, groups, width_per_group, num_classes, in_channels,
                                residual, shortcut, preact, name, tuple(notes))


def _fit_problems(own: Mapping[str, torch.Tensor], state_dict: Mapping[str, torch.Tensor], label: str) -> None:
    """Raise CheckpointMismatch unless ``state_dict`` has ``own``'s keys and shapes (``own`` may be on meta)."""
    missing = [k for k in own if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in own]
    wrong = [(k, tuple(state_dict[k].shape), tuple(own[k].shape)) for k in own
             if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = [f"{len(missing)} missing", f"{len(unexpected)} unexpected", f"{len(wrong)} wrong-shape"]
        lists = [f"{what}: {_some(keys)}" for what, keys in (
            ("missing", missing), ("unexpected", unexpected), ("wrong shape", [w[0] for w in wrong])) if keys]
        raise CheckpointMismatch(
            f"The weights do not fit {label}: {', '.join(parts)} keys ({'; '.join(lists)}); pick the "
            "matching architecture or a checkpoint saved from it.",
            missing=missing, unexpected=unexpected, wrong_shape=wrong)


def load_state_dict_checked(model: nn.Module, state_dict: Mapping[str, torch.Tensor], label: str) -> None:
    """``load_state_dict(strict=True)`` after listing every missing, unexpected and wrong-shape key.

    A BatchNorm ``num_batches_tracked`` counter absent from old checkpoints is not a mismatch (it is a
    step counter, not a weight). The error's message names at most three keys per kind ("... and N more").
    """
    own = model.state_dict()
    _fit_problems(own, state_dict, label)
    full = dict(state_dict)
    for key, value in own.items():
        if key.endswith("num_batches_tracked") and key not in full:
            full[key] = torch.zeros_like(value)
    model.load_state_dict(full, strict=True)


def model_from_checkpoint(ckpt: Checkpoint) -> nn.Module:
    """Build the checkpoint's architecture (its config, else inferred) and load its tensors (eval mode).

    Raises WeightsError (one sentence) for anything that does not fit; never a bare KeyError/TypeError.
    """
    try:
        return _model_from_checkpoint(ckpt)
    except WeightsError:
        raise
    except Exception as exc:  # noqa: BLE001 - a malformed checkpoint must not escape as a traceback
        raise WeightsError(f"The {ckpt.source} cannot be turned into a model ({type(exc).__name__}: {_clip(exc)}); "
                           "save a state_dict with torch.save(model.state_dict(), path).") from None


def _input_channels(model: nn.Module) -> int:
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return int(conv.in_channels) if conv is not None else 3


def require_rgb(model: nn.Module, source: str = "checkpoint") -> None:
    """Refuse a model whose first convolution does not take 3 channels: every page feeds it RGB images."""
    channels = _input_channels(model)
    if channels != 3:
        raise WeightsError(f"The {source} holds a network for {channels}-channel input, but ResNet Explorer feeds "
                           "RGB images (3 channels); use a checkpoint trained on colour images.")


def _model_from_checkpoint(ckpt: Checkpoint) -> nn.Module:
    if isinstance(ckpt.arch, str) and ckpt.arch in ARCHITECTURES:
        arch, options = ckpt.arch, dict(ckpt.options)

        def make(seed: int | None) -> nn.Module:
            return build(arch, seed=seed, **options)

        label = display_name(ckpt.arch, ckpt.options.get("residual", True))
        notes = list(ckpt.notes)
    else:
        inferred = infer_architecture(ckpt.state_dict)

        def make(seed: int | None) -> nn.Module:
            return inferred.build() if seed is not None else inferred.build_meta()

        label = inferred.label
        notes = [*ckpt.notes, "architecture inferred from the tensors", *inferred.notes]
    # Shapes first, on the meta device (no memory): the size and the fit are known before anything is allocated.
    try:
        with torch.device("meta"):
            skeleton = make(None)
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"The {ckpt.source} asks for {_clip(label)} with options the project cannot build "
                           f"({_clip(str(exc).rstrip('.'))}); re-save it with the trainer.") from None
    parameters = sum(p.numel() for p in skeleton.parameters())
    if parameters > MAX_PARAMETERS:
        raise WeightsError(f"The {ckpt.source} asks for {_clip(label)} with {parameters / 1e6:,.0f} M parameters, "
                           f"above the {MAX_PARAMETERS / 1e6:.0f} M limit; choose a smaller network's checkpoint.")
    require_rgb(skeleton, ckpt.source)
    _fit_problems(skeleton.state_dict(), ckpt.state_dict, label)
    model = make(0)
    load_state_dict_checked(model, ckpt.state_dict, label)
    model.class_names = ckpt.classes
    if ckpt.preprocessing is not None:
        model.preprocessing = ckpt.preprocessing
    model.arch_label = label
    model.weights_notes = notes
    model.checkpoint_meta = ckpt.meta
    return model.eval()


# -------------------------------------------------------------------------------------------- one entry point
TORCHVISION_OPTIONS = {"residual": True, "shortcut": "B", "stride_on": "3x3", "preact": False}


def load_model(arch: str, options: Mapping[str, Any] | None = None, weights: str = "random", *,
               download: bool = True, progress: bool = True) -> nn.Module:
    """The model for a sidebar choice, in eval mode, with ``class_names``, ``preprocessing``, ``weights_id``,
    ``arch_label`` and ``weights_notes`` set.

    ``random``: ``build(arch, seed=0, **options)``. ``tv:<member>``: torchvision's architecture (the options
    that torchvision weights cannot have are overridden, and said so in ``weights_notes``). ``ckpt:<path>``:
    the checkpoint's own architecture, which overrides ``arch`` and ``options``.
    """
    options = dict(options or {})
    kind, value = parse_weights_id(weights)
    if kind in ("random", "tv"):  # costed on the meta device first: BudgetError before any weight exists
        from .describe import estimate_memory, require_within_budget

        require_within_budget(estimate_memory(arch, "build", options=options if kind == "random" else {}))
    if kind == "random":
        model = build(arch, seed=0, **options)
        model.arch_label, model.weights_notes = display_name(arch, options.get("residual", True)), []
    elif kind == "tv":
        member = _torchvision_member(arch, value)
        ignored = [f"{k}={options[k]!r}" for k, v in TORCHVISION_OPTIONS.items() if k in options and options[k] != v]
        ignored += [f"{k}={options[k]!r}" for k in ("width", "num_classes", "in_channels", "zero_init_residual")
                    if k in options and options[k] not in (None, False)]
        model = build(arch, seed=0)
        load_state_dict_checked(model, load_torchvision_state_dict(arch, value, download=download,
                                                                   progress=progress), display_name(arch))
        model.class_names = list(member.meta["categories"])
        transform = member.transforms()
        model.preprocessing = Preprocessing(int(transform.resize_size[0]), int(transform.crop_size[0]),
                                            tuple(transform.mean), tuple(transform.std))
        model.arch_label = display_name(arch)
        model.weights_notes = ([f"torchvision weights need the standard {display_name(arch)}: ignored "
                                f"{', '.join(ignored)}"] if ignored else [])
    else:
        # Only the runs and uploads folders: a weights id can come from a link (local callers that trust
        # their paths, like the CLI, use load_checkpoint_file).
        model = load_checkpoint_file(resolve_checkpoint_path(value))
    model.weights_id = weights
    model.weights_label = weights_label(weights)
    return model.eval()


def load_checkpoint_file(path: str | os.PathLike[str]) -> nn.Module:
    """The model in the checkpoint file at ``path`` (any folder), eval mode; WeightsError when it is unusable.

    For local, trusted paths (the command line, a notebook); ``load_model`` confines ``ckpt:`` ids to the
    runs and uploads folders first.
    """
    ckpt = read_checkpoint(path)
    model = model_from_checkpoint(ckpt)
    require_rgb(model, ckpt.source)
    model.weights_id = f"ckpt:{Path(path).resolve()}"
    model.weights_label = weights_label(model.weights_id)
    return model.eval()


def uploads_dir() -> Path:
    """Where uploaded checkpoints are kept: ``uploads/`` in ``runs.runs_dir()`` (``$RESNET_EXPLORER_RUNS``
    or ``runs/``)."""
    from .runs import runs_dir  # local: runs imports the training engine, which this module does not need

    return runs_dir() / "uploads"


OUTSIDE_FOLDERS = "Checkpoints can only be opened from the runs or uploads folders."


def resolve_checkpoint_path(value: str | os.PathLike[str]) -> Path:
    """The real path of a ``ckpt:`` value, if it lies inside the runs or uploads folder; else WeightsError.

    Symlinks and ``..`` are resolved first, so neither leads outside. Anything else (another folder, a
    relative or over-long path, a file type that is not a checkpoint) gets the same sentence,
    ``OUTSIDE_FOLDERS``, which says nothing about whether such a file exists. The file need not exist:
    ``read_checkpoint`` says so for paths inside the folders.
    """
    from .runs import runs_dir

    try:
        text = os.fspath(value)
        if not isinstance(text, str) or not text or len(text) > MAX_PATH_CHARS or "\x00" in text:
            raise ValueError(text)
        path = Path(text)
        if not path.is_absolute() or path.suffix.lower() not in CHECKPOINT_SUFFIXES:
            raise ValueError(text)
        resolved = path.resolve()
        roots = {runs_dir().resolve(), uploads_dir().resolve()}
        if not any(resolved.is_relative_to(root) and resolved != root for root in roots):
            raise ValueError(text)
    except Exception:  # noqa: BLE001 - every refusal is the same sentence (OSError, loops, bad text alike)
        raise WeightsError(OUTSIDE_FOLDERS) from None
    return resolved


UPLOAD_QUOTA_ENV = "RESNET_EXPLORER_UPLOAD_QUOTA_MB"
DEFAULT_UPLOAD_QUOTA_MB = 512


def upload_quota_bytes() -> int:
    """The uploads folder's size quota: ``$RESNET_EXPLORER_UPLOAD_QUOTA_MB`` (MB) or 512 MB."""
    raw = os.environ.get(UPLOAD_QUOTA_ENV, "").strip()
    try:
        megabytes = float(raw) if raw else DEFAULT_UPLOAD_QUOTA_MB
    except ValueError:
        megabytes = DEFAULT_UPLOAD_QUOTA_MB
    if not math.isfinite(megabytes) or megabytes <= 0:
        megabytes = DEFAULT_UPLOAD_QUOTA_MB
    return int(megabytes * 2**20)


_upload_lock = threading.Lock()


def store_upload(data: bytes, filename: str, folder: Path | None = None, quota: int | None = None) -> Path:
    """Store ``data`` content-addressed (``<sha256><suffix>``) in ``folder`` (default ``uploads_dir()``)
    under a size quota, dropping the oldest files first; return the stored path.

    The same content twice is one file (stored again, it becomes the newest). A file larger than the whole
    quota raises WeightsError and nothing is written or dropped. Written atomically (temporary file, rename).
    """
    import hashlib

    folder = uploads_dir() if folder is None else folder
    quota = upload_quota_bytes() if quota is None else quota
    if len(data) > quota:
        raise WeightsError(f"The file is {len(data) / 2**20:,.1f} MB, larger than the {quota / 2**20:,.0f} MB quota "
                           f"for uploads; upload a smaller file or raise {UPLOAD_QUOTA_ENV}.")
    suffix = Path(filename).suffix.lower()
    suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""
    with _upload_lock:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{hashlib.sha256(data).hexdigest()}{suffix}"
        if target.exists():
            os.utime(target)  # now the newest: the quota drops others first
        else:
            tmp = folder / f".{target.name}.{os.getpid()}.{threading.get_ident()}.part"
            try:
                with open(tmp, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                tmp.replace(target)
            finally:
                tmp.unlink(missing_ok=True)
        _enforce_quota(folder, quota, keep=target)
    return target.resolve()


def _enforce_quota(folder: Path, quota: int, keep: Path) -> None:
    """Delete the oldest stored files (by modification time) until the folder's files fit ``quota``."""
    files = []
    for entry in folder.iterdir():
        try:
            if entry.is_file() and not entry.name.startswith("."):
                stat = entry.stat()
                files.append((stat.st_mtime, entry.name, stat.st_size, entry))
        except OSError:  # removed meanwhile by another process
            continue
    total = sum(size for _, _, size, _ in files)
    for _, _, size, entry in sorted(files):
        if total <= quota:
            break
        if entry == keep:
            continue
        entry.unlink(missing_ok=True)
        total -= size


def save_uploaded_checkpoint(data: bytes, filename: str) -> Path:
    """Validate uploaded checkpoint bytes (safe load, architecture, key check) and store them; return the path.

    Nothing is written when validation fails (the WeightsError says why). Stored content-addressed in
    ``uploads_dir()`` under the upload quota (``store_upload``): uploading the same file twice reuses one copy.
    """
    ckpt = read_checkpoint(data, name=filename)
    require_rgb(model_from_checkpoint(ckpt), ckpt.source)
    suffix = Path(filename).suffix.lower()
    return store_upload(data, f"upload{suffix if suffix in CHECKPOINT_SUFFIXES else '.pt'}")


def main(argv: list[str] | None = None) -> int:
    """``python -m resnet_core.weights FILE``: read a checkpoint safely and say what architecture it holds."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("checkpoint", help="a .pt/.pth file (read with weights_only=True)")
    args = parser.parse_args(argv)
    try:
        model = load_checkpoint_file(Path(args.checkpoint))
    except CheckpointMismatch as exc:
        print(exc)
        print(exc.table().to_string(index=False))
        return 1
    except WeightsError as exc:
        print(exc)
        return 1
    print(f"{model.arch_label}: {sum(p.numel() for p in model.parameters()):,} parameters, "
          f"{len(class_names_for(model))} classes, preprocessing {preprocessing_for(model).describe()}")
    for note in model.weights_notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
