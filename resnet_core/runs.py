"""Runs: races in a background thread with Start/Pause/Resume/Step/Stop, and their folders on disk.

Every run (from the app or the CLI) is a folder ``<runs dir>/<run id>/`` holding

``config.json``
    the race configuration, where it ran and when it started;
``status.json``
    "running" and the process (pid and its start time) that writes the folder: a run without a summary whose
    process is gone was interrupted (killed, power cut) and is listed as "interrupted";
``metrics.jsonl``
    one JSON object per line, appended and flushed per step (a kill loses at most the line being written):
    ``{"kind": "step", "step", "racer", "loss", "acc", "lr", "images_per_s", "status", "grad_<stage>"...}``
    per step and racer, ``{"kind": "eval", "step", "racer", "test_loss", "test_acc"}`` per evaluation;
``checkpoints/step-<k>/<racer>.pt`` and ``checkpoint.json``
    the latest periodic checkpoint of every racer (every ``checkpoint_every`` steps) and a manifest naming
    the latest complete set; each checkpoint also holds what resuming needs (optimizer, scaler, step, data
    order), see :func:`resume_run`;
``summary.json``
    written at the end: status, wall time, messages, the summary table and the checkpoint list;
``<racer>.pt``
    the final checkpoint per racer in the project's format (``torch.load(path, weights_only=True)``).

Every file but the metrics log is written atomically (a temporary file in the same folder, fsync, rename,
fsync of the folder), so no 0-byte or truncated checkpoint or JSON file is ever left where one is expected;
a metrics append that fails is cut back to the last whole line. A folder that cannot be written (read-only,
full, not a folder) raises :class:`RunStorageError`, one sentence; a :class:`Job` then goes on in memory
and :meth:`Job.export` saves it once space returns.

The runs directory is ``$RESNET_EXPLORER_RUNS`` or ``runs/`` at the repository root. A :class:`Job` owns a
:class:`~resnet_core.train.Race` and a thread; the thread never touches Streamlit: it trains a step (and its
evaluation) outside the lock, then publishes the results to the job's own copies under the lock, and the page
draws :meth:`Job.snapshot`, built from those copies only (so a snapshot's step, history and summary agree). A :class:`Registry` (kept by the app in
``st.cache_resource``) holds the jobs, so a run survives page switches and browser refreshes.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import math
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .checkpoints.format import atomic_write, load_resume_checkpoint, save_checkpoint
from .checkpoints.format import fsync_dir as _fsync_dir
from .settings import runs_dir
from .train import Race, RaceConfig, describe_device, summarize

_EVAL_COLUMNS = ["step", "racer", "test_loss", "test_acc"]

JOB_STATUSES = ("ready", "running", "paused", "stopped", "finished", "failed")
# A run folder's status as listed: a job status, or "interrupted" (no summary and its process is gone).
RUN_STATUSES = ("running", "stopped", "finished", "failed", "interrupted")


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
        super().__init__(f"Cannot write to the runs folder {folder} ({reason}): free space or set "
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

    def write_config(self, device: str, world_size: int = 1) -> None:
        data = {"run_id": self.run_id, "created": self.created, "source": self.source, "device": device,
                "world_size": world_size, "racers": self.config.labels, "config": self.config.to_dict()}
        with _storing(self.base):
            atomic_write(self.path / "config.json", json.dumps(data, indent=2))
        self.mark_running()

    def mark_running(self) -> None:
        """status.json: this process writes the folder (list_runs calls it "interrupted" once it is gone)."""
        pid = os.getpid()
        data = {"status": "running", "pid": pid, "pid_started": _process_start(pid), "since": _now()}
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
        return paths


def new_run_id(config: RaceConfig) -> str:
    """``<date>-<time>-<race name>``: the folder name a run gets (a suffix is added if it is taken)."""
    return f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{_slug(config.name)}"


# ------------------------------------------------------------------------------------------------ jobs
@dataclass
class JobSnapshot:
    """What the page draws: a consistent copy of a job's state at one moment."""

    run_id: str
    name: str
    status: str
    step: int
    steps: int
    history: pd.DataFrame
    evals: pd.DataFrame
    summary: pd.DataFrame
    racers: dict[str, str]
    messages: list[str]
    device: str
    elapsed_s: float
    eta_s: float | None
    checkpoints: list[str] = field(default_factory=list)

    @property
    def progress(self) -> float:
        return min(1.0, self.step / max(1, self.steps))

    @property
    def active(self) -> bool:
        return self.status in ("running", "paused")


