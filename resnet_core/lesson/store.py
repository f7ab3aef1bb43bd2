"""The lesson's measurements kept on disk, so that each is made once per machine instead of once per process.

Steps 6 and 7 (loss landscapes, lesion studies) take 10-30 s of CPU on the pair of small nets. Every server
process, replica and notebook kernel that shows them would otherwise measure them again: a teacher's restart,
a second replica, the test suite's four servers. An entry is found only by what the numbers depend on:

- the nets: each one's label (it is in the frames), its module tree as ``repr`` prints it (block types,
  strides, shortcuts) and its state dict (names, dtypes, shapes and bytes);
- the measuring code: every ``.py`` file of ``resnet_core`` (a change anywhere misses, which is only slower)
  and the versions of torch, numpy and pandas;
- the step's name, the input tensors (dtype, shape and bytes) and the step's settings (plain values only:
  :meth:`TrainedPair.remember` keeps anything else in memory alone).

What is not in the key changes only the last bits of a float: the number of threads, a batch split to fit the
memory budget. Such an entry is as good as a new measurement.

Entries are ``.npz`` files read with ``allow_pickle=False`` (numbers, booleans and strings only: nothing in
the folder can run code), written atomically, one process measuring each entry at a time (a ``filelock`` per
entry: a second process that wants the same numbers waits for the first one's result rather than halving its
speed on a shared CPU; other entries are measured meanwhile, so a long measurement of an uploaded net on one
replica never holds up another replica's lesson). The locks only save work: two processes measuring the same
entry (a lock file pruned under them) each write the same numbers atomically. An entry
that cannot be read (truncated, hand-edited, another version's layout) is measured again and replaced; a folder
that cannot be written keeps the measurement in memory only, with one warning. The folder holds at most
``MAX_ENTRIES`` entries, the least recently used go first; only files named as this store names them are ever
removed, whatever else the folder holds. Frames are written only when they read back exactly. ``$RESNET_EXPLORER_CACHE`` chooses it
(:func:`resnet_core.settings.cache_dir`).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from filelock import FileLock, Timeout
from torch import nn

from ..settings import cache_dir

_LOGGER = logging.getLogger(__name__)
FORMAT = 1  # the entries' layout; a new layout misses the old entries instead of misreading them
MAX_ENTRIES = 64  # a few hundred kB each (a 31 x 31 landscape of two nets is the largest)
LOCK_TIMEOUT_S = 600.0  # past this a waiting process measures on its own rather than wait for a stuck one
SUFFIX, LOCK_SUFFIX = ".npz", ".lock"
_OWN_NAME = re.compile(r"^[0-9a-f]{40}\.(npz|lock)$")  # what this store writes; nothing else is pruned
PLAIN_SETTINGS = (str, int, float, bool)
_warned: set[str] = set()
_warned_lock = threading.Lock()


@lru_cache(maxsize=1)
def code_digest() -> str:
    """A digest of the measuring code: every ``.py`` file of the package, and the numeric libraries' versions."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(f"torch {torch.__version__} numpy {np.__version__} pandas {pd.__version__}".encode())
    return digest.hexdigest()


def weights_digest(models: Mapping[str, nn.Module]) -> str:
    """A digest of ``models``' labels, module trees (``repr``: layers, strides, shortcuts) and state dicts
    (parameters and buffers: names, dtypes, shapes and bytes)."""
    digest = hashlib.sha256()
    for label, model in models.items():
        digest.update(f"{label}\0{type(model).__qualname__}\0{model!r}\0".encode())
        for name, tensor in model.state_dict().items():
            value = tensor.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{name}\0{value.dtype}\0{tuple(tensor.shape)}\0".encode())
            digest.update(value.view(torch.uint8).numpy().tobytes())  # any dtype, bfloat16 included
    return digest.hexdigest()


