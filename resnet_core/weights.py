"""Weights for every net: seeded random init, torchvision ImageNet weights, checkpoint files.

Weights ids (strings, also in the app's URL as ``weights=``):

``"random"``
    the seeded random initialisation of ``build(name, seed=0)``;
``"tv:<ENUM MEMBER>"``
    torchvision's ImageNet weights, e.g. ``"tv:IMAGENET1K_V2"``, through torchvision's weight enums and
    torch.hub's cache (``torch.hub.get_dir()/checkpoints``): used from the cache, downloaded when the
    network allows, otherwise a sentence naming the file and the folder where it can be placed;
``"ckpt:<path>"`` (relative to the runs folder, as the app writes it, or absolute inside it)
    a checkpoint file, always read with ``torch.load(weights_only=True)`` so a pickle cannot run code;
``"demo:<key>"``
    an embedded demo model trained on the Shapes set (``demo:resnet20``, ``demo:plain20``), read from the
    package by the same checkpoint code (:mod:`resnet_core.demo`).

Checkpoints may be a bare state_dict, ``{"state_dict": ...}``, ``{"model": ...}`` (``module.`` prefixes from
DataParallel/DDP stripped), or the project's own format (``{"format": "resnet-explorer/1", "arch", "options",
"state_dict", "classes", "preprocessing", ...}``). Without a config the architecture is inferred from the
tensors' names and shapes. Reading and writing checkpoints lives in :mod:`resnet_core.checkpoints`,
directories and the network probe in :mod:`resnet_core.settings`, ``Preprocessing`` in
:mod:`resnet_core.images`; their names stay importable from here.
"""

from __future__ import annotations

import os
import pickle
import re
import threading
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from .card import ModelCard, card_of  # noqa: F401 - ModelCard: the type load_model fills

# Checkpoints are read and written in ``checkpoints``; their names stay importable from here.
from .checkpoints.architecture import (  # noqa: F401
    _BLOCK_KEY,
    CheckpointMismatch,
    InferredArchitecture,
    _fit_problems,
    _infer_architecture,
    _input_channels,
    _model_from_checkpoint,
    infer_architecture,
    load_state_dict_checked,
    model_from_checkpoint,
    require_rgb,
)
from .checkpoints.files import (  # noqa: F401
    OUTSIDE_FOLDERS,
    _enforce_quota,
    checkpoint_file,
    load_checkpoint_file,
    resolve_checkpoint_path,
    save_uploaded_checkpoint,
    store_upload,
)
from .checkpoints.format import (  # noqa: F401
    _PREFIXES,
    _WRAPPER_KEYS,
    CHECKPOINT_SUFFIXES,
    FORMAT,
    KEY_CONVENTIONS,
    MAX_BLOCKS_PER_STAGE,
    MAX_CHECKPOINT_BYTES,
    MAX_CLASS_NAME_CHARS,
    MAX_CLASSES,
    MAX_ELEMENTS,
    MAX_GROUPS,
    MAX_IN_CHANNELS,
    MAX_KEY_CHARS,
    MAX_PARAMETERS,
    MAX_PATH_CHARS,
    MAX_PICKLE_BYTES,
    MAX_STAGES,
    MAX_TENSORS,
    MAX_WIDTH,
    Checkpoint,
    KeyConvention,
    _check_tensors,
    _container_problem,
    _extract_state_dict,
    _own_format,
    _strip_prefixes,
    extract_state_dict,
    read_checkpoint,
)
from .errors import WeightsError
from .errors import clip as _clip
from .images import MAX_RESIZE, MAX_STATISTIC, MIN_STD, Preprocessing, _preprocessing_problem  # noqa: F401
from .models import ARCHITECTURES, build, display_name, get_spec
from .settings import (  # noqa: F401 - directories, the network probe and the upload quota: settings' now
    DEFAULT_UPLOAD_QUOTA_MB,
    UPLOAD_QUOTA_ENV,
    network_available,
    runs_dir,
    upload_quota_bytes,
    uploads_dir,
)

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


# --------------------------------------------------------------------------------- what a model expects
def preprocessing_for(model: nn.Module) -> Preprocessing:
    """``model.preprocessing`` when weights/checkpoint set it; else ImageNet 224 or CIFAR 32 by the stem."""
    prep = card_of(model).preprocessing
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
    names = card_of(model).class_names
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


# ------------------------------------------------------------------------------------------ weights ids
def parse_weights_id(weights: str) -> tuple[str, str]:
    """``"random"`` -> ("random", ""), ``"tv:IMAGENET1K_V2"`` -> ("tv", "IMAGENET1K_V2"), ``"ckpt:/p"`` -> ("ckpt", "/p"),
    ``"demo:resnet20"`` -> ("demo", "resnet20") (an unknown demo key is a WeightsError naming the choices)."""
    if weights == "random":
        return "random", ""
    kind, sep, value = weights.partition(":")
    if sep and kind in ("tv", "ckpt") and value:
        return kind, value
    if sep and kind == "demo" and value:
        from .demo import demo_model  # demo shares this floor (it reads checkpoints): imported when used

        return kind, demo_model(value).key
    raise WeightsError(f"'{_clip(weights)}' is not a weights choice; use 'random', 'tv:<torchvision weights name>', "
                       "'demo:resnet20' or 'ckpt:<path to a checkpoint file>'.")


def torchvision_weights_enum(arch: str) -> Any | None:
    """torchvision's weights enum for ``arch`` (e.g. ``ResNet50_Weights``), or None when it has none."""
    from torchvision.models import get_model_weights

    if arch not in ARCHITECTURES or not get_spec(arch).torchvision:
        return None
    try:
        return get_model_weights(arch)
    except ValueError:
        return None


