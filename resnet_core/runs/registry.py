"""One race at a time per runs folder, whichever process starts it: the race registry.

On a 2-core laptop two races would each train at half speed, and a classroom shares one server, so a runs folder
holds one race slot. The slot is the lock file ``<runs dir>/race.lock`` (created with O_CREAT|O_EXCL; JSON: run
id, race name, source, pid, the process's start time, since). Every process (each replica of the app, a
notebook's kernel) takes it through :func:`registry_for`, which returns one :class:`RaceRegistry` per runs folder
and process. A lock whose process is gone (killed, power cut), or whose pid now belongs to another process (its
start time differs), is stale: the next start takes it over and writes "interrupted" to that run's status.json.
Taking and freeing the lock happen under an ``flock`` on ``.race.lock.guard`` (the kernel drops it when a process
dies), so two processes never both take over one stale lock.

A race of this process is its :class:`~resnet_core.runs.jobs.Job`; a race of another process is a
:class:`FolderRace`: snapshots read from its run folder, Pause/Resume/Step/Stop written to its control.jsonl.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..train import RaceConfig
from ..weights.checkpoints.format import atomic_write
from .folders import (
    LIVE_STATUSES,
    _now,
    _process_alive,
    _process_start,
    _runs_dir,
    write_control,
)
from .jobs import Job, resume_run
from .records import JobSnapshot, _check_run_id, _last_step, _read_json, _run_status, load_run

LOCK_FILE = "race.lock"
_GUARD_FILE = ".race.lock.guard"
# Who started a race, as the sentence says it (a source not listed is named as it is).
STARTED_BY = {"app": "the Training page", "lesson": "the lesson", "notebook": "a notebook",
              "cli": "the command line"}
_POLL_S = 0.05  # how often a FolderRace control looks for the race's answer in status.json


@dataclass(frozen=True)
class RaceLock:
    """The content of race.lock: which race holds the slot, and the process that trains it."""

    run_id: str | None  # None while the race is being prepared (its folder not made yet)
    name: str
    source: str
    pid: int
    pid_started: int | None
    since: str
    token: str  # tells this registry's own lock apart from another registry's in the same process
    host: str = ""  # the machine (and boot) of the process: its pid means nothing on another one

    @classmethod
    def read(cls, path: Path) -> RaceLock | None:
        data = _read_json(path)
        try:
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data}) if data else None
        except TypeError:
            return None

    @property
    def alive(self) -> bool:
        """Whether the holder still runs. A lock written on another machine (a replica sharing the runs folder
        over the network, another container) cannot be checked from here: it counts as alive, and is only ever
        freed by its own process (or by deleting race.lock by hand once that machine is gone)."""
        if self.host and self.host != this_host():
            return True
        return _process_alive(self.pid, self.pid_started)


def this_host() -> str:
    """This machine and boot: the host name and the kernel's boot id (a pid is only meaningful within both)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    return f"{socket.gethostname()}/{boot}"


class RaceBusy(ValueError):
    """A race holds the slot: one sentence naming it, who started it and the step it is at. ``run_id`` (None
    while it is being prepared) lets a page offer to watch it."""

    def __init__(self, lock: RaceLock, status: str, step: int | None, steps: int | None) -> None:
        self.lock, self.run_id, self.status = lock, lock.run_id, status
        who = STARTED_BY.get(lock.source, lock.source or "another process")
        if lock.run_id is None:
            where = "is being prepared"
        else:
            state = {"running": "training", "ready": "waiting to start"}.get(status, status)
            where = f"is {state}, at step {step or 0}" + (f" of {steps}" if steps else "")
        super().__init__(f"The race '{lock.name}' (started by {who}) {where}; one race trains at a time, so "
                         "watch it, or stop it before starting another.")


