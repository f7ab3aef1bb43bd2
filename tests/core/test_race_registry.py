"""One race per runs folder, across processes: the lock file, status.json at every change, control.jsonl.

Child processes are real Python processes racing a tiny race through ``registry_for`` (as a notebook's kernel or
a second replica of the app would); one is killed with SIGKILL mid-race.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from resnet_core import lesson, runs
from resnet_core.runs.folders import _process_start
from resnet_core.train import RaceConfig, RacerSpec
from tests.conftest import REPO


def tiny(steps: int = 400, name: str = "tiny race", **kw) -> RaceConfig:
    return RaceConfig(racers=(RacerSpec("resnet20", residual=False), RacerSpec("resnet20")), image_size=16, width=4,
                      steps=steps, batch_size=16, n_train=256, n_test=32, eval_every=5, eval_samples=32,
                      warmup_steps=2, name=name, **kw)


CONTROL_WAIT = 3 * runs.CONTROL_POLL_S  # long enough for a paused job to have seen a request


def _status(folder: Path) -> dict:
    return json.loads((folder / "status.json").read_text())


def _lock(runs_dir: Path) -> dict:
    return json.loads((runs_dir / runs.LOCK_FILE).read_text())


def _until(predicate, timeout: float = 120, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the child ended (code {proc.returncode}): {proc.stderr.read()}")
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_status_json_says_every_change_and_the_slot_is_freed_at_the_end(tmp_path):
    registry = runs.RaceRegistry(tmp_path)
    job = registry.start(tiny(), paused=True)
    status = _status(job.path)
    assert status["status"] == "ready" and status["pid"] == os.getpid()
    assert status["pid_started"] == _process_start(os.getpid())
    assert _lock(tmp_path)["run_id"] == job.run_id
    job.start()
    assert _status(job.path)["status"] == "running" and runs.list_runs(tmp_path).loc[0, "status"] == "running"
    assert job.wait_for_step(2, timeout=120)
    held = job.pause()
    assert _status(job.path) | {"since": None} == {"status": "paused", "pid": os.getpid(), "step": held,
                                                   "pid_started": _process_start(os.getpid()), "since": None}
    assert runs.list_runs(tmp_path).loc[0, "status"] == "paused" and runs.load_run(job.run_id, tmp_path).status == "paused"
    job.resume()
    assert _status(job.path)["status"] == "running"
    job.stop()
    assert job.wait(timeout=120)
    assert _status(job.path)["status"] == "stopped" and _status(job.path)["step"] == job.snapshot().step
    assert not (tmp_path / runs.LOCK_FILE).exists()  # the slot is free again
    finished = registry.start(tiny(steps=3))
    assert finished.wait(timeout=120) and _status(finished.path) | {"since": None, "pid_started": None} == {
        "status": "finished", "pid": os.getpid(), "step": 3, "since": None, "pid_started": None}
    assert runs.load_run(finished.run_id, tmp_path).status == "finished"
    assert not (tmp_path / runs.LOCK_FILE).exists() and registry.busy() is None


def test_a_second_registry_is_refused_with_a_sentence_and_controls_the_race_through_its_folder(tmp_path):
    first, second = runs.RaceRegistry(tmp_path), runs.RaceRegistry(tmp_path)  # as two replicas of the app
    job = first.start(tiny(), source="lesson")
    try:
        assert job.wait_for_step(2, timeout=120)
        with pytest.raises(runs.RaceBusy) as refused:
            second.start(tiny())
        sentence = str(refused.value)
        assert sentence.startswith("The race 'tiny race' (started by the lesson) is training, at step ")
        assert sentence.endswith(" of 400; one race trains at a time, so watch it, or stop it before starting "
                                 "another.")
        assert refused.value.run_id == job.run_id and "\n" not in sentence
        race = second.current()
        assert isinstance(race, runs.FolderRace) and race.run_id == job.run_id and race.source == "lesson"
        # Pause, Step, Resume and Stop from the other registry, through control.jsonl.
        held = race.pause(timeout=60)
        assert job.status == "paused" and _status(job.path)["status"] == "paused" and race.status == "paused"
        assert job.wait_paused(timeout=60) and job.snapshot().step == held == race.snapshot().step
        target = race.step_once()
        assert target == held + 1 and race.wait_for_step(target, timeout=60) and job.wait_paused(timeout=60)
        time.sleep(CONTROL_WAIT)
        assert job.snapshot().step == target and job.status == "paused"  # exactly one step, still paused
        race.resume()
        assert job.status == "running" and job.wait_for_step(target + 2, timeout=120)
        race.stop()
        assert job.wait(timeout=120) and job.status == "stopped"
        assert race.status == "stopped" and race.snapshot().status == "stopped"
    finally:
        job.stop()
        job.wait(timeout=120)
    again = second.start(tiny(steps=2))  # the slot is free for either registry
    assert again.wait(timeout=120) and again.status == "finished"


def test_registry_for_is_one_object_per_runs_folder(tmp_path, monkeypatch):
    assert runs.registry_for(tmp_path) is runs.registry_for(str(tmp_path / "sub" / ".."))
    assert runs.registry_for(tmp_path / "other") is not runs.registry_for(tmp_path)
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path))
    assert runs.registry_for() is runs.registry_for(tmp_path)


def test_a_run_id_names_a_job_only_in_its_own_runs_folder(tmp_path):
    # Run ids are one second and a name: two folders can hold the same id. A job of one folder must not answer
    # for the other's run (it once made a busy sentence read another test's stopped race).
    elsewhere = runs.registry_for(tmp_path / "a")
    # A name no other test uses: its id must not meet another test's job of the same second in this process.
    job = elsewhere.start(tiny(steps=2, name="moved folder race"))
    assert job.wait(timeout=120) and job.status == "finished"
    twin = tmp_path / "b" / job.run_id
    twin.mkdir(parents=True)
    (twin / "config.json").write_text((job.path / "config.json").read_text())
    here = runs.RaceRegistry(tmp_path / "b")
    race = here.get(job.run_id)
    assert isinstance(race, runs.FolderRace) and race.path == twin and race.status == "interrupted"
    assert elsewhere.get(job.run_id) is job
    # A folder without that run still finds this process's job (the runs folder moved since it started)...
    assert runs.RaceRegistry(tmp_path / "c").get(job.run_id) is job
    # ...unless two folders' jobs share the id: which one was meant cannot be known, so neither answers.
    for attempt in range(3):  # two jobs started back to back share their second, unless a second turns between
        first = runs.registry_for(tmp_path / f"e{attempt}").start(tiny(steps=2, name="twin race"))
        second = runs.registry_for(tmp_path / f"f{attempt}").start(tiny(steps=2, name="twin race"))
        assert first.wait(timeout=120) and second.wait(timeout=120)
        if first.run_id == second.run_id:
            break
    assert first.run_id == second.run_id and first is not second
    assert runs.RaceRegistry(tmp_path / "c").get(first.run_id) is None
    assert runs.registry_for(Path(first.path).parent).get(first.run_id) is first  # its own folder still knows it


def _write_lock(runs_dir: Path, pid: int, started: int | None, run_id: str = "gone-run") -> None:
    runs_dir.mkdir(parents=True, exist_ok=True)
    (runs_dir / runs.LOCK_FILE).write_text(json.dumps({
        "run_id": run_id, "name": "old race", "source": "app", "pid": pid, "pid_started": started,
        "since": "2024-01-01T00:00:00", "token": "x"}))


def test_a_stale_lock_is_taken_over_a_live_one_is_not(tmp_path):
    # A live holder (this very process, another registry) blocks; a reused pid (another start time) does not.
    me, started = os.getpid(), _process_start(os.getpid())
    _write_lock(tmp_path, me, started)
    registry = runs.RaceRegistry(tmp_path)
    with pytest.raises(runs.RaceBusy, match="The race 'old race' \\(started by the Training page\\)"):
        registry.start(tiny(steps=2))
    assert registry.busy() is not None and registry.holder().pid == me
    _write_lock(tmp_path, me, started - 1)  # same pid, another process: the holder is gone
    assert registry.holder() is None and registry.busy() is None
    job = registry.start(tiny(steps=2))
    assert _lock(tmp_path)["run_id"] == job.run_id and _lock(tmp_path)["pid_started"] == started
    assert job.wait(timeout=120) and not (tmp_path / runs.LOCK_FILE).exists()



def test_a_lock_from_another_machine_is_never_taken_over(tmp_path):
    """A replica on another machine sharing the runs folder: its pid cannot be checked here, so it holds."""
    _write_lock(tmp_path, 2 ** 22 + 12345, 1)  # no such process on this machine
    lock = json.loads((tmp_path / runs.LOCK_FILE).read_text())
    (tmp_path / runs.LOCK_FILE).write_text(json.dumps({**lock, "host": "elsewhere/some-boot"}))
    registry = runs.RaceRegistry(tmp_path)
    with pytest.raises(runs.RaceBusy, match="The race 'old race'"):
        registry.start(tiny(steps=2))
    (tmp_path / runs.LOCK_FILE).write_text(json.dumps({**lock, "host": runs.this_host()}))  # this machine: stale
    job = registry.start(tiny(steps=2))
    assert _lock(tmp_path)["host"] == runs.this_host() and job.wait(timeout=120)


CHILD = """
import sys
import torch
torch.set_num_threads(1)
from resnet_core.runs import registry_for
from resnet_core.train import RaceConfig, RacerSpec
config = RaceConfig(racers=(RacerSpec("resnet20", residual=False), RacerSpec("resnet20")), image_size=16, width=4,
                    steps=400, batch_size=16, n_train=256, n_test=32, eval_every=5, eval_samples=32,
                    warmup_steps=2, checkpoint_every=2, name="child race")
