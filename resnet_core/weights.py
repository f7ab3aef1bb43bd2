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
import os
import pickle
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

from .models import ARCHITECTURES, ResNet, build, display_name, get_spec, instantiate

FORMAT = "resnet-explorer/1"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".tar")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


# --------------------------------------------------------------------------------------------- preprocessing
@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes model input: resize the shorter side, centre-crop, normalise per channel."""

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    IMAGENET: ClassVar[Preprocessing]
    CIFAR: ClassVar[Preprocessing]

    def __post_init__(self) -> None:
        if self.crop < 1 or self.resize < self.crop:
            raise ValueError(f"Preprocessing needs 1 <= crop <= resize, got resize={self.resize}, crop={self.crop}.")
        if len(self.mean) != len(self.std) or any(s <= 0 for s in self.std):
            raise ValueError("Preprocessing needs one positive std per mean.")
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    @classmethod
    def shapes(cls, image_size: int = 32) -> Preprocessing:
        """The built-in Shapes set at ``image_size`` px, normalised with its own training statistics."""
        mean, std = _shapes_stats(image_size)
        return cls(image_size, image_size, mean, std)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        return cls(int(data["resize"]), int(data["crop"]), tuple(data["mean"]), tuple(data["std"]))

    def to_dict(self) -> dict[str, Any]:
        return {"resize": self.resize, "crop": self.crop, "mean": list(self.mean), "std": list(self.std)}

    def describe(self) -> str:
        mean = ", ".join(f"{m:.3f}" for m in self.mean)
        std = ", ".join(f"{s:.3f}" for s in self.std)
        return f"resize {self.resize}, centre crop {self.crop}, mean ({mean}), std ({std})"


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


# ------------------------------------------------------------------------------------------------- errors
class WeightsError(ValueError):
    """A user-facing problem with weights; ``str(error)`` is one sentence saying what to do."""


class OfflineWeightsError(WeightsError):
    """torchvision weights are not cached and cannot be downloaded; ``path`` is where the file belongs."""

    def __init__(self, message: str, *, path: Path, url: str) -> None:
        super().__init__(message)
        self.path, self.url = path, url


class CheckpointMismatch(WeightsError):
    """The checkpoint's tensors do not fit the model: missing, unexpected and wrong-shape keys."""

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
        rows += [{"key": k, "problem": "wrong shape", "checkpoint shape": str(tuple(a)),
                  "model shape": str(tuple(b))} for k, a, b in self.wrong_shape]
        return pd.DataFrame(rows, columns=["key", "problem", "checkpoint shape", "model shape"])


# ------------------------------------------------------------------------------------------ weights ids
def parse_weights_id(weights: str) -> tuple[str, str]:
    """``"random"`` -> ("random", ""), ``"tv:IMAGENET1K_V2"`` -> ("tv", "IMAGENET1K_V2"), ``"ckpt:/p"`` -> ("ckpt", "/p")."""
    if weights == "random":
        return "random", ""
    kind, sep, value = weights.partition(":")
    if sep and kind in ("tv", "ckpt") and value:
        return kind, value
    raise WeightsError(f"'{weights}' is not a weights choice; use 'random', 'tv:<torchvision weights name>' "
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


def _own_format(obj: Mapping[str, Any], source: str, notes: list[str]) -> Checkpoint:
    """Our own format, every field checked: a malformed one raises WeightsError naming the field."""
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
    options = obj.get("options") or {}
    if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
        raise bad("options", "is not a mapping of option names to values")
    classes = obj.get("classes")
    if classes and (isinstance(classes, str | bytes) or not isinstance(classes, Sequence)
                    or not all(isinstance(c, str) for c in classes)):
        raise bad("classes", "is not a list of class names")
    prep = obj.get("preprocessing")
    preprocessing = None
    if prep:
        if not isinstance(prep, Mapping):
            raise bad("preprocessing", "is not a mapping")
        missing = [k for k in ("resize", "crop", "mean", "std") if k not in prep]
        if missing:
            raise bad("preprocessing", f"lacks {', '.join(missing)}")
        try:
            preprocessing = Preprocessing.from_dict(prep)
        except (TypeError, ValueError) as exc:
            raise bad("preprocessing", f"is invalid ({exc})") from None
    return Checkpoint(
        state_dict=_strip_prefixes(dict(state), notes), source=source, arch=arch, options=dict(options),
        classes=list(classes) if classes else None, preprocessing=preprocessing,
        meta={k: obj[k] for k in ("dataset", "metrics") if k in obj}, notes=notes)


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
                           f"{exc}); save a state_dict with torch.save(model.state_dict(), path).") from None


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
        keys = ", ".join(list(map(str, obj))[:6])
        raise WeightsError(f"The {source} holds no tensors ResNet Explorer recognises (top-level keys: {keys}); "
                           "save a state_dict with torch.save(model.state_dict(), path).")
    return Checkpoint(state_dict=_strip_prefixes(state_dict, notes), source=source, notes=notes)


