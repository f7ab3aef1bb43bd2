"""Run folders written all or nothing: the writer of one run (config, status, metrics, checkpoint sets,
summary) and the one sentence for a folder that cannot be written."""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import math
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..settings import runs_dir
from ..train import Race, RaceConfig
from ..weights.checkpoints import atomic_write, save_checkpoint
from ..weights.checkpoints.format import fsync_dir as _fsync_dir

_EVAL_COLUMNS = ["step", "racer", "test_loss", "test_acc"]

JOB_STATUSES = ("ready", "running", "paused", "stopped", "finished", "failed")
# A job status while its process lives: one that status.json says after the process died reads "interrupted".
LIVE_STATUSES = ("ready", "running", "paused")
# A run folder's status as listed: a job status, or "interrupted" (no summary and its process is gone).
RUN_STATUSES = (*JOB_STATUSES, "interrupted")
# Requests any process may append to a run folder's control.jsonl; the job's thread applies each, in order, between
# steps (a queue: two clicks in two tabs before the next step both count, a Stop is never overwritten).
CONTROL_FILE = "control.jsonl"
CONTROL_REQUESTS = ("pause", "resume", "step", "stop")


_runs_dir = runs_dir  # functions below take a ``runs_dir`` argument, which hides the function's name


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "run"