def tensor_digests(tensors: tuple[torch.Tensor, ...]) -> tuple[str, ...]:
    """A digest of each tensor (an input batch, its labels): dtype, shape and values."""
    def one(t: torch.Tensor) -> str:
        value = t.detach().cpu().contiguous()
        head = f"{value.dtype}\0{tuple(value.shape)}\0".encode()
        return hashlib.sha256(head + value.reshape(-1).view(torch.uint8).numpy().tobytes()).hexdigest()

    return tuple(one(t) for t in tensors)


def plain_settings(settings: Mapping[str, Any]) -> bool:
    """Whether ``settings`` can be part of an entry's name: strings, numbers and booleans, whose ``repr`` is
    their whole value (a tensor's or an object's may not be)."""
    return all(isinstance(v, PLAIN_SETTINGS) for v in settings.values())


def entry_name(parts: tuple) -> str:
    """The file name of the entry for ``parts`` (strings, numbers and tuples of them: their ``repr`` is stable)."""
    return hashlib.sha256(repr((FORMAT, code_digest(), parts)).encode()).hexdigest()[:40] + SUFFIX


# ------------------------------------------------------------------------------------- frames <-> arrays
def _frames(result: Any) -> bool:
    """Only tuples of frames are written (what the lesson's steps return); :func:`_encode_exactly` then keeps
    those that read back exactly: a RangeIndex, text column names, numbers, booleans and strings, JSON attrs."""
    return isinstance(result, tuple) and bool(result) and all(isinstance(f, pd.DataFrame) for f in result)


def _to_arrays(frames: tuple[pd.DataFrame, ...]) -> dict[str, np.ndarray]:
    layout = [{"columns": list(f.columns), "dtypes": [str(f[c].dtype) for c in f.columns], "rows": len(f),
               "attrs": f.attrs} for f in frames]
    arrays = {"layout": np.array(json.dumps({"format": FORMAT, "frames": layout}))}
    for i, frame in enumerate(frames):
        for j, column in enumerate(frame.columns):
            values = frame[column]
            arrays[f"f{i}c{j}"] = (values.to_numpy() if values.dtype.kind in "biuf"
                                   else np.array(values.tolist(), dtype=np.str_))
    return arrays


def _from_arrays(arrays: Mapping[str, np.ndarray]) -> tuple[pd.DataFrame, ...]:
    layout = json.loads(str(arrays["layout"][()]))
    if layout.get("format") != FORMAT:
        raise ValueError("another layout")
    frames = []
    for i, spec in enumerate(layout["frames"]):
        columns = {}
        for j, (column, dtype) in enumerate(zip(spec["columns"], spec["dtypes"], strict=True)):
            values = arrays[f"f{i}c{j}"]
            if values.ndim != 1 or len(values) != spec["rows"]:
                raise ValueError("a column of the wrong length")
            columns[column] = pd.Series(values.tolist() if values.dtype.kind == "U" else values, dtype=dtype)
        frame = pd.DataFrame(columns) if columns else pd.DataFrame(index=pd.RangeIndex(spec["rows"]))
        frame.attrs.update(spec["attrs"])
        frames.append(frame)
    return tuple(frames)


# ---------------------------------------------------------------------------------------------- the store
def _warn_once(folder: Path, error: BaseException) -> None:
    with _warned_lock:
        if str(folder) in _warned:
            return
        _warned.add(str(folder))
    _LOGGER.warning("The measurements cannot be kept in %s (%s); each process measures them again. Set "
                    "$RESNET_EXPLORER_CACHE to a folder this user can write.", folder, error)