def read_checkpoint(source: str | os.PathLike[str] | bytes, name: str | None = None) -> Checkpoint:
    """Read a checkpoint file or uploaded bytes with ``torch.load(weights_only=True)`` -- never anything else.

    A pickle that would import or call Python code is refused with a WeightsError (the code does not run).
    """
    given = name or (None if isinstance(source, bytes) else Path(source).name)
    label = f"file '{given}'" if given else "uploaded file"  # reads "The {label} ..."
    if not isinstance(source, bytes):
        path = Path(source)
        if not path.is_file():
            raise WeightsError(f"The checkpoint file {path} does not exist; check the path or upload the file.")
    handle: Any = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    try:
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
        raise WeightsError(f"The weights lack the tensor {exc.args[0]!r} that a ResNet of this kind has, so the "
                           "architecture cannot be read off them; choose a complete ResNet checkpoint.") from None
    except Exception as exc:  # noqa: BLE001 - odd shapes (0-d tensors, zero channels) mean "not a ResNet"
        raise WeightsError(f"The weights' tensors do not have a ResNet's shapes ({type(exc).__name__}: {exc}); "
                           "choose a ResNet checkpoint.") from None


def _infer_architecture(state_dict: Mapping[str, torch.Tensor]) -> InferredArchitecture:
    if "conv1.weight" not in state_dict or "fc.weight" not in state_dict:
        first = ", ".join(list(state_dict)[:4])
        raise WeightsError(f"These weights do not look like a ResNet (no conv1.weight / fc.weight; first keys: "
                           f"{first}); choose a ResNet checkpoint.")
    conv1 = state_dict["conv1.weight"]
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
    block = "bottleneck" if "layer1.0.conv3.weight" in state_dict else "basic"
    preact = "bn_final.weight" in state_dict or "bn1.weight" not in state_dict
    groups, width_per_group = 1, 64
    if block == "bottleneck":
        conv2 = state_dict["layer1.0.conv2.weight"]
        mid = int(conv2.shape[0])
        groups = max(1, mid // int(conv2.shape[1]))
        width_per_group = (mid // groups) * 64 // width
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
    name = None
    for spec in ARCHITECTURES.values():
        if (spec.block, spec.layers, spec.stem, spec.groups, spec.width_per_group) == (
                block, layers, stem, groups, width_per_group):
            name = spec.name
            break
    return InferredArchitecture(block, layers, stem, width, groups, width_per_group, num_classes, in_channels,
                                residual, shortcut, preact, name, tuple(notes))


def load_state_dict_checked(model: nn.Module, state_dict: Mapping[str, torch.Tensor], label: str) -> None:
    """``load_state_dict(strict=True)`` after listing every missing, unexpected and wrong-shape key.

    A BatchNorm ``num_batches_tracked`` counter absent from old checkpoints is not a mismatch (it is a
    step counter, not a weight).
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in own]
    wrong = [(k, tuple(state_dict[k].shape), tuple(own[k].shape)) for k in own
             if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = [f"{len(missing)} missing", f"{len(unexpected)} unexpected", f"{len(wrong)} wrong-shape"]
        example = (missing or unexpected or [w[0] for w in wrong])[0]
        raise CheckpointMismatch(
            f"The weights do not fit {label}: {', '.join(parts)} keys (for example '{example}'); pick the "
            "matching architecture or a checkpoint saved from it.",
            missing=missing, unexpected=unexpected, wrong_shape=wrong)
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
        raise WeightsError(f"The {ckpt.source} cannot be turned into a model ({type(exc).__name__}: {exc}); "
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
        try:
            model = build(ckpt.arch, seed=0, **ckpt.options)
        except (TypeError, ValueError) as exc:
            raise WeightsError(f"The {ckpt.source} names architecture {ckpt.arch} with options the project cannot "
                               f"build ({exc}).") from None
        label = display_name(ckpt.arch, ckpt.options.get("residual", True))
        notes = list(ckpt.notes)
    else:
        inferred = infer_architecture(ckpt.state_dict)
        model = inferred.build()
        label = inferred.label
        notes = [*ckpt.notes, "architecture inferred from the tensors", *inferred.notes]
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
        path = Path(value)
        if not path.is_absolute() or path.suffix.lower() not in CHECKPOINT_SUFFIXES:
            raise WeightsError(f"'{value}' is not an absolute path to a checkpoint file "
                               f"({', '.join(CHECKPOINT_SUFFIXES)}); upload the checkpoint instead.")
        ckpt = read_checkpoint(path)
        model = model_from_checkpoint(ckpt)
        require_rgb(model, ckpt.source)
    model.weights_id = weights
    model.weights_label = weights_label(weights)
    return model.eval()


def uploads_dir() -> Path:
    """Where uploaded checkpoints are kept: ``uploads/`` in ``runs.runs_dir()`` (``$RESNET_EXPLORER_RUNS``
    or ``runs/``)."""
    from .runs import runs_dir  # local: runs imports the training engine, which this module does not need

    return runs_dir() / "uploads"


def save_uploaded_checkpoint(data: bytes, filename: str) -> Path:
    """Validate uploaded checkpoint bytes (safe load, architecture, key check) and store them; return the path.

    Nothing is written when validation fails (the WeightsError says why). The name carries a content hash,
    so uploading the same file twice reuses one copy.
    """
    import hashlib

    ckpt = read_checkpoint(data, name=filename)
    require_rgb(model_from_checkpoint(ckpt), ckpt.source)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(filename).stem)[:40] or "checkpoint"
    target = uploads_dir() / f"{stem}-{hashlib.sha256(data).hexdigest()[:12]}.pt"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        tmp = target.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(target)
    return target.resolve()


def main(argv: list[str] | None = None) -> int:
    """``python -m resnet_core.weights FILE``: read a checkpoint safely and say what architecture it holds."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("checkpoint", help="a .pt/.pth file (read with weights_only=True)")
    args = parser.parse_args(argv)
    try:
        model = load_model("resnet18", weights=f"ckpt:{Path(args.checkpoint).resolve()}")
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
