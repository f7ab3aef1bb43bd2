"""Checkpoint files on disk: which paths a ``ckpt:`` id may open (the runs and uploads folders only), the
uploads folder under its quota, a file's model, and how the app names a file to a visitor.

A ``ckpt:`` id names its file relative to the runs folder (``ckpt:<run id>/plain-20.pt``,
``ckpt:uploads/<sha256>.pt``): links and notebooks then carry no server path and stay valid on another machine
or replica with the same runs folder. An absolute path inside the folders is accepted too (the command line, a
notebook)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import threading
from pathlib import Path

from torch import nn

from ...errors import WeightsError, clip
from ...settings import UPLOAD_QUOTA_ENV, runs_dir, upload_quota_bytes, uploads_dir
from .architecture import model_from_checkpoint, require_rgb
from .format import CHECKPOINT_SUFFIXES, MAX_PATH_CHARS, read_checkpoint


def load_checkpoint_file(path: str | os.PathLike[str]) -> nn.Module:
    """The model in the checkpoint file at ``path`` (any folder), eval mode; WeightsError when it is unusable.

    For local, trusted paths (the command line, a notebook); ``load_model`` confines ``ckpt:`` ids to the
    runs and uploads folders first.
    """
    ckpt = read_checkpoint(path)
    model = model_from_checkpoint(ckpt)
    require_rgb(model, ckpt.source)
    resolved = Path(path).resolve()
    model.card.weights_id = checkpoint_id(resolved)
    model.card.weights_label = checkpoint_title(resolved)  # weights.weights_label's words for a ckpt: id
    return model.eval()


def checkpoint_file(value: str) -> Path:
    """The existing file of a ``ckpt:`` id's value (:func:`resolve_checkpoint_path`), or WeightsError naming the id,
    never the server's path to it: an upload can be dropped by the quota under another visitor's session."""
    path = resolve_checkpoint_path(value)
    if not path.is_file():
        raise WeightsError(f"There is no checkpoint '{clip(value, 120)}' in the runs or uploads folders; pick one in "
                           "the Weights box or upload the file.")
    return path


def checkpoint_id(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> str:
    """The ``ckpt:`` id of a file: relative to the runs folder (``root``, default :func:`runs_dir`) when it lies
    inside it, else its absolute path."""
    resolved = Path(path).resolve()
    root = Path(root).resolve() if root is not None else runs_dir().resolve()
    if resolved.is_relative_to(root) and resolved != root:
        return f"ckpt:{resolved.relative_to(root).as_posix()}"
    return f"ckpt:{resolved}"


def _when(moment: _dt.datetime) -> str:
    return f"{moment.day} {moment:%b %H:%M}"


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def checkpoint_title(path: str | os.PathLike[str]) -> str:
    """How the app names a checkpoint file to a visitor, never by its path: "Plain-20 from the race of 6 Dec
    17:00, stopped at step 50" (a run's, from its folder's records), "uploaded checkpoint of 6 Dec 17:05", else
    "checkpoint <file name>"."""
    resolved = Path(path).resolve()
    try:
        if resolved.is_relative_to(uploads_dir().resolve()):
            return f"uploaded checkpoint of {_when(_dt.datetime.fromtimestamp(resolved.stat().st_mtime))}"
    except OSError:
        return f"checkpoint {resolved.name}"
    # A final checkpoint sits in its run's folder; a periodic one in <run>/checkpoints/step-N/.
    root = runs_dir().resolve()
    for folder in (resolved.parent, *resolved.parents[1:3]):
        if not folder.is_relative_to(root) or folder == root:  # never read above the runs folder
            return f"checkpoint {resolved.name}"
        info = _json(folder / "config.json")
        if isinstance(info.get("config"), dict):
            break
    else:
        return f"checkpoint {resolved.name}"
    file = resolved.relative_to(folder).as_posix()
    manifest, summary = _json(folder / "checkpoint.json"), _json(folder / "summary.json")
    entries = [e for e in (manifest.get("checkpoints") or []) + (summary.get("checkpoints") or [])
               if isinstance(e, dict)]
    label = next((str(e["label"]) for e in entries if e.get("file") == file and "label" in e), resolved.stem)
    status = str(summary.get("status", "")) if file == resolved.name else ""
    periodic = re.fullmatch(r"step-(\d+)", resolved.parent.name)  # checkpoints/step-000050/: its own step
    step = summary.get("steps") if status else int(periodic.group(1)) if periodic else manifest.get("step")
    phrase = (f"{status} at step {step}" if status in ("finished", "stopped") else
              f"{status} (step {step})" if status else f"saved at step {step}" if step is not None else "")
    try:
        race = f"the race of {_when(_dt.datetime.fromisoformat(str(info.get('created'))))}"
    except ValueError:
        race = "a race"
    return f"{label} from {race}" + (f", {phrase}" if phrase else "")


OUTSIDE_FOLDERS = "Checkpoints can only be opened from the runs or uploads folders."


def resolve_checkpoint_path(value: str | os.PathLike[str]) -> Path:
    """The real path of a ``ckpt:`` value, if it lies inside the runs or uploads folder; else WeightsError.

    A relative value is taken from the runs folder (the ids the app writes). Symlinks and ``..`` are resolved
    first, so neither leads outside. Anything else (another folder, an over-long path, a file type that is not a
    checkpoint) gets the same sentence,
    ``OUTSIDE_FOLDERS``, which says nothing about whether such a file exists. The file need not exist:
    ``read_checkpoint`` says so for paths inside the folders.
    """
    try:
        text = os.fspath(value)
        if not isinstance(text, str) or not text or len(text) > MAX_PATH_CHARS or "\x00" in text:
            raise ValueError(text)
        path = Path(text)
        if not path.is_absolute():  # an id relative to the runs folder (what the app writes)
            path = runs_dir() / path
        if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
            raise ValueError(text)
        resolved = path.resolve()
        roots = {runs_dir().resolve(), uploads_dir().resolve()}
        if not any(resolved.is_relative_to(root) and resolved != root for root in roots):
            raise ValueError(text)
    except Exception:  # noqa: BLE001 - every refusal is the same sentence (OSError, loops, bad text alike)
        raise WeightsError(OUTSIDE_FOLDERS) from None
    return resolved


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
    suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,12}", suffix) else ""  # .safetensors has 11
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
