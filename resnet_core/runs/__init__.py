"""Runs: races in a background thread with Start/Pause/Resume/Step/Stop, and their folders on disk.

Every run (from the app or the CLI) is a folder ``<runs dir>/<run id>/`` holding

``config.json``
    the race configuration, where it ran and when it started;
``status.json``
    the run's state, rewritten at every change (ready, running, paused, stopped, finished, failed) with the
    process (pid and its start time) that writes the folder: a live state whose process is gone was interrupted
    (killed, power cut) and is listed as "interrupted";
``control.jsonl``
    the Pause/Resume/Step/Stop requests of any process, one per line (:func:`write_control` appends), each
    applied once and in order by the race's thread between steps;
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
draws :meth:`Job.snapshot`, built from those copies only (so a snapshot's step, history and summary agree).
One race trains per runs folder, whichever process starts it: :func:`registry_for` gives the folder's
:class:`RaceRegistry`, whose slot is the lock file ``race.lock`` (see :mod:`.registry`); its ``current()`` race
is a job of this process or a :class:`FolderRace` (another process's race, read from and controlled through its
folder), so a race survives page switches and refreshes and every tab, replica and notebook sees it.
"""

from __future__ import annotations

from .folders import (
    CONTROL_FILE,
    CONTROL_REQUESTS,
    JOB_STATUSES,
    LIVE_STATUSES,
    RUN_STATUSES,
    ControlReader,
    RunStorageError,
    RunWriter,
    new_run_id,
    write_control,
)
from .foreground import ForegroundControls
from .jobs import (
    CONTROL_POLL_S,
    Job,
    resume_race,
    resume_run,
)
from .records import (
    JobSnapshot,
    RunRecord,
    latest_checkpoints,
    list_checkpoints,
    list_runs,
    load_run,
    past_run_titles,
    past_runs_table,
    race_title,
    unique_titles,
)
from .registry import (
    LOCK_FILE,
    STARTED_BY,
    FolderRace,
    RaceBusy,
    RaceLock,
    RaceRegistry,
    registry_for,
    this_host,
)

__all__ = [
    "CONTROL_FILE", "CONTROL_POLL_S", "CONTROL_REQUESTS", "ControlReader", "FolderRace", "ForegroundControls",
    "JOB_STATUSES", "Job", "JobSnapshot", "LIVE_STATUSES", "LOCK_FILE", "RUN_STATUSES", "RaceBusy", "RaceLock",
    "RaceRegistry", "RunRecord", "RunStorageError", "RunWriter", "STARTED_BY",
    "latest_checkpoints", "list_checkpoints", "list_runs", "load_run", "new_run_id", "past_run_titles",
    "past_runs_table", "race_title", "registry_for", "resume_race", "resume_run", "this_host",
    "unique_titles", "write_control",
]
