"""Our checkpoint format, read and written: the one place that knows what a checkpoint file holds.

Reading: always ``torch.load(weights_only=True)``, after the container is checked (size, compression, pickle
size), then every field bounded (``MAX_*``) before anything uses it. Checkpoints may be a bare state_dict,
wrapped (``{"state_dict": ...}``, ``{"model": ...}``, see ``_WRAPPER_KEYS``), written with another library's
key convention (``KEY_CONVENTIONS``: detect -> rename -> note), or our own format (``FORMAT``). Writing:
:func:`make_checkpoint` builds our format's dict, :func:`save_checkpoint` writes it all or nothing.
"""

from __future__ import annotations

import contextlib
import io
import numbers
import os
import pickle
import pickletools
import re
import threading
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch

from ...blocks import SHORTCUT_OPTIONS, STRIDE_PLACEMENTS
from ...errors import WeightsError, clip, some
from ...images import Preprocessing, preprocessing_problem
from ...models import ARCHITECTURES
from .conventions import apply_conventions

FORMAT = "resnet-explorer/1"
# The suffixes checkpoints come with (the app's uploader and ``ckpt:`` ids); any other suffix is read by its
# content all the same (a torch.save zip, a legacy pickle or a safetensors file).
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".th", ".tar", ".ckpt", ".bin", ".safetensors")


# ------------------------------------------------------------------------------------------------- limits
# Every number a checkpoint carries is checked against these before it is used, so a
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
MAX_PATH_CHARS = 1024



# --------------------------------------------------------------------------------------------- reading
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
    wrapper_keys: tuple[str, ...] = ()  # a foreign file's top-level keys (for a message when nothing fits)


# ------------------------------------------------------------------------------ foreign key conventions
# Where a foreign file keeps its tensors: the first of these keys that holds a mapping of tensors (Lightning's
# ``state_dict`` beside ``hyper_parameters``, the CIFAR repositories' ``net`` beside ``acc``/``epoch`` ...).
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net", "weights", "state_dict_ema", "model_ema")
_PREFIXES = ("module.", "_orig_mod.", "model.")  # the prefixes the table removes (kept for old callers)


def _tensor_dict(obj: Mapping[str, Any]) -> dict[str, torch.Tensor] | None:
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    return tensors if tensors and len(tensors) >= len(obj) / 2 else None


def _strip_prefixes(state_dict: dict[str, torch.Tensor], notes: list[str]) -> dict[str, torch.Tensor]:
    """Apply every matching row of the key conventions (``conventions.KEY_CONVENTIONS``: DataParallel/DDP
    ``module.``, torch.compile ``_orig_mod.``, Lightning ``model.``, Hugging Face, ``shortcut.N``, ``linear``)
    until none matches, noting each; wrappers may nest."""
    return apply_conventions(state_dict, notes)


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
            return f"option {key} must be one of {', '.join(map(str, choices))}, not {clip(repr(value), 40)}"
        return None
    if key in _OPTION_RANGES:
        low, high = _OPTION_RANGES[key]
        if key == "width" and value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
            return f"option {key} must be a whole number from {low} to {high}, not {clip(repr(value), 40)}"
        return None
    return f"option {clip(repr(key), 40)} is not one this project builds with"


def _check_tensors(state_dict: Mapping[Any, Any], source: str) -> None:
    """Bounded count, names, layout, dtype and total size; no NaN/inf (naming the first tensor holding one)."""
    if len(state_dict) > MAX_TENSORS:
        raise WeightsError(f"The {source} holds {len(state_dict):,} tensors, more than the {MAX_TENSORS:,} any "
                           "ResNet has; choose a ResNet checkpoint.")
    total = 0
    for key, tensor in state_dict.items():
        if not isinstance(key, str) or len(key) > MAX_KEY_CHARS:
            raise WeightsError(f"The {source} has a tensor named {clip(repr(key), 60)}, which is not a layer "
                               "name; choose a ResNet checkpoint.")
        if tensor.layout != torch.strided or tensor.is_quantized or tensor.is_nested:
            raise WeightsError(f"The {source} stores the tensor '{clip(key)}' as {clip(tensor.layout)} "
                               "rather than a dense tensor; save the model's plain state_dict.")
        if tensor.dtype not in _FLOAT_DTYPES and tensor.dtype not in _INTEGER_DTYPES:
            raise WeightsError(f"The {source} holds the tensor '{clip(key)}' as {clip(tensor.dtype)}, which a "
                               "ResNet's weights never are; save the weights as float32 or float16.")
        total += tensor.numel()
        if total > MAX_ELEMENTS:
            raise WeightsError(f"The {source} holds more than {MAX_ELEMENTS:,} numbers, more than any "
                               "ResNet this project builds; choose a smaller checkpoint.")
    for key, tensor in state_dict.items():
        if tensor.dtype in _FLOAT_DTYPES and not _finite(tensor):
            raise WeightsError(f"The {source} holds NaN or infinite values in the tensor '{clip(key)}' (the run "
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
        raise bad("arch", f"names {clip(repr(arch), 40)}, which is not an architecture this project builds")
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
        problem = preprocessing_problem(prep["resize"], prep["crop"], prep["mean"], prep["std"])
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
                           f"{clip(exc)}); save a state_dict with torch.save(model.state_dict(), path).") from None