def read_entry(path: Path) -> tuple[pd.DataFrame, ...] | None:
    """The frames stored at ``path``, or None when there is none or it cannot be read as an entry."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            frames = _from_arrays(arrays)
    except FileNotFoundError:
        return None
    except Exception as error:  # noqa: BLE001 - any damage reads as a miss: the entry is measured again
        _LOGGER.info("measurement entry %s unreadable (%s); measuring again", path.name, error)
        return None
    try:
        os.utime(path)  # least recently used goes first when the folder is full
    except OSError:
        pass
    return frames


def _encode(frames: tuple[pd.DataFrame, ...]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **_to_arrays(frames))
    return buffer.getvalue()


def _write_entry(path: Path, data: bytes) -> None:
    from ..weights.checkpoints import atomic_write

    atomic_write(path, data)
    _prune(path.parent)


def _prune(folder: Path) -> None:
    """Keep the MAX_ENTRIES most recently used entries, and the lock files of entries kept or being measured."""
    def age(p: Path) -> float:
        try:
            return p.stat().st_mtime
        except OSError:  # removed by another process meanwhile
            return 0.0

    entries = sorted((p for p in folder.glob("*" + SUFFIX) if _OWN_NAME.match(p.name)), key=age, reverse=True)
    stale = {p.with_suffix(LOCK_SUFFIX) for p in entries[MAX_ENTRIES:]}
    kept = {p.with_suffix(LOCK_SUFFIX) for p in entries[:MAX_ENTRIES]}
    oldest = time.time() - 2 * LOCK_TIMEOUT_S  # a lock without an entry this old belongs to no measurement
    stale |= {p for p in folder.glob("*" + LOCK_SUFFIX)
              if _OWN_NAME.match(p.name) and p not in kept and age(p) < oldest}
    for old in [*entries[MAX_ENTRIES:], *stale]:
        try:
            old.unlink()
        except OSError:
            pass


def has_entry(parts: tuple, folder: Path | None = None) -> bool:
    """Whether the result for ``parts`` is kept (a readable entry, so that it would be shown at once)."""
    folder = Path(folder) if folder is not None else cache_dir()
    return read_entry(folder / entry_name(parts)) is not None


def fetch_or_measure(parts: tuple, measure: Callable[[], Any], folder: Path | None = None) -> Any:
    """The stored result for ``parts`` (see :func:`entry_name`), else ``measure()``'s, stored for the next process.

    A result that is not a tuple of plain frames is returned without being stored."""
    folder = Path(folder) if folder is not None else cache_dir()
    path = folder / entry_name(parts)
    found = read_entry(path)
    if found is not None:
        return found
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # only this user may write what is read back
        lock = FileLock(str(path.with_suffix(LOCK_SUFFIX)), timeout=LOCK_TIMEOUT_S)
        lock.acquire()
    except Timeout:
        _LOGGER.warning("another process has held %s for %.0f s; measuring here too", folder, LOCK_TIMEOUT_S)
        return _measure_and_store(path, measure)
    except OSError as error:
        _warn_once(folder, error)
        return measure()
    try:
        found = read_entry(path)  # another process may have measured it while this one waited
        return found if found is not None else _measure_and_store(path, measure)
    finally:
        lock.release()


def _measure_and_store(path: Path, measure: Callable[[], Any]) -> Any:
    result = measure()
    data = _encode_exactly(result) if _frames(result) else None
    if data is not None:
        try:
            _write_entry(path, data)
        except OSError as error:
            _warn_once(path.parent, error)
        except Exception as error:  # noqa: BLE001 - the measurement is paid for: never lose it to the store
            _LOGGER.warning("measurement entry %s not written (%s)", path.name, error)
    return result


def _encode_exactly(frames: tuple[pd.DataFrame, ...]) -> bytes | None:
    """The entry's bytes, if ``frames`` read back from them exactly (values, dtypes, names, attrs, without
    pickle); else None (e.g. a nullable column with a missing value, or attrs JSON changes), and nothing is kept."""
    try:
        data = _encode(frames)
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            again = _from_arrays(arrays)
        for a, b in zip(frames, again, strict=True):
            pd.testing.assert_frame_equal(a, b, check_exact=True)
            if a.attrs != b.attrs:
                return None
    except Exception:  # noqa: BLE001 - whatever cannot be written exactly is kept in memory only
        return None
    return data
