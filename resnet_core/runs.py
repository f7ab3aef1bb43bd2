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
:class:`~resnet_core.train.Race` and a thread; the thread never touches Streamlit, it updates plain
attributes under a lock and the page draws :meth:`Job.snapshot`. A :class:`Registry` (kept by the app in
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
                self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            if self._status == "ready":
                self._status = "stopped"
                self.race.stop()
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
            while self.race.step_index < step and self._status in ("running", "paused", "ready"):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.5))
            return self.race.step_index >= step

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
                        self._cond.wait()
                    if self._stop or race.done:
                        break
                    if self._paused:
                        self._budget -= 1
                t = time.perf_counter()
                rows = race.step()  # outside the lock: controls and snapshots don't wait for a step
                evals = race.evaluate() if race.eval_due() else []
                self.writer.append(rows)
                self.writer.append(evals, kind="eval")
                with self._cond:
                    self._active_s += time.perf_counter() - t
                    self._cond.notify_all()
                    if race.done:
                        break
            final = "finished" if race.done else "stopped"
            if final == "stopped":
                scored = bool(race.eval_rows) and race.eval_rows[-1]["step"] == race.step_index
                if race.step_index > 0 and not scored:
                    self.writer.append(race.evaluate(), kind="eval")  # a stopped race still gets a held-out score
                race.stop()
            paths = self.writer.finish(race, final)
            with self._cond:
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
                self._cond.notify_all()

    # -- reading
    def snapshot(self) -> JobSnapshot:
        """A copy of the job's state that the page can draw while the thread goes on."""
        race = self.race
        with self._cond:
            rows, eval_rows = list(race.rows), list(race.eval_rows)
            status, step, active_s = self._status, race.step_index, self._active_s
            racers = {r.label: r.status for r in race.racers}
            messages = race.messages + ([self._error] if self._error else [])
            checkpoints = list(self._checkpoints)
        history, evals = pd.DataFrame(rows), pd.DataFrame(eval_rows, columns=["step", "racer", "test_loss", "test_acc"])
        summary = summarize(history, evals, {r.label: r.params for r in race.racers},
                            {r.label: r.seconds for r in race.racers}, racers)
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
            busy = [j for j in self._jobs.values() if j.status in ("running", "paused")]
            if busy:
                raise ValueError(f"The race '{busy[0].config.name}' is still {busy[0].status}; stop it before "
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

    @property
    def config(self) -> RaceConfig:
        return RaceConfig.from_dict(self.info["config"])


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
        if not info or "config" not in info:
            continue
        summary = _read_json(config_path.parent / "summary.json") or {}
        rows.append({"run_id": config_path.parent.name, "name": info["config"].get("name", ""),
                     "created": info.get("created", ""), "source": info.get("source", ""),
                     "status": summary.get("status", "incomplete"), "steps": summary.get("steps"),
                     "dataset": info["config"].get("dataset", ""), "racers": ", ".join(info.get("racers", [])),
                     "device": info.get("device", "")})
    columns = ["run_id", "name", "created", "source", "status", "steps", "dataset", "racers", "device"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("created", ascending=False, kind="stable").reset_index(drop=True)


def load_run(run_id: str, runs_dir: str | Path | None = None) -> RunRecord:
    """Read run ``run_id`` back (metrics lines that are cut short, e.g. by a crash, are skipped)."""
    path = _runs_dir(runs_dir) / run_id
    info = _read_json(path / "config.json")
    if info is None or "config" not in info:
        raise ValueError(f"There is no readable run '{run_id}' in {path.parent}; pick one from the list.")
    steps, evals = [], []
    metrics = path / "metrics.jsonl"
    if metrics.exists():
        for line in metrics.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            kind = row.pop("kind", "step")
            row = {k: (float("nan") if v is None and k not in ("status",) else v) for k, v in row.items()}
            (evals if kind == "eval" else steps).append(row)
    history = pd.DataFrame(steps)
    eval_frame = pd.DataFrame(evals, columns=["step", "racer", "test_loss", "test_acc"])
    summary_data = _read_json(path / "summary.json") or {}
    if summary_data.get("summary"):
        summary = pd.DataFrame(summary_data["summary"])
    else:
        summary = summarize(history, eval_frame)
    checkpoints = [{**c, "path": str(path / c["file"])} for c in summary_data.get("checkpoints", [])]
    return RunRecord(run_id, path, info, history, eval_frame, summary, summary_data.get("status", "incomplete"),
                     list(summary_data.get("messages", [])), checkpoints, float(summary_data.get("wall_s") or 0.0))


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