def _unwrap(obj: Mapping[str, Any], notes: list[str], depth: int = 0) -> dict[str, torch.Tensor] | None:
    """The tensors under the first wrapper key that holds them (one level of nesting more allowed:
    ``{"model": {"state_dict": ...}}``), else the mapping's own tensors; None when there are none."""
    for key in _WRAPPER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, Mapping):
            deeper: list[str] = []
            found = _tensor_dict(inner)
            if found is None and depth == 0:
                found = _unwrap(inner, deeper, depth + 1)
            if found is not None:
                notes += [f"read the tensors under '{key}'", *deeper]
                return found
    return _tensor_dict(obj) if depth == 0 else None


def _extract_state_dict(obj: Any, source: str) -> Checkpoint:
    if not isinstance(obj, Mapping):
        raise WeightsError(f"The {source} holds a {type(obj).__name__}, not a state_dict; save it with "
                           "torch.save(model.state_dict(), path).")
    notes: list[str] = []
    if obj.get("format") == FORMAT:
        return _own_format(obj, source, notes)
    state_dict = _unwrap(obj, notes)
    if state_dict is None:
        raise WeightsError(f"The {source} holds no tensors ResNet Explorer recognises (top-level keys: "
                           f"{some(list(obj), 6)}); save a state_dict with torch.save(model.state_dict(), path).")
    _check_tensors(state_dict, source)
    wrapper = tuple(clip(k, 60) for k in list(obj)[:8]) if notes else ()
    return Checkpoint(state_dict=_strip_prefixes(state_dict, notes), source=source, notes=notes,
                      wrapper_keys=wrapper)


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


def _safetensors_header(head: bytes, size: int) -> bool:
    """True when the first bytes are a safetensors file's: an 8-byte little-endian header length that fits
    the file, then the JSON header's ``{``. Read by content, whatever the file's suffix."""
    if len(head) < 9 or head[8:9] != b"{":
        return False
    length = int.from_bytes(head[:8], "little")
    return 2 <= length <= min(MAX_PICKLE_BYTES, size - 8)