class Job:
    """A race in a background thread. Controls take effect between steps (so within one step):

    ``start()`` runs to the end; ``pause()`` holds after the current step; ``resume()`` continues;
    ``step_once()`` (when ready or paused) trains exactly one more step and stays paused; ``stop()`` ends the
    run after the current step and saves checkpoints. The thread never raises: a failure becomes status
    "failed" with a one-sentence message.

    When the runs folder cannot be written (at the start or later: read-only, full), the race goes on in
    memory: ``storage_error`` holds the sentence (also in the snapshot's messages), the curves stay in the
    job, and :meth:`export` writes the whole run once space returns. ``writer`` (a :class:`RunWriter` already
    set up, e.g. by :func:`resume_race`) continues an existing folder.
    """

    def __init__(self, config: RaceConfig, runs_dir: str | Path | None = None, *, race: Race | None = None,
                 source: str = "app", writer: RunWriter | None = None) -> None:
        self.config = config
        self.race = race if race is not None else Race(config)  # raises ValueError/DataError for bad input
        self.source = source
        self.device = describe_device(self.race.device)
        self._runs_dir = runs_dir
        self._storage_error = ""
        if writer is None:
            try:
                writer = RunWriter.create(config, runs_dir, source)
                writer.write_config(self.device, self.race.dist.world_size)
            except RunStorageError as exc:
                writer, self._storage_error = None, str(exc)
        self.writer: RunWriter | None = writer
        self.run_id = writer.run_id if writer is not None else new_run_id(config)
        self.path = writer.path if writer is not None else _runs_dir(runs_dir) / self.run_id
        self._cond = threading.Condition()
        self._status = "ready"
        self._paused = False
        self._stop = False
        self._budget = 0  # single steps requested while paused
        self._active_s = self.race.wall  # a resumed race has trained before
        self._error = ""
        self._checkpoints: list[str] = []
        self._thread: threading.Thread | None = None
        self._parked = False  # the thread waits for a control (paused, no step in flight)
        # What snapshots read: the race's results as of the last published step (see _publish).
        self._rows: list[dict[str, Any]] = []
        self._eval_rows: list[dict[str, Any]] = []
        self._step = 0
        self._racers: dict[str, str] = {}
        self._messages: list[str] = []
        self._seconds: dict[str, float] = {}
        self._params = {r.label: r.params for r in self.race.racers}
        self._publish(list(self.race.rows), list(self.race.eval_rows))

    def _publish(self, rows: list[dict[str, Any]], evals: list[dict[str, Any]]) -> None:
        """Copy a step's results (rows, evaluations, statuses, times) for snapshots; call it under the lock.

        The thread runs ``race.step()`` and ``race.evaluate()`` outside the lock, so controls and snapshots
        don't wait for a step; snapshots never read the race while it changes, only these copies."""
        race = self.race
        self._rows.extend(rows)
        self._eval_rows.extend(evals)
        self._step = race.step_index
        self._racers = {r.label: r.status for r in race.racers}
        self._messages = list(race.messages)
        self._seconds = {r.label: r.seconds for r in race.racers}

    # -- controls
    def _launch(self, paused: bool, budget: int = 0) -> None:
        self._paused, self._budget = paused, budget
        self._status = "paused" if paused else "running"
        self._thread = threading.Thread(target=self._loop, name=f"race-{self.run_id}", daemon=True)
        self._thread.start()

    def start(self) -> None:
        with self._cond:
            if self._status == "ready":
                self._launch(paused=False)
            elif self._status == "paused":
                self._paused = False
                self._parked = False
                self._status = "running"
                self._cond.notify_all()

    def pause(self) -> None:
        with self._cond:
            if self._status == "running":
                self._paused = True
                self._status = "paused"

    def resume(self) -> None:
        self.start()

    def step_once(self) -> None:
        with self._cond:
            if self._status == "ready":
                self._launch(paused=True, budget=1)
            elif self._status == "paused":
                self._budget += 1
                self._parked = False
                self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            if self._status == "ready":
                self._status = "stopped"
                self.race.stop()
                self._publish([], [])
                self._store(lambda w: w.finish(self.race, "stopped"))
                return
            self._stop = True
            self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the thread ended (True) or ``timeout`` passed (False)."""
        thread = self._thread
        if thread is None:
            return self._status not in ("running", "paused")
        thread.join(timeout)
        return not thread.is_alive()

    def wait_for_step(self, step: int, timeout: float = 60.0) -> bool:
        """Block until at least ``step`` steps are done or the job ended (for tests and scripts)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._step < step and self._status in ("running", "paused", "ready"):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.5))
            return self._step >= step

    def wait_paused(self, timeout: float = 60.0) -> bool:
        """Block until no step is in flight and none can start without a control: the thread is parked
        (paused, no single step pending), or it never started, or it ended. False after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._thread is not None and not self._parked and self._status in ("running", "paused"):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.5))
            return True

    @property
    def status(self) -> str:
        return self._status

    @property
    def storage_error(self) -> str:
        """The sentence saying why the run folder is not being written ("" while it is)."""
        return self._storage_error

    def _store(self, write: Callable[[RunWriter], Any]) -> Any:
        """Run ``write`` with the writer; a storage failure detaches it (the race goes on in memory)."""
        writer = self.writer
        if writer is None:
            return None
        try:
            return write(writer)
        except RunStorageError as exc:
            with self._cond:
                self.writer, self._storage_error = None, str(exc)
            return None

    def export(self, runs_dir: str | Path | None = None) -> Path:
        """Write the whole run (config, every metrics row kept in memory, checkpoints, summary when it has
        ended) to ``<runs dir>/<run id>/`` and go on writing there; returns the folder.

        For a run whose folder could not be written (see ``storage_error``), once space returns. Raises
        RunStorageError (one sentence) if it still cannot be written, ValueError while the race is running
        (pause or stop it first)."""
        if self._status == "running" or not self.wait_paused(timeout=120):
            raise ValueError("The race is training: pause or stop it, then save it.")
        with self._cond:
            base = _runs_dir(runs_dir if runs_dir is not None else self._runs_dir)
            path = base / self.run_id
            with _storing(base):
                path.mkdir(parents=True, exist_ok=True)
            writer = RunWriter(path, self.config, self.source)
            writer.write_config(self.device, self.race.dist.world_size)
            writer.rewrite_metrics(self._rows, self._eval_rows)
            if self._status in ("ready", "paused"):
                if self.race.step_index > 0:
                    writer.save_checkpoints(self.race)
            else:
                paths = writer.finish(self.race, self._status, self._error)
                self._checkpoints = [str(p) for p in paths]
            self.writer, self.path, self._storage_error = writer, path, ""
        return path

    # -- the thread
    def _loop(self) -> None:
        race = self.race
        try:
            while True:
                with self._cond:
                    while self._paused and self._budget == 0 and not self._stop:
                        self._parked = True
                        self._cond.notify_all()  # wait_paused
                        self._cond.wait()
                    self._parked = False
                    if self._stop or race.done:
                        break
                    if self._paused:
                        self._budget -= 1
                t = time.perf_counter()
                rows = race.step()  # outside the lock: controls and snapshots don't wait for a step
                evals = race.evaluate() if race.eval_due() else []

                def write(w: RunWriter, rows: list = rows, evals: list = evals) -> None:
                    w.append(rows)
                    w.append(evals, kind="eval")
                    if race.checkpoint_due():
                        w.save_checkpoints(race)

                self._store(write)
                with self._cond:  # the step becomes visible to snapshots all at once: rows, evals, statuses
                    self._publish(rows, evals)
                    self._active_s += time.perf_counter() - t
                    self._cond.notify_all()
                    if race.done:
                        break
            final = "finished" if race.done else "stopped"
            evals = []
            if final == "stopped":
                scored = bool(race.eval_rows) and race.eval_rows[-1]["step"] == race.step_index
                if race.step_index > 0 and not scored:
                    evals = race.evaluate()  # a stopped race still gets a held-out score
                    self._store(lambda w: w.append(evals, kind="eval"))
                race.stop()
            paths = self._store(lambda w: w.finish(race, final)) or []
            with self._cond:
                self._publish([], evals)
                self._checkpoints = [str(p) for p in paths]
                self._status = final
                self._cond.notify_all()
        except Exception as exc:  # the thread must not die silently: the page shows the sentence
            message = f"The race stopped with an error: {exc}"
            try:
                self._store(lambda w: w.finish(race, "failed", message))
            except Exception:  # noqa: BLE001 - writing the summary must not hide the first error
                pass
            with self._cond:
                self._error = message
                self._status = "failed"
                self._parked = False
                self._cond.notify_all()

    # -- reading
    def snapshot(self) -> JobSnapshot:
        """A copy of the job's state that the page can draw while the thread goes on."""
        with self._cond:  # only the published copies: never the race, which the thread may be changing
            rows, eval_rows = list(self._rows), list(self._eval_rows)
            status, step, active_s = self._status, self._step, self._active_s
            racers, seconds = dict(self._racers), dict(self._seconds)
            messages = (self._messages + ([self._storage_error] if self._storage_error else [])
                        + ([self._error] if self._error else []))
            checkpoints = list(self._checkpoints)
        history, evals = pd.DataFrame(rows), pd.DataFrame(eval_rows, columns=_EVAL_COLUMNS)
        summary = summarize(history, evals, self._params, seconds, racers)
        remaining = self.config.steps - step
        eta = active_s / step * remaining if step and status in ("running", "paused") else None
        return JobSnapshot(self.run_id, self.config.name, status, step, self.config.steps, history, evals, summary,
                           racers, messages, self.device, active_s, eta, checkpoints)


