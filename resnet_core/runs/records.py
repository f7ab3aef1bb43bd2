"""Past runs read back: the list of run folders, one run's record, its latest complete checkpoint set."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..train import RaceConfig, summarize
from .folders import (
    _EVAL_COLUMNS,
    LIVE_STATUSES,
    _process_alive,
    _reason,
    _runs_dir,
    _slug,
)


# ------------------------------------------------------------------------------------------------ past runs
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


@dataclass
class RunRecord:
    """A run folder read back: its config, metrics and summary.

    ``status`` is the summary's, else status.json's ("ready", "running", "paused") while the process that
    writes the folder lives, else "interrupted". ``notes`` says what was found damaged and skipped (a cut-short metrics line, a missing
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
    def title(self) -> str:
        """How the app names the run to a visitor (never by its folder): "the race 'Plain-20 vs ResNet-20' of 6 Dec
        17:00"."""
        return race_title(str(self.info.get("config", {}).get("name", "")), str(self.info.get("created", "")))

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


def race_title(name: str, created: str) -> str:
    """"the race 'NAME' of 6 Dec 17:00" from a run's name and its ISO start time."""
    import datetime

    try:
        moment = datetime.datetime.fromisoformat(created)
        when = f" of {moment.day} {moment:%b %H:%M}"
    except ValueError:
        when = ""
    return f"the race '{name}'{when}" if name else f"the race{when}"


def unique_titles(titles: dict[str, str]) -> dict[str, str]:
    """``titles`` (run id -> title) with a repeated title numbered ("... #2"): two races of one name started in the
    same minute stay two choices in a picker."""
    seen: dict[str, int] = {}
    out = {}
    for run_id, title in titles.items():
        seen[title] = seen.get(title, 0) + 1
        out[run_id] = title if seen[title] == 1 else f"{title} #{seen[title]}"
    return out


def past_run_titles(runs: pd.DataFrame) -> dict[str, str]:
    """Run id -> "the race 'NAME' of 6 Dec 17:00 (finished, step 50)" for every row of :func:`list_runs`."""
    def status(row: Any) -> str:
        steps = row.steps
        known = steps is not None and steps == steps  # NaN when the run recorded no step
        return f"{row.status}, step {int(steps)}" if known else str(row.status)

    return unique_titles({row.run_id: f"{race_title(row.name, row.created)} ({status(row)})"
                          for row in runs.itertuples()})


def past_runs_table(runs: pd.DataFrame) -> pd.DataFrame:
    """:func:`list_runs` as a visitor reads it: races by title and data sets by name, no folder, id or host."""
    from ..data import dataset_title

    titles = past_run_titles(runs)
    return pd.DataFrame({"race": [titles[r] for r in runs["run_id"]], "source": runs["source"],
                         "data": [dataset_title(d) for d in runs["dataset"]], "racers": runs["racers"],
                         "notes": runs["notes"]})


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _run_status(folder: Path, summary: dict[str, Any]) -> str:
    """The summary's final status; else status.json's live state (ready, running, paused) while the process
    that wrote it lives; "failed" as it says; else "interrupted" (killed, power cut, or a final status whose
    summary never came)."""
    if summary.get("status"):
        return str(summary["status"])
    state = _read_json(folder / "status.json") or {}
    if state.get("status") in LIVE_STATUSES and _process_alive(state.get("pid"), state.get("pid_started")):
        return str(state["status"])
    if state.get("status") == "failed":  # a failure whose summary could not be written
        return "failed"
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

    Status: the summary's, else status.json's live state while the process writing the folder lives, else
    "interrupted"
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
        raise ValueError(f"'{run_id}' is not a run id (a folder name in the runs folder); pick a run from the list.")


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
        raise ValueError(f"There is no readable run '{run_id}' in the runs folder; pick one from the list.")
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