def _read_safetensors(source: str | os.PathLike[str] | bytes, label: str) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors (the ``safetensors`` library: no pickle, no code), on the CPU."""
    try:
        from safetensors.torch import load, load_file
    except ImportError:
        raise WeightsError(f"The {label} is a safetensors file, but the safetensors package is not installed; "
                           "install it with pip install safetensors.") from None
    try:
        return load(source) if isinstance(source, bytes) else load_file(os.fspath(source), device="cpu")
    except Exception as exc:  # noqa: BLE001 - the library's parser errors all mean "damaged file"
        raise WeightsError(f"The {label} is a safetensors file that cannot be read ({clip(exc)}); download it "
                           "again or save the weights with safetensors.torch.save_file.") from None


def _pickled_module(handle: Any) -> bool:
    """True when the pickle torch.load refused holds a whole ``nn.Module`` (``torch.save(model)``): its
    opcodes name ``torch.nn.modules`` or a module's ``_modules``/``_parameters`` state. Reads opcodes only,
    never unpickles; the container was checked first (``_container_problem``), so data.pkl is small."""
    handle.seek(0)
    streams: list[Any] = []
    if zipfile.is_zipfile(handle):
        handle.seek(0)
        with zipfile.ZipFile(handle) as archive:
            streams = [io.BytesIO(archive.read(e)) for e in archive.infolist() if e.filename.endswith("data.pkl")]
    else:
        handle.seek(0)
        streams = [handle] * 4  # the legacy format: magic number, protocol, system info, then the object
    for stream in streams[:4]:
        try:
            for opcode, arg, _position in pickletools.genops(stream):
                if isinstance(arg, str) and (arg in ("_modules", "_parameters")
                                             or arg.startswith("torch.nn.modules")):
                    return True
                if opcode.name == "STOP":
                    break
        except Exception:  # noqa: BLE001 - unreadable opcodes: not a module we can name
            return False
    return False


PICKLED_MODEL = ("holds a pickled model object (torch.save(model)), which is refused for safety because loading "
                 "it would run code; load it where it was made and save model.state_dict() instead.")


def read_checkpoint(source: str | os.PathLike[str] | bytes, name: str | None = None) -> Checkpoint:
    """Read a checkpoint file or uploaded bytes with ``torch.load(weights_only=True)`` or, for a safetensors
    file (recognised by its content, any suffix), the ``safetensors`` library -- never anything else.

    A pickle that would import or call Python code is refused with a WeightsError (the code does not run);
    a whole pickled model (``torch.save(model)``) gets its own sentence. Files over ``MAX_CHECKPOINT_BYTES``
    are refused from their size before a byte is read, and the container is checked (``_container_problem``)
    before torch.load sees it.
    """
    given = name or (None if isinstance(source, bytes) else Path(source).name)
    label = f"file '{clip(given, 60)}'" if given else "uploaded file"  # reads "The {label} ..."
    if isinstance(source, bytes):
        size = len(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise WeightsError(f"The checkpoint file {clip(path, 200)} does not exist; check the path or upload "
                               "the file.")
        size = path.stat().st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise WeightsError(f"The {label} is {size / 2**20:,.0f} MB, above the {MAX_CHECKPOINT_BYTES // 2**20} MB "
                           "limit for checkpoints; save only the model's state_dict, or a smaller network.")
    pickled_module = False
    try:
        with io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb") as handle:
            if _safetensors_header(handle.read(9), size):
                ckpt = extract_state_dict(_read_safetensors(source, label), label)
                ckpt.notes.insert(0, "read with safetensors")
                return ckpt
            problem = _container_problem(handle)
            if problem is None:
                handle.seek(0)
                try:
                    obj = torch.load(handle, map_location="cpu", weights_only=True)
                except pickle.UnpicklingError:
                    pickled_module = _pickled_module(handle)
                    raise
    except WeightsError:
        raise
    except pickle.UnpicklingError as exc:
        # The safe unpickler refuses imports ("GLOBAL ...", classes) and calls; anything else is garbage bytes.
        if pickled_module:
            raise WeightsError(f"The {label} {PICKLED_MODEL}") from None
        text = str(exc).lower()
        if not any(word in text for word in ("global", "class", "reduce", "build", "blocked")):
            raise WeightsError(f"The {label} is not a PyTorch checkpoint (torch.load cannot read it, or it is "
                               "truncated); upload a .pt/.pth file written by torch.save.") from None
        found = re.search(r"GLOBAL ([\w.]{1,100})", str(exc))  # the first object torch.load would have imported
        what = f" ({found.group(1)})" if found else ""
        raise WeightsError(
            f"The {label} contains Python objects or code besides tensors{what}, so it was refused for safety "
            "(loaded with weights_only=True); re-save it with torch.save(model.state_dict(), path).") from None
    except Exception:  # noqa: BLE001 - torch.load's parsers raise many types on bad bytes; all mean "unreadable"
        raise WeightsError(f"The {label} is not a PyTorch checkpoint (torch.load cannot read it, or it is "
                           "truncated, and it is no safetensors file); upload a file written by torch.save or "
                           "safetensors.") from None
    if problem is not None:
        raise WeightsError(f"The {label} was refused before loading because {problem}; save it with "
                           "torch.save(model.state_dict(), path).")
    return extract_state_dict(obj, label)


# --------------------------------------------------------------------------------------------- writing
def make_checkpoint(*, arch: str, label: str, options: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor],
                    classes: Sequence[str], preprocessing: Preprocessing | Mapping[str, Any], dataset: str,
                    metrics: Mapping[str, Any], resume: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Our format's dict (loadable with ``torch.load(weights_only=True)``): the tensors on the CPU, the
    config that rebuilds the net, what its inputs and outputs mean, and ``resume`` (optimizer state, step,
    data position) when a race should be able to continue from it."""
    return {
        "format": FORMAT,
        "arch": arch,
        "label": label,
        "options": dict(options),
        "state_dict": {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()},
        "classes": list(classes),
        "preprocessing": (preprocessing.to_dict() if isinstance(preprocessing, Preprocessing)
                          else dict(preprocessing)),
        "dataset": dataset,
        "metrics": dict(metrics),
        "resume": None if resume is None else dict(resume),
    }


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any] | bytes | str) -> Path:
    """Write ``path`` all or nothing: a hidden temporary file in the same folder (never named ``*.pt``),
    flushed and fsynced, renamed over ``path``, then the folder fsynced. On any failure the temporary file is
    removed and the old ``path`` (if any) is untouched; the OSError propagates."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            if callable(write):
                write(f)
            else:
                f.write(write.encode() if isinstance(write, str) else write)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)
    return path


def save_checkpoint(path: str | Path, checkpoint: Mapping[str, Any]) -> Path:
    """Write a checkpoint dict (:func:`make_checkpoint`) to ``path`` atomically; the OSError propagates."""
    return atomic_write(path, lambda f: torch.save(dict(checkpoint), f))


def load_resume_checkpoint(path: str | Path) -> dict[str, Any]:
    """One of our own checkpoints with its ``resume`` entry, as saved (``torch.load(weights_only=True)``);
    torch's own error propagates (the caller says which run cannot be resumed)."""
    return torch.load(path, map_location="cpu", weights_only=True)