class FolderRace:
    """A race trained by another process, seen through its run folder: what a :class:`Job` offers the page.

    ``snapshot()`` reads the folder (metrics, summary, status.json); ``pause``, ``resume``, ``step_once`` and
    ``stop`` write control.jsonl, which the race's thread applies between steps, and wait (up to ``timeout``)
    for status.json to say so."""

    def __init__(self, run_id: str, runs_dir: str | Path | None = None, source: str | None = None) -> None:
        self.run_id, self.runs_dir = run_id, _runs_dir(runs_dir)
        self.path = self.runs_dir / run_id
        info = _read_json(self.path / "config.json") or {}
        self.config = RaceConfig.from_dict(info["config"])  # KeyError/ValueError for a folder that is no run
        self.source = source if source is not None else str(info.get("source", ""))
        self.device = str(info.get("device", ""))
        self.storage_error = ""  # another process writes the folder: nothing kept in memory here

    @property
    def status(self) -> str:
        return _run_status(self.path, _read_json(self.path / "summary.json") or {})

    @property
    def step(self) -> int:
        return _last_step(self.path / "metrics.jsonl") or 0

    def snapshot(self) -> JobSnapshot:
        snap = load_run(self.run_id, self.runs_dir).snapshot()
        if snap.active and not snap.history.empty and "images_per_s" in snap.history:
            # Elapsed while it trains (its summary comes at the end): each racer's compute time per step.
            snap.elapsed_s = float((self.config.batch_size / snap.history["images_per_s"]).sum())
        return snap

    def _request(self, request: str, until: tuple[str, ...], timeout: float) -> None:
        write_control(self.path, request)
        deadline = time.monotonic() + timeout
        while self.status not in until and time.monotonic() < deadline:
            time.sleep(_POLL_S)

    def pause(self, timeout: float = 60.0) -> int:
        """Ask the race to hold after the step in flight; returns the step it holds at (once it says paused)."""
        if self.status == "running":
            self._request("pause", ("paused", "stopped", "finished", "failed", "interrupted"), timeout)
        return self.step

    def resume(self, timeout: float = 10.0) -> None:
        if self.status == "paused":
            self._request("resume", ("running", "stopped", "finished", "failed", "interrupted"), timeout)

    def start(self) -> None:
        self.resume()

    def step_once(self) -> int:
        """One more step of a paused race; returns the step it will hold at (for :meth:`wait_for_step`)."""
        step = self.step
        if self.status != "paused":
            return step
        write_control(self.path, "step")
        return step + 1

    def stop(self) -> None:
        if self.status in LIVE_STATUSES:
            write_control(self.path, "stop")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the race ended (True) or ``timeout`` passed (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.status in LIVE_STATUSES:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)
        return True

    def wait_for_step(self, step: int, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while self.step < step and self.status in LIVE_STATUSES and time.monotonic() < deadline:
            time.sleep(_POLL_S)
        return self.step >= step


class RaceRegistry:
    """The races of one runs folder: this process's jobs, and the one race slot shared with every process.

    ``start`` and ``resume`` take the slot or raise :class:`RaceBusy` (one sentence); the job frees it when it
    ends (finished, stopped, failed). ``current()`` is the race holding the slot, a :class:`Job` of this
    process or a :class:`FolderRace` of another, so any page can show and control it. Get one through
    :func:`registry_for`; two registries on one folder (two processes) exclude each other all the same.
    """

    def __init__(self, runs_dir: str | Path | None = None) -> None:
        self.runs_dir = _runs_dir(runs_dir)
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        # The slot this registry holds (what its race.lock says; also kept when the folder cannot be written).
        self._held: RaceLock | None = None

    # -- the lock file
    @property
    def lock_path(self) -> Path:
        return self.runs_dir / LOCK_FILE

    @contextlib.contextmanager
    def _guard(self, create: bool = True) -> Iterator[None]:
        """An exclusive flock on the guard file (freed by the kernel if this process dies holding it)."""
        if create:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.runs_dir / _GUARD_FILE, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def holder(self) -> RaceLock | None:
        """Who holds the slot (any process), None when it is free or its holder is gone (a stale lock)."""
        if self._held is not None:
            return self._held
        if not self.lock_path.exists():
            return None
        try:
            with self._guard(create=False):
                lock = RaceLock.read(self.lock_path)
        except OSError:
            lock = RaceLock.read(self.lock_path)
        return lock if lock is not None and lock.alive else None

    def _claim(self, name: str, source: str) -> None:
        """Take the slot for a race named ``name`` or raise RaceBusy; a stale lock is taken over."""
        if self._held is not None:
            raise self._busy(self._held)
        pid = os.getpid()
        lock = RaceLock(None, name, source, pid, _process_start(pid), _now(), uuid.uuid4().hex, this_host())
        try:
            with self._guard():
                if self.lock_path.exists():
                    old = RaceLock.read(self.lock_path)
                    if old is not None and old.alive:
                        raise self._busy(old)
                    # Its process is gone (or it was cut short while written, under the guard): take it over.
                    self._mark_interrupted(old)
                    self.lock_path.unlink()
                fd = os.open(self.lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                with os.fdopen(fd, "w") as f:
                    f.write(json.dumps(asdict(lock)))
                    f.flush()
                    os.fsync(f.fileno())
        except OSError:
            pass  # the folder cannot be written: the race trains in memory, the slot held in this process only
        self._held = lock

    def _name_run(self, run_id: str) -> None:
        """The held lock names the race's run once its folder exists."""
        assert self._held is not None
        lock = self._held = replace(self._held, run_id=run_id)
        with contextlib.suppress(OSError), self._guard(create=False):
            current = RaceLock.read(self.lock_path)
            if current is not None and current.token == lock.token:
                atomic_write(self.lock_path, json.dumps(asdict(lock)))

    @contextlib.contextmanager
    def holding(self, name: str, source: str) -> Iterator[Callable[[str], None]]:
        """The slot for a race this process trains in the foreground (``resnet-train``), for the ``with`` block:
        raises RaceBusy while any race holds it; yields a function that names the run once its folder exists;
        frees the slot on the way out, however the block ends."""
        with self._lock:
            self._claim(name, source)
        named: list[str | None] = [None]

        def name_run(run_id: str) -> None:
            with self._lock:
                self._name_run(run_id)
            named[0] = run_id

        try:
            yield name_run
        finally:
            self._free(named[0])

    def _free(self, run_id: str | None) -> None:
        """Give the slot back (only this registry's own lock, and only for the race that holds it)."""
        with self._lock:
            held = self._held
            if held is None or held.run_id != run_id:
                return
            self._held = None
            with contextlib.suppress(OSError), self._guard(create=False):
                current = RaceLock.read(self.lock_path)
                if current is not None and current.token == held.token:
                    self.lock_path.unlink()

    def _mark_interrupted(self, stale: RaceLock | None) -> None:
        """The stale lock's run was killed mid-race: its status.json says so (list_runs would infer it too)."""
        if stale is None or stale.run_id is None:
            return
        path = self.runs_dir / stale.run_id / "status.json"
        state = _read_json(path) or {}
        if state.get("status") in LIVE_STATUSES and state.get("pid") == stale.pid:
            with contextlib.suppress(OSError):
                atomic_write(path, json.dumps({**state, "status": "interrupted", "noticed": _now()}))

    def _busy(self, lock: RaceLock) -> RaceBusy:
        race = self.get(lock.run_id) if lock.run_id else None
        if isinstance(race, Job):
            snap = race.snapshot()
            return RaceBusy(lock, snap.status, snap.step, snap.steps)
        if isinstance(race, FolderRace):
            return RaceBusy(lock, race.status, race.step, race.config.steps)
        return RaceBusy(lock, "running", None, None)

    # -- races
    def start(self, config: RaceConfig, *, paused: bool = False, source: str = "app") -> Job:
        """Take the slot, create a job for ``config`` (its run folder says ``source`` started it) and start it,
        or leave it ready when ``paused``.

        Raises RaceBusy (a ValueError, one sentence) while a race of any process holds the slot, ValueError or
        DataError (one sentence) for a bad config. A runs folder that cannot be written does not stop it: the job
        trains in memory (see ``Job.storage_error``)."""
        with self._lock:
            self._claim(config.name, source)
        try:
            job = Job(config, self.runs_dir, source=source, on_end=lambda j: self._free(j.run_id))
        except BaseException:
            self._free(None)
            raise
        return self._hold(job, paused)

    def resume(self, run_id: str, *, paused: bool = False, source: str = "app") -> Job:
        """Take the slot and continue the interrupted or stopped run ``run_id`` from its latest checkpoint (see
        :func:`~resnet_core.runs.jobs.resume_run`), in its own folder. Raises RaceBusy or ValueError."""
        name = str(((_read_json(self.runs_dir / run_id / "config.json") or {}).get("config") or {}).get("name", run_id))
        with self._lock:
            self._claim(name, source)
        try:
            job = resume_run(run_id, self.runs_dir, on_end=lambda j: self._free(j.run_id))
        except BaseException:
            self._free(None)
            raise
        return self._hold(job, paused)

    def _hold(self, job: Job, paused: bool) -> Job:
        with self._lock:
            self._jobs[job.run_id] = job
            self._name_run(job.run_id)
        if not paused:
            job.start()
        return job

    def get(self, run_id: str | None) -> Job | FolderRace | None:
        """This process's job ``run_id`` (of any registry), else a view of that run's folder (a race another process
        trains, or trained); None when there is no such run, or when only jobs of other folders carry that id and
        there are several (the same second and name: which one was meant cannot be known)."""
        if not run_id:
            return None
        # Run ids are unique within one runs folder only: another folder's job of the same second and name
        # is another race. So this registry's job, then any job of this process writing this very folder,
        # then the folder itself, and only then a job of another folder (the runs folder moved since).
        with _REGISTRIES_LOCK:
            others = [r for r in _REGISTRIES.values() if r is not self]
        job = self._jobs.get(run_id)
        if job is not None:
            return job
        here = self.runs_dir / run_id
        elsewhere = [j for j in (r._jobs.get(run_id) for r in others) if j is not None]
        for job in elsewhere:
            if Path(job.path).resolve() == here.resolve():
                return job
        try:
            _check_run_id(run_id, self.runs_dir)
            return FolderRace(run_id, self.runs_dir)
        except (KeyError, TypeError, ValueError, AttributeError):
            return elsewhere[0] if len(elsewhere) == 1 else None

    def jobs(self) -> list[Job]:
        return list(self._jobs.values())

    def current(self) -> Job | FolderRace | None:
        """The race holding the slot: this process's job, or another process's race seen through its folder;
        None while the slot is free (an ended race is among the past runs)."""
        lock = self.holder()
        return self.get(lock.run_id) if lock is not None and lock.run_id else None

    def busy(self) -> RaceBusy | None:
        """The sentence a Start would be refused with now (None: the slot is free)."""
        lock = self.holder()
        return self._busy(lock) if lock is not None else None


_REGISTRIES: dict[Path, RaceRegistry] = {}
_REGISTRIES_LOCK = threading.Lock()


def registry_for(runs_dir: str | Path | None = None) -> RaceRegistry:
    """The race registry of runs folder ``runs_dir`` (default: ``$RESNET_EXPLORER_RUNS`` or ``runs/``), one
    object per folder in this process: every page, session and notebook cell of a process shares it."""
    key = Path(os.path.abspath(_runs_dir(runs_dir)))
    with _REGISTRIES_LOCK:
        registry = _REGISTRIES.get(key)
        if registry is None:
            registry = _REGISTRIES[key] = RaceRegistry(key)
        return registry