class Registry:
    """The jobs of this process (the app keeps one in ``st.cache_resource``, shared by every session).

    One race trains at a time: on a 2-core laptop two would each run at half speed, and a classroom shares
    one server; a second tab sees the running race and can pause or stop it.
    """

    def __init__(self, runs_dir: str | Path | None = None) -> None:
        self.runs_dir = runs_dir
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def _check_free(self) -> None:
        # A job left "ready" (created paused, never started) counts too: it holds the one race slot.
        busy = [j for j in self._jobs.values() if j.status in ("ready", "running", "paused")]
        if busy:
            state = "waiting to start" if busy[0].status == "ready" else busy[0].status
            raise ValueError(f"The race '{busy[0].config.name}' is still {state}; stop it before "
                             f"starting another.")

    def start(self, config: RaceConfig, *, paused: bool = False) -> Job:
        """Create a job for ``config`` and start it (or leave it ready when ``paused``).

        Raises ValueError (one sentence) when another race is still training or the config is bad. A runs
        folder that cannot be written does not stop it: the job trains in memory (see ``Job.storage_error``)."""
        with self._lock:
            self._check_free()
            job = Job(config, self.runs_dir)
            self._jobs[job.run_id] = job
        if not paused:
            job.start()
        return job

    def resume(self, run_id: str, *, paused: bool = False) -> Job:
        """Continue the interrupted or stopped run ``run_id`` from its latest checkpoint (see
        :func:`resume_run`), in its own folder, and start it. Raises ValueError (one sentence)."""
        with self._lock:
            self._check_free()
            job = resume_run(run_id, self.runs_dir)
            self._jobs[job.run_id] = job
        if not paused:
            job.start()
        return job

    def get(self, run_id: str | None) -> Job | None:
        return self._jobs.get(run_id) if run_id else None

    def jobs(self) -> list[Job]:
        return list(self._jobs.values())

    def current(self) -> Job | None:
        """The race still training, else the most recent job of this process."""
        jobs = self.jobs()
        for job in reversed(jobs):
            if job.status in ("running", "paused", "ready"):
                return job
        return jobs[-1] if jobs else None


