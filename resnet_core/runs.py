"""Runs: races in a background thread with Start/Pause/Resume/Step/Stop, and their folders on disk.

Every run (from the app or the CLI) is a folder ``<runs dir>/<run id>/`` holding

``config.json``
    the race configuration, where it ran and when it started;
``metrics.jsonl``
    one JSON object per line: ``{"kind": "step", "step", "racer", "loss", "acc", "lr", "images_per_s",
    "status", "grad_<stage>"...}`` per step and racer, ``{"kind": "eval", "step", "racer", "test_loss",
    "test_acc"}`` per held-out evaluation;
``summary.json``
    written at the end: status, wall time, messages, the summary table and the checkpoint list;
``<racer>.pt``
    one checkpoint per racer in the project's format (``torch.load(path, weights_only=True)``).

The runs directory is ``$RESNET_EXPLORER_RUNS`` or ``runs/`` at the repository root. A :class:`Job` owns a
:class:`~resnet_core.train.Race` and a thread; the thread never touches Streamlit: it trains a step (and its
evaluation) outside the lock, then publishes the results to the job's own copies under the lock, and the page
draws :meth:`Job.snapshot`, built from those copies only (so a snapshot's step, history and summary agree). A :class:`Registry` (kept by the app in
``st.cache_resource``) holds the jobs, so a run survives page switches and browser refreshes.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .train import Race, RaceConfig, describe_device, summarize

_EVAL_COLUMNS = ["step", "racer", "test_loss", "test_acc"]

JOB_STATUSES = ("ready", "running", "paused", "stopped", "finished", "failed")


def runs_dir(path: str | Path | None = None) -> Path:
    """``path`` if given, else ``$RESNET_EXPLORER_RUNS``, else ``runs/`` at the repository root."""
    if path is not None:
        return Path(path)
    env = os.environ.get("RESNET_EXPLORER_RUNS")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "runs"


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


class RunWriter:
    """Writes one run folder: config, JSON-lines metrics, summary and checkpoints."""

    def __init__(self, path: Path, config: RaceConfig, source: str) -> None:
        self.path, self.config, self.source = path, config, source
        self.run_id = path.name
        self.created = _now()

    @classmethod
    def create(cls, config: RaceConfig, runs_dir: str | Path | None = None, source: str = "app") -> RunWriter:
        """A new, uniquely named folder ``<date>-<time>-<race name>`` under the runs directory."""
        base = _runs_dir(runs_dir)
        base.mkdir(parents=True, exist_ok=True)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        stem = f"{stamp}-{_slug(config.name)}"
        for n in range(1000):
            path = base / (stem if n == 0 else f"{stem}-{n + 1}")
            try:
                path.mkdir()
                return cls(path, config, source)
            except FileExistsError:
                continue
        raise RuntimeError(f"Could not create a new run folder under {base}.")

    def write_config(self, device: str, world_size: int = 1) -> None:
        data = {"run_id": self.run_id, "created": self.created, "source": self.source, "device": device,
                "world_size": world_size, "racers": self.config.labels, "config": self.config.to_dict()}
        (self.path / "config.json").write_text(json.dumps(data, indent=2))

    def append(self, rows: list[dict[str, Any]], kind: str = "step") -> None:
        if not rows:
            return
        with open(self.path / "metrics.jsonl", "a") as f:
            for row in rows:
                f.write(json.dumps({"kind": kind, **{k: _json_safe(v) for k, v in row.items()}}) + "\n")

    def finish(self, race: Race, status: str, error: str = "") -> list[Path]:
        """Save one checkpoint per racer and ``summary.json``; returns the checkpoint paths."""
        paths, entries = [], []
        if race.step_index > 0:
            for racer in race.racers:
                ckpt = race.checkpoint(racer)
                path = self.path / f"{_slug(racer.label)}.pt"
                torch.save(ckpt, path)
                paths.append(path)
                entries.append({"file": path.name, "label": racer.label, "arch": ckpt["arch"],
                                "options": ckpt["options"], "status": racer.status})
        summary = race.summary()
        data = {"status": status, "finished": _now(), "steps": race.step_index, "wall_s": race.wall,
                "messages": race.messages + ([error] if error else []), "checkpoints": entries,
                "summary": [{k: _json_safe(v) for k, v in row.items()} for row in summary.to_dict("records")]}
        (self.path / "summary.json").write_text(json.dumps(data, indent=2, default=str))
        return paths


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
    """

    def __init__(self, config: RaceConfig, runs_dir: str | Path | None = None, *, race: Race | None = None,
                 source: str = "app") -> None:
        self.config = config
        self.race = race if race is not None else Race(config)  # raises ValueError/DataError for bad input
        self.writer = RunWriter.create(config, runs_dir, source)
        self.device = describe_device(self.race.device)
        self.writer.write_config(self.device, self.race.dist.world_size)
        self.run_id = self.writer.run_id
        self.path = self.writer.path
        self._cond = threading.Condition()
        self._status = "ready"
        self._paused = False
        self._stop = False
        self._budget = 0  # single steps requested while paused
        self._active_s = 0.0
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
                self.writer.finish(self.race, "stopped")
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
                self.writer.append(rows)
                self.writer.append(evals, kind="eval")
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
                    self.writer.append(evals, kind="eval")
                race.stop()
            paths = self.writer.finish(race, final)
            with self._cond:
                self._publish([], evals)
                self._checkpoints = [str(p) for p in paths]
                self._status = final
                self._cond.notify_all()
        except Exception as exc:  # the thread must not die silently: the page shows the sentence
            message = f"The race stopped with an error: {exc}"
            try:
                self.writer.finish(race, "failed", message)
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
            messages = self._messages + ([self._error] if self._error else [])
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

    def start(self, config: RaceConfig, *, paused: bool = False) -> Job:
        """Create a job for ``config`` and start it (or leave it ready when ``paused``).

        Raises ValueError (one sentence) when another race is still training or the config is bad."""
        with self._lock:
            # A job left "ready" (created paused, never started) counts too: it holds the one race slot.
            busy = [j for j in self._jobs.values() if j.status in ("ready", "running", "paused")]
            if busy:
                state = "waiting to start" if busy[0].status == "ready" else busy[0].status
                raise ValueError(f"The race '{busy[0].config.name}' is still {state}; stop it before "
                                 f"starting another.")
            job = Job(config, self.runs_dir)
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
    """A run folder read back: its config, metrics and summary."""

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

    @property
    def config(self) -> RaceConfig:
        return self.race_config if self.race_config is not None else RaceConfig.from_dict(self.info["config"])


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def list_runs(runs_dir: str | Path | None = None) -> pd.DataFrame:
    """Every run folder, newest first: run_id, name, created, source, status, steps, dataset, racers, device.

    A folder without ``summary.json`` is "running" while this process trains it, else "incomplete"."""
    base = _runs_dir(runs_dir)
    rows = []
    for config_path in sorted(base.glob("*/config.json")):
        info = _read_json(config_path)
        if not isinstance(info, dict) or not isinstance(info.get("config"), dict):
            continue
        summary = _read_json(config_path.parent / "summary.json")
        summary = summary if isinstance(summary, dict) else {}
        racers = info.get("racers")
        rows.append({"run_id": config_path.parent.name, "name": str(info["config"].get("name", "")),
                     "created": str(info.get("created", "")), "source": str(info.get("source", "")),
                     "status": str(summary.get("status", "incomplete")), "steps": summary.get("steps"),
                     "dataset": str(info["config"].get("dataset", "")),
                     "racers": ", ".join(map(str, racers)) if isinstance(racers, list) else "",
                     "device": str(info.get("device", ""))})
    columns = ["run_id", "name", "created", "source", "status", "steps", "dataset", "racers", "device"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("created", ascending=False, kind="stable").reset_index(drop=True)


def load_run(run_id: str, runs_dir: str | Path | None = None) -> RunRecord:
    """Read run ``run_id`` back (metrics lines that are cut short, e.g. by a crash, are skipped).

    Raises ValueError (one sentence) for an id that is not a plain folder name (no "/", "\\" or ".."), a
    missing folder, or a config.json that does not describe a valid race (hand-edited, or from an old version).
    """
    base = _runs_dir(runs_dir)
    if not run_id or "/" in run_id or "\\" in run_id or ".." in run_id or Path(run_id).name != run_id:
        raise ValueError(f"'{run_id}' is not a run id (a folder name in {base}); pick a run from the list.")
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
    steps, evals = [], []
    metrics = path / "metrics.jsonl"
    if metrics.exists():
        for line in metrics.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if not isinstance(row, dict):
                continue
            kind = row.pop("kind", "step")
            row = {k: (float("nan") if v is None and k not in ("status",) else v) for k, v in row.items()}
            (evals if kind == "eval" else steps).append(row)
    history = pd.DataFrame(steps)
    eval_frame = pd.DataFrame(evals, columns=_EVAL_COLUMNS)
    summary_data = _read_json(path / "summary.json")
    summary_data = summary_data if isinstance(summary_data, dict) else {}
    try:
        if summary_data.get("summary"):
            summary = pd.DataFrame(summary_data["summary"])
        else:
            summary = summarize(history, eval_frame)
        checkpoints = [{**c, "path": str(path / Path(c["file"]).name)} for c in summary_data.get("checkpoints", [])]
        wall_s = float(summary_data.get("wall_s") or 0.0)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"The run '{run_id}' cannot be reopened: its metrics or summary.json are not in the "
                         f"expected form ({type(exc).__name__}: {exc}).") from None
    return RunRecord(run_id, path, info, history, eval_frame, summary, str(summary_data.get("status", "incomplete")),
                     [str(m) for m in summary_data.get("messages", [])], checkpoints, wall_s, config)


def list_checkpoints(runs_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Every checkpoint of every finished or stopped run, newest run first.

    Each entry: ``path`` (absolute), ``run_id``, ``label`` (e.g. "ResNet-56"), ``arch``, ``options`` (build
    options), ``created`` (the run's start, ISO format)."""
    base = _runs_dir(runs_dir)
    out = []
    for summary_path in base.glob("*/summary.json"):
        summary = _read_json(summary_path)
        info = _read_json(summary_path.parent / "config.json") or {}
        if not summary:
            continue
        for entry in summary.get("checkpoints", []):
            path = (summary_path.parent / entry["file"]).resolve()
            if path.is_file():
                out.append({"path": str(path), "run_id": summary_path.parent.name, "label": entry["label"],
                            "arch": entry["arch"], "options": entry["options"], "created": info.get("created", "")})
    return sorted(out, key=lambda c: (c["created"], c["run_id"]), reverse=True)