job = registry_for(sys.argv[1]).start(config, source="notebook")
print(job.run_id, flush=True)
job.wait()
print(job.status, flush=True)
"""


def _child(runs_dir: Path) -> tuple[subprocess.Popen, str]:
    """A process racing a tiny race through its own registry on ``runs_dir``; returns it and the run id."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(runs_dir)], cwd=REPO, text=True,
                            env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run_id = proc.stdout.readline().strip()
    if not run_id:
        pytest.fail(f"the child did not start its race: {proc.stderr.read()}")
    return proc, run_id


def test_another_process_holds_the_slot_and_this_one_pauses_and_stops_its_race(tmp_path):
    proc, run_id = _child(tmp_path)
    folder = tmp_path / run_id
    try:
        registry = runs.RaceRegistry(tmp_path)
        _until(lambda: runs.FolderRace(run_id, tmp_path).step >= 2, proc=proc)
        with pytest.raises(runs.RaceBusy, match=r"^The race 'child race' \(started by a notebook\) is training, "
                                                r"at step \d+ of 400;"):
            registry.start(tiny(steps=2))
        assert not [p for p in tmp_path.iterdir() if p.is_dir() and p.name != run_id]  # no second race folder
        race = registry.current()
        assert isinstance(race, runs.FolderRace) and race.run_id == run_id and _lock(tmp_path)["pid"] == proc.pid
        held = race.pause(timeout=60)
        assert _status(folder)["status"] == "paused" and _status(folder)["pid"] == proc.pid
        time.sleep(CONTROL_WAIT)
        assert race.step == held and race.snapshot().step == held and race.snapshot().status == "paused"
        race.resume()
        assert _status(folder)["status"] == "running" and race.wait_for_step(held + 2, timeout=60)
        race.stop()
        assert race.wait(timeout=120) and proc.wait(timeout=120) == 0
        assert proc.stdout.read().strip() == "stopped"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert race.status == "stopped" and _status(folder)["status"] == "stopped"
    assert not (tmp_path / runs.LOCK_FILE).exists()
    job = registry.start(tiny(steps=2))
    assert job.wait(timeout=120) and job.status == "finished"