# ------------------------------------------------------------------------------------------------ past runs
@dataclass
class RunRecord:
    """A run folder read back: its config, metrics and summary.

    ``status`` is the summary's, else "running" while the process that writes the folder lives, else
    "interrupted". ``notes`` says what was found damaged and skipped (a cut-short metrics line, a missing
    checkpoint). ``checkpoint_step`` is the step of the latest complete checkpoint set (None: none)."""

    run_id: str
    path: Path
    info: dict[str, Any]
    history: pd.DataFrame
    evals: pd.DataFrame
    summary: pd.DataFrame
    status: str
    messages: list[str]
    checkpoints: list[dict[str, Any]]
    wall_s: float = 0.0
    race_config: RaceConfig | None = None  # built (and so validated) by load_run
    notes: list[str] = field(default_factory=list)
    checkpoint_step: int | None = None

    @property
    def config(self) -> RaceConfig:
        return self.race_config if self.race_config is not None else RaceConfig.from_dict(self.info["config"])

    @property
    def resumable(self) -> bool:
        """An interrupted or stopped run with a checkpoint to continue from, short of its last step."""
        return (self.status in ("interrupted", "stopped", "failed") and self.checkpoint_step is not None
                and self.checkpoint_step < self.config.steps)

    def snapshot(self) -> JobSnapshot:
        """The run as a job's snapshot, so a past run is drawn exactly like a live one (no ETA: it is not running)."""
        steps = int(self.history["step"].max()) if not self.history.empty else 0
        racers = dict.fromkeys(self.summary.get("racer", pd.Series(dtype=str)), self.status)
        return JobSnapshot(self.run_id, self.config.name, self.status, steps, self.config.steps, self.history,
                           self.evals, self.summary, racers, self.messages + self.notes,
                           self.info.get("device", ""), self.wall_s, None, [c["path"] for c in self.checkpoints])


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _run_status(folder: Path, summary: dict[str, Any]) -> str:
    if summary.get("status"):
        return str(summary["status"])
    state = _read_json(folder / "status.json") or {}
    if state.get("status") == "running" and _process_alive(state.get("pid"), state.get("pid_started")):
        return "running"
    return "interrupted"


