"""torchvision's ImageNet weights: their enums, torch.hub's cache, and the hash-checked download.

``tv:<member>`` weights ids name a member of torchvision's weights enum for the architecture (e.g.
``tv:IMAGENET1K_V2``). The file lives in torch.hub's cache (``torch.hub.get_dir()/checkpoints``): used from the
cache, downloaded when the network allows, otherwise a sentence naming the file to place there. Sentences
name the cache as ``HUB_FOLDER``, never by the server's path (visitors read them; ``OfflineWeightsError.path``
has it).
"""

from __future__ import annotations

import os
import pickle
import re
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from ..errors import WeightsError
from ..models import ARCHITECTURES, display_name, get_spec
from ..settings import network_available

# The build options torchvision's weights were trained with: only this standard net takes them.
TORCHVISION_OPTIONS = {"residual": True, "shortcut": "B", "stride_on": "3x3", "preact": False}



class OfflineWeightsError(WeightsError):
    """torchvision weights are not cached and cannot be downloaded; ``path`` is where the file belongs."""

    def __init__(self, message: str, *, path: Path, url: str) -> None:
        super().__init__(message)
        self.path, self.url = path, url



def torchvision_weights_enum(arch: str) -> Any | None:
    """torchvision's weights enum for ``arch`` (e.g. ``ResNet50_Weights``), or None when it has none."""
    if arch not in ARCHITECTURES or not get_spec(arch).torchvision:
        return None  # without importing torchvision (1.2 s: its models and ops): the CIFAR nets' first page
    from torchvision.models import get_model_weights

    try:
        return get_model_weights(arch)
    except ValueError:
        return None



def torchvision_member(arch: str, member: str) -> Any:
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
    url = torchvision_member(arch, member).url
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
    url = torchvision_member(arch, member).url
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
    weights = torchvision_member(arch, member)
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


def cached_torchvision_weights(arch: str, options: dict[str, Any] | None = None) -> str | None:
    """``tv:<member>`` for the first of ``arch``'s torchvision weights already in torch.hub's cache, when the
    options are torchvision's standard net; else None. Looks at files only: no download, no network probe."""
    options = dict(options or {})
    if any(options.get(k, v) != v for k, v in TORCHVISION_OPTIONS.items()) or options.get("width"):
        return None
    if options.get("num_classes") not in (None, 1000):
        return None
    enum = torchvision_weights_enum(arch)
    for member in enum or ():
        if hub_checkpoint_path(arch, member.name).is_file():
            return f"tv:{member.name}"
    return None