def test_a_process_killed_mid_race_leaves_it_interrupted_resumable_and_the_slot_free(tmp_path):
    proc, run_id = _child(tmp_path)
    folder = tmp_path / run_id
    try:
        _until(lambda: (json.loads((folder / "checkpoint.json").read_text())["step"] >= 2
                        if (folder / "checkpoint.json").exists() else False), proc=proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert _lock(tmp_path)["pid"] == proc.pid  # left behind by the dead process
    listed = runs.list_runs(tmp_path)
    assert listed.loc[0, "run_id"] == run_id and listed.loc[0, "status"] == "interrupted"
    record = runs.load_run(run_id, tmp_path)
    assert record.status == "interrupted" and record.resumable and record.checkpoint_step >= 2
    registry = runs.RaceRegistry(tmp_path)
    assert registry.holder() is None and registry.busy() is None
    job = registry.resume(run_id, paused=True)  # the stale lock is taken over
    try:
        assert _lock(tmp_path)["run_id"] == run_id and _lock(tmp_path)["pid"] == os.getpid()
        assert job.snapshot().step == record.checkpoint_step and _status(folder)["status"] == "ready"
    finally:
        job.stop()
    assert runs.load_run(run_id, tmp_path).status == "stopped" and not (tmp_path / runs.LOCK_FILE).exists()


def test_a_stale_lock_marks_its_run_interrupted_when_taken_over(tmp_path):
    proc, run_id = _child(tmp_path)
    try:
        _until(lambda: (tmp_path / run_id / "metrics.jsonl").exists(), proc=proc)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert _status(tmp_path / run_id)["status"] in ("ready", "running")  # what the dead process last wrote
    job = runs.RaceRegistry(tmp_path).start(tiny(steps=2))
    assert job.wait(timeout=120)
    assert _status(tmp_path / run_id)["status"] == "interrupted"
    assert runs.list_runs(tmp_path).set_index("run_id").loc[run_id, "status"] == "interrupted"


def test_the_lessons_race_is_the_current_race_of_its_runs_folder(tmp_path):
    job = lesson.train_race(tiny(steps=400), runs_dir=tmp_path)  # returns at once: the race trains on its thread
    try:
        assert job.status == "running" and job.source == "lesson"
        registry = runs.registry_for(tmp_path)
        assert registry.current() is job and registry.get(job.run_id) is job
        assert json.loads((job.path / "config.json").read_text())["source"] == "lesson"
        assert str(registry.busy()).startswith("The race 'tiny race' (started by the lesson) is training, at step")
        with pytest.raises(runs.RaceBusy):
            lesson.train_race(tiny(steps=2), runs_dir=tmp_path)
    finally:
        job.stop()
    with pytest.raises(ValueError, match="The lesson's race ended as 'stopped'"):
        lesson.wait_for_race(job)
    short = lesson.train_race(tiny(steps=2), runs_dir=tmp_path)
    seen: list[int] = []
    assert lesson.wait_for_race(short, on_progress=lambda snap: seen.append(snap.step)) == short.run_id
    assert runs.load_run(short.run_id, tmp_path).status == "finished"


def test_requests_written_together_are_each_applied_in_order(tmp_path):
    """control.jsonl is a queue: two Steps and then a Stop, written before the race looks, all count."""
    registry = runs.RaceRegistry(tmp_path)
    job = registry.start(tiny())
    try:
        assert job.wait_for_step(1, timeout=120)
        held = job.pause(timeout=60)
        assert job.wait_paused(timeout=60)
        for request in ("step", "step"):
            runs.write_control(job.path, request)
        assert job.wait_for_step(held + 2, timeout=60) and job.wait_paused(timeout=60)
        time.sleep(CONTROL_WAIT)
        assert job.snapshot().step == held + 2  # both steps, not one overwritten by the other
        runs.write_control(job.path, "resume")
        runs.write_control(job.path, "pause")
        runs.write_control(job.path, "stop")  # a Stop after a Pause is never lost
        assert job.wait(timeout=120) and job.status == "stopped" and _status(job.path)["status"] == "stopped"
        lines = (job.path / runs.CONTROL_FILE).read_text().splitlines()
        assert [json.loads(line)["request"] for line in lines] == ["step", "step", "resume", "pause", "stop"]
    finally:
        job.stop()
        job.wait(timeout=120)


CLI_CHILD = """
import sys
from resnet_core.cli import train_main
raise SystemExit(train_main(["--racer", "resnet20:plain", "--racer", "resnet20", "--steps", "400", "--width", "4",
                             "--image-size", "16", "--batch-size", "16", "--n-train", "256", "--eval-every", "50",
                             "--threads", "1", "--runs-dir", sys.argv[1], "--no-progress"]))
"""


def test_the_command_line_trainer_holds_the_slot_and_takes_the_pages_controls(tmp_path):
    """``resnet-train`` is a race of the runs folder like any other: the app cannot start a second one, and its
    Pause and Stop (control.jsonl) reach it."""
    proc = subprocess.Popen([sys.executable, "-c", CLI_CHILD, str(tmp_path)], cwd=REPO, text=True,
                            env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        registry = runs.RaceRegistry(tmp_path)
        _until(lambda: isinstance(registry.current(), runs.FolderRace) and registry.current().step >= 2, proc=proc)
        race = registry.current()
        with pytest.raises(runs.RaceBusy, match=r"\(started by the command line\) is training, at step \d+"):
            registry.start(tiny(steps=2))
        held = race.pause(timeout=60)
        assert race.status == "paused" and _status(race.path)["status"] == "paused"
        time.sleep(CONTROL_WAIT)
        assert race.step == held  # it holds
        race.stop()
        assert proc.wait(timeout=120) == 128 + signal.SIGTERM  # stopped by request, saved with a checkpoint
        assert race.status == "stopped" and not (tmp_path / runs.LOCK_FILE).exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