def _read_metrics(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """Step rows, eval rows and notes (lines cut short by a crash or a full disk are skipped and counted)."""
    steps: list[dict[str, Any]] = []
    evals: list[dict[str, Any]] = []
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return steps, evals, []
    except OSError as exc:
        return steps, evals, [f"metrics.jsonl cannot be read ({_reason(exc)})"]
    bad = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            bad.append(number)
            continue
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            bad.append(number)
            continue
        kind = row.pop("kind", "step")
        row = {k: (float("nan") if v is None and k not in ("status",) else v) for k, v in row.items()}
        (evals if kind == "eval" else steps).append(row)
    notes = []
    if bad:
        where = ", ".join(map(str, bad[:5])) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        notes.append(f"{len(bad)} metrics line{'s' if len(bad) > 1 else ''} cut short or unreadable "
                     f"(line {where}) skipped")
    return steps, evals, notes


def _last_step(path: Path) -> int | None:
    """The last logged training step, from the end of metrics.jsonl only (list_runs stays fast)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 65536))
            tail = f.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    for line in reversed(tail.splitlines()):
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and row.get("kind", "step") == "step" and isinstance(row.get("step"), int):
            return row["step"]
    return None


def _checkpoint_files_ok(folder: Path, entries: Any, labels: Sequence[str]) -> list[dict[str, Any]] | None:
    """The entries if they name a non-empty file for every racer label, else None."""
    if not isinstance(entries, list):
        return None
    found = {}
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("file"), str) and ".." not in entry["file"]:
            path = folder / entry["file"]
            if path.is_file() and path.stat().st_size > 0:
                found[entry.get("label")] = {**entry, "path": str(path)}
    if not labels or any(label not in found for label in labels):
        return None
    return [found[label] for label in labels]


def latest_checkpoints(folder: str | Path, labels: Sequence[str] | None = None
                       ) -> tuple[int | None, list[dict[str, Any]], list[str]]:
    """The latest complete checkpoint set of a run folder: ``(step, entries, notes)``.

    Entries carry ``path``, ``file``, ``label``, ``arch``, ``options``. The manifest (checkpoint.json) is
    trusted first; when it or a file it names is missing, the newest complete ``checkpoints/step-<k>/`` set
    is used instead and a note says so. ``(None, [], notes)`` when the run has no checkpoint."""
    folder = Path(folder)
    if labels is None:
        labels = (_read_json(folder / "config.json") or {}).get("racers") or []
    labels = [str(label) for label in labels]
    notes: list[str] = []
    manifest = _read_json(folder / "checkpoint.json")
    if manifest is not None:
        entries = _checkpoint_files_ok(folder, manifest.get("checkpoints"), labels)
        if entries is not None and isinstance(manifest.get("step"), int):
            return manifest["step"], entries, notes
        notes.append(f"the checkpoint of step {manifest.get('step')} is missing a file")
    slugs = {label: _slug(label) for label in labels}
    periodic = folder / "checkpoints"
    sets = sorted(periodic.glob("step-*"), reverse=True) if periodic.is_dir() else []
    for step_dir in sets:
        try:
            step = int(step_dir.name.split("-", 1)[1])
        except ValueError:
            continue
        entries = _checkpoint_files_ok(folder, [{"file": f"checkpoints/{step_dir.name}/{slug}.pt", "label": label}
                                                for label, slug in slugs.items()], labels)
        if entries is not None:
            if manifest is not None:
                notes.append(f"the run resumes from the complete checkpoint of step {step}")
            return step, entries, notes
    return None, [], notes


def list_runs(runs_dir: str | Path | None = None) -> pd.DataFrame:
    """Every run folder, newest first: run_id, name, created, source, status, steps, dataset, racers, device,
    notes.

    Status: the summary's, else "running" while the process writing the folder lives, else "interrupted"
    (``steps`` is then the last logged step). ``notes`` names what is damaged (a cut-short last metrics line,
    a missing checkpoint) and where an interrupted run can resume; a damaged run never hides the others."""
    base = _runs_dir(runs_dir)
    rows = []
    try:
        config_paths = sorted(base.glob("*/config.json"))
    except OSError:
        config_paths = []
    for config_path in config_paths:
        folder = config_path.parent
        info = _read_json(config_path)
        if not isinstance(info, dict) or not isinstance(info.get("config"), dict):
            continue
        summary = _read_json(folder / "summary.json") or {}
        racers = info.get("racers")
        labels = [str(r) for r in racers] if isinstance(racers, list) else []
        status = _run_status(folder, summary)
        steps = summary.get("steps")
        notes = []
        if status == "interrupted":
            steps = _last_step(folder / "metrics.jsonl") or 0
            step, _, ckpt_notes = latest_checkpoints(folder, labels)
            notes += ckpt_notes
            notes.append(f"interrupted after step {steps}; " + (f"resumable from the checkpoint of step {step}"
                                                               if step is not None else "no checkpoint to resume"))
        else:
            for entry in summary.get("checkpoints", []) if isinstance(summary.get("checkpoints"), list) else []:
                file = entry.get("file") if isinstance(entry, dict) else None
                if isinstance(file, str) and not (folder / Path(file).name).is_file():
                    notes.append(f"checkpoint {Path(file).name} is missing")
        try:
            with open(folder / "metrics.jsonl", "rb") as f:
                f.seek(0, os.SEEK_END)
                if f.tell():
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        notes.append("the last metrics line is cut short (skipped)")
        except OSError:
            pass
        rows.append({"run_id": folder.name, "name": str(info["config"].get("name", "")),
                     "created": str(info.get("created", "")), "source": str(info.get("source", "")),
                     "status": status, "steps": steps, "dataset": str(info["config"].get("dataset", "")),
                     "racers": ", ".join(labels), "device": str(info.get("device", "")), "notes": "; ".join(notes)})
    columns = ["run_id", "name", "created", "source", "status", "steps", "dataset", "racers", "device", "notes"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("created", ascending=False, kind="stable").reset_index(drop=True)


def _check_run_id(run_id: str, base: Path) -> None:
    if not run_id or "/" in run_id or "\\" in run_id or ".." in run_id or Path(run_id).name != run_id:
        raise ValueError(f"'{run_id}' is not a run id (a folder name in {base}); pick a run from the list.")


def load_run(run_id: str, runs_dir: str | Path | None = None) -> RunRecord:
    """Read run ``run_id`` back. Damage is skipped and named in ``notes``: metrics lines cut short (a crash,
    a full disk), checkpoints the summary lists but that are gone.

    Raises ValueError (one sentence) for an id that is not a plain folder name (no "/", "\\" or ".."), a
    missing folder, or a config.json that does not describe a valid race (hand-edited, or from an old version).
    """
    base = _runs_dir(runs_dir)
    _check_run_id(run_id, base)
    path = base / run_id
    info = _read_json(path / "config.json")
    if not isinstance(info, dict) or "config" not in info:
        raise ValueError(f"There is no readable run '{run_id}' in {base}; pick one from the list.")
    try:
        config = RaceConfig.from_dict(info["config"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        detail = f"no field {exc}" if isinstance(exc, KeyError) else str(exc).rstrip(".")
        raise ValueError(f"The run '{run_id}' cannot be reopened: its config.json does not describe a race this "
                         f"version can run ({detail}); it was hand-edited or written by an older version.") from None
    steps, evals, notes = _read_metrics(path / "metrics.jsonl")
    history = pd.DataFrame(steps)
    eval_frame = pd.DataFrame(evals, columns=_EVAL_COLUMNS)
    summary_data = _read_json(path / "summary.json") or {}
    status = _run_status(path, summary_data)
    try:
        if summary_data.get("summary"):
            summary = pd.DataFrame(summary_data["summary"])
        else:
            summary = summarize(history, eval_frame)
        checkpoints = []
        for c in summary_data.get("checkpoints", []):
            file = path / Path(c["file"]).name
            if file.is_file():
                checkpoints.append({**c, "path": str(file)})
            else:
                notes.append(f"checkpoint {file.name} ({c.get('label', '?')}) is missing")
        wall_s = float(summary_data.get("wall_s") or 0.0)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"The run '{run_id}' cannot be reopened: its metrics or summary.json are not in the "
                         f"expected form ({type(exc).__name__}: {exc}).") from None
    ckpt_step, periodic, ckpt_notes = latest_checkpoints(path, config.labels)
    if status == "interrupted":
        notes += ckpt_notes
        last = int(history["step"].max()) if not history.empty else 0
        notes.append(f"interrupted after step {last}: " + (
            f"resume it from the checkpoint of step {ckpt_step}" if ckpt_step is not None
            else "killed before its first checkpoint, so it cannot be resumed"))
        checkpoints = checkpoints or [{k: e.get(k) for k in ("file", "label", "arch", "options", "status", "path")}
                                      for e in periodic]
    return RunRecord(run_id, path, info, history, eval_frame, summary, status,
                     [str(m) for m in summary_data.get("messages", [])], checkpoints, wall_s, config, notes,
                     ckpt_step)


def list_checkpoints(runs_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Every checkpoint of every finished or stopped run, and the latest periodic one of an interrupted run,
    newest run first; a listed file that is gone is skipped.

    Each entry: ``path`` (absolute), ``run_id``, ``label`` (e.g. "ResNet-56"), ``arch``, ``options`` (build
    options), ``created`` (the run's start, ISO format)."""
    base = _runs_dir(runs_dir)
    out = []
    try:
        folders = [p.parent for p in base.glob("*/config.json")]
    except OSError:
        folders = []
    for folder in folders:
        info = _read_json(folder / "config.json") or {}
        summary = _read_json(folder / "summary.json")
        if summary is not None:
            entries = [e for e in summary.get("checkpoints", []) if isinstance(e, dict) and "file" in e]
            entries = [{**e, "path": str((folder / Path(e["file"]).name).resolve())} for e in entries]
        elif _run_status(folder, {}) == "interrupted":
            entries = latest_checkpoints(folder)[1]
        else:
            continue
        for entry in entries:
            path = Path(entry["path"]).resolve()
            if path.is_file() and "arch" in entry:
                out.append({"path": str(path), "run_id": folder.name, "label": entry["label"],
                            "arch": entry["arch"], "options": entry["options"], "created": info.get("created", "")})
    return sorted(out, key=lambda c: (c["created"], c["run_id"]), reverse=True)


# ------------------------------------------------------------------------------------------------ resuming
def resume_race(run_id: str, runs_dir: str | Path | None = None, *, write: bool = True
                 ) -> tuple[Race, RunWriter | None]:
    """A race restored from the latest checkpoint of interrupted (or stopped) run ``run_id``, and a writer
    that continues its folder: metrics after the checkpoint step are dropped (the resumed race logs them
    again, identically), status.json says running again, a stopped run's summary.json is removed.

    Weights, optimizer and scaler state, step and data order are restored, so the resumed race draws the
    curve the uninterrupted one would (see :meth:`~resnet_core.train.Race.restore`). ``write=False`` (other
    torchrun ranks) touches nothing on disk and returns no writer. Raises ValueError (one sentence) when
    the run is running, finished, or has no checkpoint; RunStorageError when its folder cannot be written."""
    record = load_run(run_id, runs_dir)
    if record.status == "running":
        raise ValueError(f"The run '{run_id}' is still running in another process; stop it before resuming it.")
    if record.status == "finished":
        raise ValueError(f"The run '{run_id}' finished; there is nothing to resume.")
    step, entries, _ = latest_checkpoints(record.path, record.config.labels)
    if step is None:
        raise ValueError(f"The run '{run_id}' was stopped before its first checkpoint, so it cannot be resumed; "
                         f"start it again (checkpoints are written every {record.config.checkpoint_every} steps).")
    checkpoints = {}
    for entry in entries:
        try:
            ckpt = load_resume_checkpoint(entry["path"])
        except Exception as exc:  # noqa: BLE001 - any unreadable file means the same to the user
            raise ValueError(f"The checkpoint {entry['path']} cannot be read ({type(exc).__name__}); the run "
                             f"'{run_id}' cannot be resumed from step {step}.") from None
        checkpoints[entry["label"]] = ckpt
    race = Race(record.config)
    steps, evals, _ = _read_metrics(record.path / "metrics.jsonl")
    race.restore(checkpoints, steps, evals)
    if not write:
        return race, None
    writer = RunWriter(record.path, record.config, str(record.info.get("source", "app")))
    writer.created = str(record.info.get("created", writer.created))
    writer.checkpoint_step = step
    writer.mark_running()
    writer.rewrite_metrics(race.rows, race.eval_rows)
    with _storing(writer.base):
        (record.path / "summary.json").unlink(missing_ok=True)
        for stale in record.path.glob(".*.tmp"):  # temporary files of a write the kill cut short
            stale.unlink(missing_ok=True)
    return race, writer


def resume_run(run_id: str, runs_dir: str | Path | None = None) -> Job:
    """A ready :class:`Job` continuing interrupted (or stopped) run ``run_id`` in its own folder from its
    latest checkpoint; call ``start()``. Its snapshot holds the whole curve, old steps and new."""
    race, writer = resume_race(run_id, runs_dir)
    assert writer is not None
    return Job(race.config, runs_dir, race=race, writer=writer, source=writer.source)