def weights_choices(arch: str, options: Mapping[str, Any] | None = None) -> list[str]:
    """Weights ids offered for ``arch``: "random", every torchvision enum member (V1, V2 ...), then the
    embedded Shapes demos trained as ``arch`` (only those matching ``options``' residual/plain choice and
    width when ``options`` is given)."""
    from .demo import demo_ids

    enum = torchvision_weights_enum(arch)
    tv = [f"tv:{member.name}" for member in enum] if enum is not None else []
    return ["random", *tv, *demo_ids(arch, None if options is None else dict(options))]


def weights_label(weights: str) -> str:
    """Short human label for a weights id."""
    kind, value = parse_weights_id(weights)
    if kind == "random":
        return "random init (seed 0)"
    if kind == "tv":
        return f"torchvision {value}"
    if kind == "demo":
        from .demo import demo_model

        return demo_model(value).weights_label
    from .checkpoints import checkpoint_title

    try:
        return checkpoint_title(resolve_checkpoint_path(value))
    except WeightsError:
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


# How sentences name torch.hub's cache: visitors read them, so never the server's own path (``path`` has it).
HUB_FOLDER = "torch.hub's checkpoints folder ($TORCH_HOME/hub/checkpoints)"


def hub_checkpoint_path(arch: str, member: str) -> Path:
    """Where torch.hub caches these weights: ``torch.hub.get_dir()/checkpoints/<file name of the URL>``."""
    url = _torchvision_member(arch, member).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


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
            f"download {weights.url} and save it as {path.name} in {HUB_FOLDER}, then reload.",
            path=path, url=weights.url)
    try:
        return torch.hub.load_state_dict_from_url(weights.url, model_dir=str(path.parent), map_location="cpu",
                                                  progress=progress, check_hash=True, weights_only=True,
                                                  file_name=path.name)
    except (pickle.UnpicklingError, EOFError, RuntimeError, zipfile.BadZipFile) as exc:
        if not path.exists():  # the download itself failed (e.g. hash mismatch): nothing is left behind
            raise WeightsError(f"Downloading the {label} weights failed ({exc}); try again later.") from None
        raise WeightsError(f"The cached file {path.name} in {HUB_FOLDER} is damaged or not a weights file; "
                           "delete it and reload to download it again.") from None
    except OSError as exc:  # URLError, HTTPError, connection reset
        raise OfflineWeightsError(
            f"Downloading the {label} weights failed ({exc}): download {weights.url} and save it as "
            f"{path.name} in {HUB_FOLDER}, then reload.", path=path, url=weights.url) from None


# -------------------------------------------------------------------------------------------- one entry point
TORCHVISION_OPTIONS = {"residual": True, "shortcut": "B", "stride_on": "3x3", "preact": False}


def load_model(arch: str, options: Mapping[str, Any] | None = None, weights: str = "random", *,
               download: bool = True, progress: bool = True) -> nn.Module:
    """The model for a sidebar choice, in eval mode, its ``card`` (``ModelCard``) filled: label, weights id
    and label, class names, preprocessing and notes.

    ``random``: ``build(arch, seed=0, **options)``. ``tv:<member>``: torchvision's architecture (the options
    that torchvision weights cannot have are overridden, and said so in ``weights_notes``). ``ckpt:<path>``:
    the checkpoint's own architecture, which overrides ``arch`` and ``options``. ``demo:<key>``: the embedded
    Shapes model's checkpoint, read from the package by the same code (its architecture overrides too).
    """
    options = dict(options or {})
    kind, value = parse_weights_id(weights)
    if kind in ("random", "tv"):  # costed on the meta device first: BudgetError before any weight exists
        from .costs import estimate_memory, require_within_budget

        require_within_budget(estimate_memory(arch, "build", options=options if kind == "random" else {}))
    if kind == "random":
        model = build(arch, seed=0, **options)
    elif kind == "tv":
        member = _torchvision_member(arch, value)
        ignored = [f"{k}={options[k]!r}" for k, v in TORCHVISION_OPTIONS.items() if k in options and options[k] != v]
        ignored += [f"{k}={options[k]!r}" for k in ("width", "num_classes", "in_channels", "zero_init_residual")
                    if k in options and options[k] not in (None, False)]
        model = build(arch, seed=0)
        load_state_dict_checked(model, load_torchvision_state_dict(arch, value, download=download,
                                                                   progress=progress), display_name(arch))
        transform = member.transforms()
        model.card.class_names = list(member.meta["categories"])
        model.card.trained_on = "imagenet"
        model.card.preprocessing = Preprocessing(int(transform.resize_size[0]), int(transform.crop_size[0]),
                                                 tuple(transform.mean), tuple(transform.std))
        model.card.notes = ([f"torchvision weights need the standard {display_name(arch)}: ignored "
                             f"{', '.join(ignored)}"] if ignored else [])
    elif kind == "demo":
        from .demo import load_demo_model

        model = load_demo_model(value)
    else:
        # Only the runs and uploads folders: a weights id can come from a link (local callers that trust
        # their paths, like the CLI, use load_checkpoint_file).
        model = load_checkpoint_file(checkpoint_file(value))
    model.card.weights_id, model.card.weights_label = weights, weights_label(weights)
    return model.eval()


def __getattr__(name: str) -> Any:
    """``main`` (``python -m resnet_core.weights FILE``) moved to ``cli``; still reachable here through this
    lazy lookup (PEP 562), which is not an import: weights stays below the command line."""
    if name == "main":
        from .cli import weights_main

        return weights_main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":  # python -m resnet_core.weights FILE: the CLI, as before
    from resnet_core.cli import weights_main

    raise SystemExit(weights_main())