def _json_safe(value: Any) -> Any:
    """NaN/inf become None so the files stay strict JSON (a diverged loss is logged as null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


# ------------------------------------------------------------------------------------------------ storage
class RunStorageError(OSError, ValueError):
    """The runs folder cannot be written (read-only, full, a file in the way): one sentence, and nothing
    half-written is left behind. ``folder`` is the runs folder, ``reason`` what the system said."""

    def __init__(self, folder: str | Path, reason: str, kept: str = "this run's curves are kept in memory") -> None:
        self.folder, self.reason = Path(folder), reason
        # Shown to every visitor of the page: the folder stays out of it (the command line names it).
        super().__init__(f"Cannot write to the runs folder ({reason}): free space or set "
                         f"RESNET_EXPLORER_RUNS to a writable folder; {kept}.")


_REASONS = {errno.EROFS: "read-only file system", errno.ENOSPC: "no space left on the device",
            errno.EFBIG: "file size limit reached", errno.EDQUOT: "disk quota exceeded",
            errno.EACCES: "permission denied", errno.EPERM: "permission denied",
            errno.ENOTDIR: "a file stands where a folder should be", errno.EEXIST: "it is a file, not a folder"}


def _reason(exc: OSError) -> str:
    if exc.errno in _REASONS:
        return _REASONS[exc.errno]
    return os.strerror(exc.errno).lower() if exc.errno else str(exc)


@contextlib.contextmanager
def _storing(folder: Path) -> Iterator[None]:
    """Any OSError inside becomes a RunStorageError naming the runs folder ``folder``."""
    try:
        yield
    except RunStorageError:
        raise
    except OSError as exc:
        raise RunStorageError(folder, _reason(exc)) from None


def _process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[19]) if len(fields) > 19 else None


def _process_alive(pid: Any, started: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except OSError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
        if state[state.rindex(")") + 2:].startswith("Z"):  # a zombie: dead, not yet reaped
            return False
    except (OSError, ValueError):
        pass
    now = _process_start(pid)
    return started is None or now is None or now == started


class RunWriter:
    """Writes one run folder: config, status, JSON-lines metrics, periodic and final checkpoints, summary.

    Every method raises :class:`RunStorageError` (one sentence) when the folder cannot be written."""

    def __init__(self, path: Path, config: RaceConfig, source: str) -> None:
        self.path, self.config, self.source = Path(path), config, source
        self.run_id = self.path.name
        self.base = self.path.parent
        self.created = _now()
        self.checkpoint_step: int | None = None  # the step of the latest complete checkpoint set

    @classmethod
    def create(cls, config: RaceConfig, runs_dir: str | Path | None = None, source: str = "app",
               run_id: str | None = None) -> RunWriter:
        """A new, uniquely named folder ``<date>-<time>-<race name>`` (or ``run_id``) under the runs directory."""
        base = _runs_dir(runs_dir)
        with _storing(base):
            base.mkdir(parents=True, exist_ok=True)
            stem = run_id or new_run_id(config)
            for n in range(1000):
                path = base / (stem if n == 0 else f"{stem}-{n + 1}")
                try:
                    path.mkdir()
                    return cls(path, config, source)
                except FileExistsError:
                    continue
        raise RunStorageError(base, "a thousand runs of the same name and second already exist")

    def write_config(self, device: str, world_size: int = 1, status: str = "running") -> None:
        data = {"run_id": self.run_id, "created": self.created, "source": self.source, "device": device,
                "world_size": world_size, "racers": self.config.labels, "config": self.config.to_dict()}
        with _storing(self.base):
            atomic_write(self.path / "config.json", json.dumps(data, indent=2))
        self.write_status(status)

    def write_status(self, status: str, step: int | None = None) -> None:
        """status.json: the run's state and the process (pid and its start time) that writes the folder, so a
        live state whose process is gone reads "interrupted" (see ``records._run_status``)."""
        pid = os.getpid()
        data = {"status": status, "pid": pid, "pid_started": _process_start(pid), "since": _now(), "step": step}
        with _storing(self.base):
            atomic_write(self.path / "status.json", json.dumps(data))

    def append(self, rows: list[dict[str, Any]], kind: str = "step") -> None:
        """Append rows to metrics.jsonl in one write, flushed; a failed write is cut back to whole lines."""
        if not rows:
            return
        text = "".join(json.dumps({"kind": kind, **{k: _json_safe(v) for k, v in row.items()}}) + "\n"
                       for row in rows)
        with _storing(self.base):
            # Unbuffered: a buffered file would retry the failed flush on truncate and close.
            fd = os.open(self.path / "metrics.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                end = os.fstat(fd).st_size
                data = memoryview(text.encode())
                try:
                    while data:
                        data = data[os.write(fd, data):]  # a full disk may take part of it, then fail
                except OSError:
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, end)  # no half line for the next append to run into
                    raise
            finally:
                os.close(fd)

    def rewrite_metrics(self, rows: Sequence[dict[str, Any]], eval_rows: Sequence[dict[str, Any]]) -> None:
        """Replace metrics.jsonl (atomically) with these rows: a resumed run drops what came after its
        checkpoint, an exported one writes all it kept in memory. Steps and evaluations interleave by step."""
        lines = [(int(r["step"]), 0, {"kind": "step", **r}) for r in rows]
        lines += [(int(r["step"]), 1, {"kind": "eval", **r}) for r in eval_rows]
        lines.sort(key=lambda t: (t[0], t[1]))
        text = "".join(json.dumps({k: _json_safe(v) for k, v in line.items()}) + "\n" for _, _, line in lines)
        with _storing(self.base):
            atomic_write(self.path / "metrics.jsonl", text)

    def save_checkpoints(self, race: Race, final: bool = False) -> list[Path]:
        """One checkpoint per racer, then ``checkpoint.json`` naming the set; older periodic sets go.

        Periodic sets live in ``checkpoints/step-<k>/``; the final set is ``<racer>.pt`` in the run folder.
        Killed at any moment, the manifest names a complete set (this one or the one before)."""
        step = race.step_index
        folder = self.path if final else self.path / "checkpoints" / f"step-{step:06d}"
        paths, entries = [], []
        with _storing(self.base):
            folder.mkdir(parents=True, exist_ok=True)
            for racer in race.racers:
                ckpt = race.checkpoint(racer)
                path = folder / f"{_slug(racer.label)}.pt"
                save_checkpoint(path, ckpt)
                paths.append(path)
                entries.append({"file": path.relative_to(self.path).as_posix(), "label": racer.label,
                                "arch": ckpt["arch"], "options": ckpt["options"], "status": racer.status})
            _fsync_dir(folder.parent)
            manifest = {"step": step, "final": final, "saved": _now(), "checkpoints": entries}
            atomic_write(self.path / "checkpoint.json", json.dumps(manifest, indent=2))
        self.checkpoint_step = step
        # Older sets are no longer named by the manifest: remove them (a failure here loses nothing).
        periodic = self.path / "checkpoints"
        if periodic.is_dir():
            for old in periodic.iterdir():
                if final or old != folder:
                    shutil.rmtree(old, ignore_errors=True)
            if final:
                shutil.rmtree(periodic, ignore_errors=True)
        return paths

    def finish(self, race: Race, status: str, error: str = "") -> list[Path]:
        """Save one checkpoint per racer and ``summary.json``; returns the checkpoint paths."""
        paths = self.save_checkpoints(race, final=True) if race.step_index > 0 else []
        entries = [{"file": p.name, "label": r.label, "arch": r.spec.arch, "options": dict(r.options),
                    "status": r.status} for p, r in zip(paths, race.racers, strict=False)]
        summary = race.summary()
        data = {"status": status, "finished": _now(), "steps": race.step_index, "wall_s": race.wall,
                "messages": race.messages + ([error] if error else []), "checkpoints": entries,
                "summary": [{k: _json_safe(v) for k, v in row.items()} for row in summary.to_dict("records")]}
        with _storing(self.base):
            atomic_write(self.path / "summary.json", json.dumps(data, indent=2, default=str))
        self.write_status(status, race.step_index)  # after the summary: a final status always has one
        return paths


def new_run_id(config: RaceConfig) -> str:
    """``<date>-<time>-<race name>``: the folder name a run gets (a suffix is added if it is taken)."""
    return f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{_slug(config.name)}"


def write_control(folder: str | Path, request: str) -> str:
    """Ask the race writing run folder ``folder`` to pause, resume, take one step or stop; returns the request's
    id. Any process may append one (a line of control.jsonl); the job's thread applies each once, in order."""
    if request not in CONTROL_REQUESTS:
        raise ValueError(f"'{request}' is not a race control; use one of {', '.join(CONTROL_REQUESTS)}.")
    folder = Path(folder)
    request_id = uuid.uuid4().hex
    data = {"request": request, "id": request_id, "pid": os.getpid(), "at": _now()}
    line = (json.dumps(data) + "\n").encode()
    with _storing(folder.parent):
        # One write of a short line with O_APPEND: concurrent writers never interleave within a line.
        fd = os.open(folder / CONTROL_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    return request_id


class ControlReader:
    """The requests appended to run folder ``folder``'s control.jsonl since this reader was made (older ones, an
    earlier run's before a resume, are not ours), in order; :meth:`new` costs a stat when none came."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / CONTROL_FILE
        self._read = self._size()

    def _size(self) -> int:
        try:
            return os.stat(self.path).st_size
        except OSError:
            return 0

    def new(self) -> list[str]:
        size = self._size()
        if size <= self._read:
            return []
        try:
            with open(self.path, "rb") as file:
                file.seek(self._read)
                chunk = file.read(size - self._read)
        except OSError:
            return []
        whole = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written waits for the next look
        self._read += len(whole)
        requests = []
        for line in whole.splitlines():
            try:
                request = json.loads(line).get("request")
            except (ValueError, AttributeError):
                continue
            if request in CONTROL_REQUESTS:
                requests.append(request)
        return requests
