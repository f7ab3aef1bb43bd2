"""Races on a thread: a job (start, pause, stop, resume; controlled in this process or through its folder's
control file) and resuming an interrupted run. :mod:`.registry` lets one race train per runs folder."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from ..train import Race, RaceConfig, describe_device, summarize
from ..weights.checkpoints.format import load_resume_checkpoint
from .folders import (
    _EVAL_COLUMNS,
    LIVE_STATUSES,
    ControlReader,
    RunStorageError,
    RunWriter,
    _runs_dir,
    _storing,
    new_run_id,
)
from .records import (
    JobSnapshot,
    _read_metrics,
    latest_checkpoints,
    load_run,
)

CONTROL_POLL_S = 0.25  # how often a paused job looks for a request from another process


# ------------------------------------------------------------------------------------------------ jobs
class Job:
    """A race in a background thread. Controls take effect between steps (so within one step):

    ``start()`` runs to the end; ``pause()`` holds after the current step and returns once that step is
    published (so the step a snapshot shows then is the one the race holds at); ``resume()`` continues;
    ``step_once()`` (when ready or paused) trains exactly one more step and stays paused, returning the step
    it will hold at; ``stop()`` ends the run after the current step and saves checkpoints. The thread never
    raises: a failure becomes status "failed" with a one-sentence message.

    Every change of state is written to the run folder's status.json (ready, running, paused, then stopped,
    finished or failed). Another process controls the race through the folder's control.jsonl
    (:func:`~resnet_core.runs.folders.write_control`): the thread looks at its modification time between steps,
    and every :data:`CONTROL_POLL_S` while paused, and applies each new request once. ``on_end(job)`` is called
    once, on the thread, after the final state is written (the registry frees its race slot there).

    When the runs folder cannot be written (at the start or later: read-only, full), the race goes on in
    memory: ``storage_error`` holds the sentence (also in the snapshot's messages), the curves stay in the
    job, and :meth:`export` writes the whole run once space returns. ``writer`` (a :class:`RunWriter` already
    set up, e.g. by :func:`resume_race`) continues an existing folder.
    """

    def __init__(self, config: RaceConfig, runs_dir: str | Path | None = None, *, race: Race | None = None,
                 source: str = "app", writer: RunWriter | None = None,
                 on_end: Callable[[Job], None] | None = None) -> None:
        self.config = config
        self.race = race if race is not None else Race(config)  # raises ValueError/DataError for bad input
        self.source = source
        self.device = describe_device(self.race.device)
        self._runs_dir = runs_dir
        self._storage_error = ""
        resumed = writer is not None
        if writer is None:
            try:
                writer = RunWriter.create(config, runs_dir, source)
                writer.write_config(self.device, self.race.dist.world_size, status="ready")
            except RunStorageError as exc:
                writer, self._storage_error = None, str(exc)
        self.writer: RunWriter | None = writer
        self._on_end = on_end
        self._ended = False  # on_end was called
        self._status_io = threading.Lock()  # status.json writes one at a time, the latest state last
        self.run_id = writer.run_id if writer is not None else new_run_id(config)
        self.path = writer.path if writer is not None else _runs_dir(runs_dir) / self.run_id
        self._controls = ControlReader(self.path)  # requests of other processes, from now on
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
        self._in_flight = False  # a step (or its evaluation and writes) runs outside the lock
        # What snapshots read: the race's results as of the last published step (see _publish).
        self._rows: list[dict[str, Any]] = []
        self._eval_rows: list[dict[str, Any]] = []
        self._step = 0
        self._racers: dict[str, str] = {}
        self._messages: list[str] = []
        self._seconds: dict[str, float] = {}
        self._params = {r.label: r.params for r in self.race.racers}
        self._publish(list(self.race.rows), list(self.race.eval_rows))
        if resumed:
            self._write_status()  # "ready": resume_race left "running" while it restored the race

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
            else:
                return
        self._write_status()

    def pause(self, timeout: float = 60.0) -> int:
        """Hold after the step in flight; returns the step the race holds at.

        Waits (up to ``timeout``) for that step to be published: returning earlier, a page would draw the
        step before it, and the next Step would seem to train two (the one in flight, then its own)."""
        with self._cond:
            changed = self._status == "running"
            if changed:
                self._paused = True
                self._status = "paused"
        self.wait_paused(timeout)
        if changed:
            self._write_status()  # once the step in flight is in: status.json names the step it holds at
        with self._cond:
            return self._step

    def resume(self) -> None:
        self.start()

    def step_once(self) -> int:
        """Train exactly one more step (when ready or paused), then stay paused; returns the step the race
        will hold at, for :meth:`wait_for_step` (the current step when it is neither ready nor paused)."""
        with self._cond:
            if self._status == "ready":
                self._launch(paused=True, budget=1)
                launched = True
            elif self._status == "paused":
                self._budget += 1
                self._parked = False
                self._cond.notify_all()
                launched = False
            else:
                return self._step
            # Steps already asked for count too: the one in flight and any single steps still pending.
            target = self._step + int(self._in_flight) + self._budget
        if launched:
            self._write_status()
        return target

    def stop(self) -> None:
        with self._status_io, self._cond:  # status_io first, as in _write_status
            if self._status == "ready":
                self._status = "stopped"
                self.race.stop()
                self._publish([], [])
                self._store(lambda w: w.finish(self.race, "stopped"))  # the summary, then status.json
                ended = True
            else:
                self._stop = True
                self._cond.notify_all()
                ended = False
        if ended:
            self._end()

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

    def _write_status(self) -> None:
        """status.json says the job's state now (read under the I/O lock: the last write is the latest state)."""
        with self._status_io:
            with self._cond:
                status, step = self._status, self._step
            self._store(lambda w: w.write_status(status, step))

    def _end(self) -> None:
        with self._cond:
            if self._ended:
                return
            self._ended = True
        if self._on_end is not None:
            self._on_end(self)

    # -- requests from other processes (control.jsonl)
    def _check_control(self) -> None:
        """Apply the requests appended to control.jsonl since the last look, in order (a stat when none came)."""
        if self.writer is None:
            return
        for request in self._controls.new():
            self._apply_control(request)

    def _apply_control(self, request: Any) -> None:
        with self._cond:
            before = self._status
            if request == "pause" and self._status == "running":
                self._paused, self._status = True, "paused"
            elif request == "resume" and self._status == "paused":
                self._paused, self._status = False, "running"
            elif request == "step" and self._status == "paused":
                self._budget += 1
            elif request == "stop":
                self._stop = True
            self._cond.notify_all()
            changed = self._status != before
        if changed:
            self._write_status()

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
            writer.write_config(self.device, self.race.dist.world_size,
                                status=self._status if self._status in ("ready", "paused") else "running")
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
                self._check_control()  # outside the lock: a request another process wrote
                with self._cond:
                    if self._paused and self._budget == 0 and not self._stop:
                        self._parked = True
                        self._cond.notify_all()  # wait_paused
                        # Woken by a control of this process, or after a while to look at control.jsonl again.
                        self._cond.wait(CONTROL_POLL_S if self.writer is not None else None)
                        continue
                    self._parked = False
                    if self._stop or race.done:
                        break
                    if self._paused:
                        self._budget -= 1
                    self._in_flight = True
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
                    self._in_flight = False
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
            paths = self._store(lambda w: w.finish(race, final)) or []  # the summary, then status.json
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
                self._parked = self._in_flight = False
                self._cond.notify_all()
        finally:
            self._write_status()  # again after the summary's: a Pause racing the end cannot have the last word
            self._end()

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
    if record.status in LIVE_STATUSES:
        raise ValueError(f"The run '{run_id}' is still {record.status} in a live process; stop it before resuming "
                         "it.")
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
    writer.write_status("running")
    writer.rewrite_metrics(race.rows, race.eval_rows)
    with _storing(writer.base):
        (record.path / "summary.json").unlink(missing_ok=True)
        for stale in record.path.glob(".*.tmp"):  # temporary files of a write the kill cut short
            stale.unlink(missing_ok=True)
    return race, writer


def resume_run(run_id: str, runs_dir: str | Path | None = None,
               on_end: Callable[[Job], None] | None = None) -> Job:
    """A ready :class:`Job` continuing interrupted (or stopped) run ``run_id`` in its own folder from its
    latest checkpoint; call ``start()``. Its snapshot holds the whole curve, old steps and new. (The registry's
    ``resume`` does this inside the runs folder's one race slot.)"""
    race, writer = resume_race(run_id, runs_dir)
    assert writer is not None
    return Job(race.config, runs_dir, race=race, writer=writer, source=writer.source, on_end=on_end)
