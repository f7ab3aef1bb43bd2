"""Background runs: Start/Pause/Step/Resume/Stop semantics, run folders, past runs and checkpoints."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import resnet_core
from resnet_core import runs
from resnet_core.cli import train_main
from resnet_core.settings import runs_dir
from resnet_core.train import Race, RaceConfig, RacerSpec
from resnet_core.weights.checkpoints import atomic_write, read_checkpoint
from tests.conftest import REPO


def tiny(steps: int = 400, **kw) -> RaceConfig:
    return RaceConfig(racers=(RacerSpec("resnet20", residual=False), RacerSpec("resnet20")), image_size=16, width=4,
                      steps=steps, batch_size=16, n_train=256, n_test=32, eval_every=5, eval_samples=32,
                      warmup_steps=2, name="tiny race", **kw)


def _parked(job: runs.Job) -> int:
    """Steps done once the job's thread is parked (paused, no step in flight), checked to stay so.

    Waits on the job's condition with a generous deadline (a loaded CI machine may take seconds per step);
    once parked, the thread cannot train until a control wakes it, so the short look afterwards can only
    confirm that, never fail because the machine is slow."""
    assert job.wait_paused(timeout=120)
    step = job.snapshot().step
    time.sleep(0.2)
    assert job.snapshot().step == step and job.status == "paused"
    return step


def test_pause_step_resume_stop(tmp_path):
    job = runs.Job(tiny(), tmp_path)
    assert job.status == "ready" and job.snapshot().step == 0
    job.start()
    assert job.wait_for_step(2, timeout=120)
    job.pause()
    paused_at = _parked(job)  # the step in flight when Pause came finishes, then nothing more
    assert paused_at >= 2
    job.step_once()
    assert job.wait_for_step(paused_at + 1, timeout=120)
    assert _parked(job) == paused_at + 1  # exactly one step, still paused
    job.resume()
    assert job.wait_for_step(paused_at + 3, timeout=120)
    job.stop()
    stop_called_at = job.snapshot().step
    assert job.wait(timeout=120)
    snap = job.snapshot()
    assert snap.status == "stopped" and snap.step <= stop_called_at + 1  # within one step
    assert snap.eta_s is None and not snap.active
    # The stopped race still gets a held-out score and its checkpoints.
    assert snap.evals["step"].max() == snap.step
    assert sorted(p.rsplit("/", 1)[-1] for p in snap.checkpoints) == ["plain-20.pt", "resnet-20.pt"]


def test_step_from_ready_trains_exactly_one_step(tmp_path):
    job = runs.Job(tiny(), tmp_path)
    job.step_once()
    assert job.wait_for_step(1, timeout=120)
    assert _parked(job) == 1
    snap = job.snapshot()
    assert snap.history["step"].tolist() == [1, 1] and snap.progress == pytest.approx(1 / 400)
    assert snap.eta_s is not None and snap.eta_s > 0
    job.stop()
    assert job.wait(timeout=120) and job.status == "stopped"


def test_snapshots_are_consistent_while_the_race_trains(tmp_path):
    # Many snapshots taken while the thread trains: each one's step, history, evaluations and summary agree
    # (the step's rows and its evaluation are published together, under the job's lock).
    cfg = RaceConfig(racers=(RacerSpec("resnet20", residual=False), RacerSpec("resnet20")), image_size=16,
                     width=4, steps=40, batch_size=16, n_train=256, n_test=256, eval_every=2, eval_samples=256,
                     warmup_steps=2, name="tiny race")
    job = runs.Job(cfg, tmp_path)
    job.start()
    seen = set()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        snap = job.snapshot()
        seen.add(snap.step)
        assert len(snap.history) == 2 * snap.step
        if snap.step:
            assert snap.history["step"].max() == snap.step
            assert snap.summary["steps"].tolist() == [snap.step] * 2
            evaluated = int(snap.evals["step"].max()) if len(snap.evals) else 0
            assert evaluated == snap.step // 2 * 2  # the evaluation due after a step comes with it
            assert (snap.summary["seconds"] > 0).all()
        if snap.status not in ("running", "paused"):
            break
        time.sleep(0.02)  # a busy loop would hold the GIL and starve the training thread (convoy effect)
    assert job.wait(timeout=120) and job.status == "finished"
    assert len(seen) > 5  # the loop really looked while the race trained


def test_finished_run_folder_and_reading_it_back(tmp_path):
    job = runs.Job(tiny(steps=5), tmp_path)
    job.start()
    assert job.wait(timeout=120) and job.status == "finished"
    path = job.path
    info = json.loads((path / "config.json").read_text())
    assert info["run_id"] == job.run_id and info["source"] == "app" and info["device"].startswith("CPU")
    assert RaceConfig.from_dict(info["config"]) == tiny(steps=5)
    lines = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    assert sum(line["kind"] == "step" for line in lines) == 10 and sum(line["kind"] == "eval" for line in lines) == 2
    summary = json.loads((path / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == 5

    record = runs.load_run(job.run_id, tmp_path)
    snap = job.snapshot()
    assert record.history["loss"].tolist() == pytest.approx(snap.history["loss"].tolist())
    assert record.evals["test_acc"].tolist() == pytest.approx(snap.evals["test_acc"].tolist())
    assert record.status == "finished" and record.config.name == "tiny race"
    assert record.summary["racer"].tolist() == ["Plain-20", "ResNet-20"]

    listed = runs.list_runs(tmp_path)
    assert listed.loc[0, "run_id"] == job.run_id and listed.loc[0, "status"] == "finished"
    assert listed.loc[0, "racers"] == "Plain-20, ResNet-20"

    ckpts = runs.list_checkpoints(tmp_path)
    assert {c["label"] for c in ckpts} == {"Plain-20", "ResNet-20"}
    for c in ckpts:
        assert set(c) == {"path", "run_id", "label", "arch", "options", "created"}
        loaded = torch.load(c["path"], weights_only=True)
        model = resnet_core.build(c["arch"], **c["options"])
        model.load_state_dict(loaded["state_dict"], strict=True)
        assert c["options"]["residual"] == (c["label"] == "ResNet-20")


def test_runs_dir_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path / "elsewhere"))
    assert runs_dir() == tmp_path / "elsewhere"
    assert runs.list_runs().empty and runs.list_checkpoints() == []


def test_registry_runs_one_race_at_a_time(tmp_path):
    registry = runs.RaceRegistry(tmp_path)
    job = registry.start(tiny())
    assert registry.current() is job and registry.get(job.run_id) is job
    with pytest.raises(runs.RaceBusy, match="'tiny race' \\(started by the Training page\\) is training, at step"):
        registry.start(tiny())
    job.stop()
    assert job.wait(timeout=120)
    second = registry.start(tiny(steps=2))
    assert second.wait(timeout=120) and second.status == "finished"
    assert registry.current() is None and len(registry.jobs()) == 2  # no race holds the slot now


def test_a_ready_job_also_blocks_a_second_race(tmp_path):
    registry = runs.RaceRegistry(tmp_path)
    ready = registry.start(tiny(), paused=True)
    assert ready.status == "ready"
    with pytest.raises(runs.RaceBusy, match="is waiting to start, at step 0 of 400; one race trains at a time"):
        registry.start(tiny())
    assert registry.jobs() == [ready]
    ready.stop()
    assert ready.status == "stopped"
    second = registry.start(tiny(steps=2))
    assert second.wait(timeout=120) and second.status == "finished"


def test_cut_short_metrics_and_unknown_runs(tmp_path):
    job = runs.Job(tiny(steps=2), tmp_path)
    job.start()
    assert job.wait(timeout=120)
    with open(job.path / "metrics.jsonl", "a") as f:
        f.write('{"kind": "step", "step": 3, "rac')  # a crash mid-line
    record = runs.load_run(job.run_id, tmp_path)
    assert len(record.history) == 4
    with pytest.raises(ValueError, match="no readable run"):
        runs.load_run("nope", tmp_path)


def _write_run(folder, config) -> None:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"run_id": folder.name, "created": "2024-01-01T00:00:00",
                                                    "racers": ["Plain-20"], "config": config}))


def test_a_run_with_a_bad_config_is_one_sentence(tmp_path):
    good = tiny(steps=2).to_dict()
    cases = {"no-racers": {k: v for k, v in good.items() if k != "racers"},  # KeyError before
             "unknown-arch": {**good, "racers": [{"arch": "resnet21"}]},  # ValueError from the config
             "bad-lr": {**good, "lr": -1.0},
             "racers-not-a-list": {**good, "racers": 3},  # TypeError before
             "config-not-a-dict": ["resnet20"]}
    for run_id, config in cases.items():
        _write_run(tmp_path / run_id, config)
        with pytest.raises(ValueError, match=f"The run '{run_id}' cannot be reopened") as info:
            runs.load_run(run_id, tmp_path)
        assert "\n" not in str(info.value)
    listed = runs.list_runs(tmp_path)  # the list still shows what it can (a config that is not a dict: skipped)
    assert set(listed["run_id"]) == set(cases) - {"config-not-a-dict"}


def test_run_ids_cannot_leave_the_runs_folder(tmp_path):
    base = tmp_path / "runs"
    base.mkdir()
    _write_run(tmp_path / "elsewhere", tiny(steps=2).to_dict())  # a readable run outside the runs folder
    for run_id in ("../elsewhere", "..", "a/b", "a\\b", "", "/etc"):
        with pytest.raises(ValueError, match="not a run id"):
            runs.load_run(run_id, base)
    _write_run(base / "fine", tiny(steps=2).to_dict())
    assert runs.load_run("fine", base).config == tiny(steps=2)


# ------------------------------------------------------------------------------------------------ faults
# Real subprocesses of the real CLI (`python -m resnet_core.train`), killed, interrupted and starved of disk.
# The CLI runs with --threads 1 and the reference race in this process is pinned to 1 thread too (restored
# after): with another thread count CPU convolutions sum in another order and curves differ by ~1e-7.
CLI_TINY = ["--racer", "resnet20:plain", "--racer", "resnet20", "--width", "4", "--image-size", "16",
            "--batch-size", "16", "--n-train", "64", "--n-test", "32", "--eval-every", "10", "--warmup", "2",
            "--threads", "1", "--no-progress"]


def _cli(args: list[str], runs_dir, **popen) -> subprocess.Popen:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.Popen([sys.executable, "-m", "resnet_core.train", *args, "--runs-dir", str(runs_dir)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the CLI ended (code {proc.returncode}) before the condition held:\n{out}\n{err}")
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def _only_run(runs_dir):
    (run,) = [p for p in runs_dir.iterdir() if p.is_dir()]
    return run


def _step_lines(run) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    lines = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            lines.append(json.loads(line))
    return [line for line in lines if line.get("kind") == "step"]


def _manifest_step(run) -> int:
    try:
        data = json.loads((run / "checkpoint.json").read_text())
    except (OSError, ValueError):
        return 0
    return int(data.get("step", 0))


def _reference_losses(config: RaceConfig) -> list[float]:
    """The uninterrupted race in this process, on one thread like the CLI runs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return Race(config).train().history()["loss"].tolist()
    finally:
        torch.set_num_threads(threads)


def _assert_no_partial_files(run) -> None:
    """Every .pt loads with the normal reader, every JSON file parses, nothing is empty, no temp file is left."""
    for path in run.rglob("*"):
        if path.is_dir():
            continue
        assert path.stat().st_size > 0, f"0-byte file {path}"
        assert not path.name.endswith(".tmp"), f"temporary file left: {path}"
        if path.suffix == ".pt":
            assert read_checkpoint(path).arch == "resnet20"
        elif path.suffix == ".json":
            json.loads(path.read_text())


def test_a_killed_run_is_interrupted_keeps_its_metrics_and_resumes_on_the_same_curve(tmp_path):
    # Inside the session's runs folder: load_model reads "ckpt:" paths only from the runs and uploads folders.
    runs_dir = Path(os.environ["RESNET_EXPLORER_RUNS"]) / f"killed-{tmp_path.name}"
    proc = _cli([*CLI_TINY, "--steps", "60", "--checkpoint-every", "5"], runs_dir)
    try:
        # Kill once a periodic checkpoint exists and at least one step beyond it was logged (mid-race).
        def ready() -> bool:
            if not runs_dir.exists() or not any(p.is_dir() for p in runs_dir.iterdir()):  # not just race.lock
                return False
            run = _only_run(runs_dir)
            step = _manifest_step(run)
            return step >= 5 and any(line["step"] > step for line in _step_lines(run))

        _wait_for(ready, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    run = _only_run(runs_dir)
    _assert_no_partial_files(run)
    assert not (run / "summary.json").exists()

    # After a "restart" (a fresh read of the folder): interrupted, metrics whole up to the last logged step.
    listed = runs.list_runs(runs_dir)
    assert listed.loc[0, "status"] == "interrupted"
    record = runs.load_run(run.name, runs_dir)
    assert record.status == "interrupted" and record.resumable
    ckpt_step = record.checkpoint_step
    last = int(record.history["step"].max())
    assert ckpt_step % 5 == 0 and 5 <= ckpt_step < last < 60
    assert record.history["step"].tolist() == [s for s in range(1, last + 1) for _ in range(2)]
    assert f"resumable from the checkpoint of step {ckpt_step}" in listed.loc[0, "notes"]
    assert not [n for n in record.notes if "cut short" in n]  # a SIGKILL does not cut a line in two

    # Its last periodic checkpoint loads with the normal readers (read_checkpoint, load_model "ckpt:").
    for c in record.checkpoints:
        ckpt = read_checkpoint(c["path"])
        assert ckpt.meta["metrics"]["steps"] == ckpt_step
        model = resnet_core.load_model("resnet20", weights=f"ckpt:{Path(c['path']).resolve()}")
        assert model.fc.out_features == 10
    assert {c["label"] for c in runs.list_checkpoints(runs_dir)} == {"Plain-20", "ResNet-20"}

    # Resumed with the CLI, it continues the curve the uninterrupted race draws.
    resumed = _cli(["--resume", run.name, "--threads", "1", "--no-progress"], runs_dir)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert "Traceback" not in err
    steps = _step_lines(run)
    assert [line["step"] for line in steps] == [s for s in range(1, 61) for _ in range(2)]  # no step twice
    expected = _reference_losses(RaceConfig.from_dict(json.loads((run / "config.json").read_text())["config"]))
    assert [line["loss"] for line in steps] == pytest.approx(expected, rel=1e-6, abs=0)
    record = runs.load_run(run.name, runs_dir)
    assert record.status == "finished" and record.summary["steps"].tolist() == [60, 60]
    assert runs.list_runs(runs_dir).loc[0, "status"] == "finished" and not (run / "checkpoints").exists()
    _assert_no_partial_files(run)


def test_ctrl_c_stops_after_the_step_saves_a_checkpoint_and_says_how_to_resume(tmp_path):
    runs_dir = tmp_path / "runs"
    proc = _cli([*CLI_TINY, "--steps", "5000", "--checkpoint-every", "0"], runs_dir)
    try:
        _wait_for(lambda: runs_dir.exists() and any(p.is_dir() for p in runs_dir.iterdir())
                  and len(_step_lines(_only_run(runs_dir))) >= 6,
                  proc)
        seen = len(_step_lines(_only_run(runs_dir))) // 2
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    run = _only_run(runs_dir)
    summary = json.loads((run / "summary.json").read_text())
    stopped_at = summary["steps"]
    assert summary["status"] == "stopped" and seen <= stopped_at < 5000
    assert (f"Stopped at step {stopped_at}; checkpoint saved in {run}; resume with: resnet-train --resume "
            f"{run.name} --runs-dir {runs_dir}") in err
    assert len(_step_lines(run)) == 2 * stopped_at
    _assert_no_partial_files(run)
    for label in ("plain-20", "resnet-20"):
        assert read_checkpoint(run / f"{label}.pt").meta["metrics"]["steps"] == stopped_at
    assert runs.list_runs(runs_dir).loc[0, "status"] == "stopped"
    # The library resumes it where it stopped: every racer training again from that step.
    job = runs.resume_run(run.name, runs_dir)
    snap = job.snapshot()
    assert job.status == "ready" and snap.step == stopped_at and len(snap.history) == 2 * stopped_at
    assert set(snap.racers.values()) == {"running"}
    assert runs.load_run(run.name, runs_dir).status == "ready"  # this process holds it now
    job.stop()
    assert runs.load_run(run.name, runs_dir).status == "stopped"


def _limit_file_size(limit: int):
    def apply() -> None:  # in the child: files cannot grow past `limit` (EFBIG instead of SIGXFSZ)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.parametrize(("limit", "every", "fails_at"), [(60_000, "5", "checkpoint"), (6_000, "0", "metrics")])
def test_a_full_disk_is_one_sentence_and_leaves_no_partial_file(tmp_path, limit, every, fails_at):
    # A "full disk" that stops root too: a file-size limit on the child (RLIMIT_FSIZE). A checkpoint here is
    # ~190 kB, so 60 kB lets the metrics through and fails the first checkpoint (step 5); with no periodic
    # checkpoint, 6 kB fails a metrics append (about 660 bytes a step) part-way through a write.
    runs_dir = tmp_path / "runs"
    proc = _cli([*CLI_TINY, "--steps", "40", "--checkpoint-every", every], runs_dir,
                preexec_fn=_limit_file_size(limit))
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, err
    line = err.strip()
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith(f"resnet-train: Cannot write to the runs folder {runs_dir} (file size limit reached)")
    assert "nothing of this run was saved" in line
    run = _only_run(runs_dir)
    _assert_no_partial_files(run)
    assert not list(run.rglob("*.pt"))  # none fits: no partial one either
    metrics = (run / "metrics.jsonl").read_text()
    assert metrics.endswith("\n") and len(metrics) <= limit
    steps = _step_lines(run)
    assert len(steps) == len(metrics.splitlines()) - sum('"eval"' in x for x in metrics.splitlines())
    if fails_at == "checkpoint":
        assert [line["step"] for line in steps][-1] == 5
    listed = runs.list_runs(runs_dir)
    assert listed.loc[0, "status"] == "interrupted" and "no checkpoint to resume" in listed.loc[0, "notes"]


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "x.pt"
    path.write_bytes(b"old")

    def half(f) -> None:
        f.write(b"new, half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(path, half)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["x.pt"]


def test_a_runs_folder_that_cannot_be_written_keeps_the_run_in_memory_and_exports_it(tmp_path, capsys):
    # Tests run as root, whom chmod does not stop: a regular file where the runs folder should be fails
    # for everyone (EEXIST/ENOTDIR), as a read-only mount would.
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file")
    job = runs.Job(tiny(steps=6, checkpoint_every=3), blocked)
    assert job.storage_error == ("Cannot write to the runs folder (it is a file, not a folder): free "
                                 "space or set RESNET_EXPLORER_RUNS to a writable folder; this run's curves are "
                                 "kept in memory.")
    job.start()
    assert job.wait(timeout=120) and job.status == "finished"
    snap = job.snapshot()
    assert len(snap.history) == 12 and job.storage_error in snap.messages and snap.checkpoints == []
    # Space returns (here: a writable folder): the whole run is exported and reads back the same.
    good = tmp_path / "runs"
    path = job.export(good)
    assert path == good / job.run_id and not job.storage_error
    record = runs.load_run(job.run_id, good)
    assert record.status == "finished" and record.history["loss"].tolist() == snap.history["loss"].tolist()
    assert record.evals["step"].tolist() == [5, 5, 6, 6]
    assert [Path(c["path"]).name for c in record.checkpoints] == ["plain-20.pt", "resnet-20.pt"]
    _assert_no_partial_files(path)

    # The CLI: one line, exit 1, no traceback; a parent that is a file fails too.
    for where in (blocked, blocked / "runs"):
        assert train_main(["--racer", "resnet20", "--steps", "2", "--width", "4", "--batch-size", "16", "--n-train", "32",
                     "--n-test", "16", "--runs-dir", str(where), "--no-progress"]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"resnet-train: Cannot write to the runs folder {where} (") and "\n" not in err


def test_a_folder_lost_mid_run_keeps_the_curves_and_export_writes_them_back(tmp_path):
    job = runs.Job(tiny(steps=400, checkpoint_every=2), tmp_path)
    job.step_once()
    assert job.wait_for_step(1, timeout=120) and job.wait_paused(timeout=120)
    folder = job.path
    shutil.rmtree(folder)
    folder.write_text("the folder is gone, a file stands in its place")  # every write under it now fails
    for n in (2, 3):
        job.step_once()
        assert job.wait_for_step(n, timeout=120) and job.wait_paused(timeout=120)
    snap = job.snapshot()
    assert snap.step == 3 and len(snap.history) == 6
    assert any(m.startswith("Cannot write to the runs folder (") for m in snap.messages)
    with pytest.raises(runs.RunStorageError):
        job.export()  # still blocked: one sentence, nothing changes
    folder.unlink()
    assert job.export() == folder and not job.storage_error
    record = runs.load_run(job.run_id, tmp_path)
    assert record.history["step"].tolist() == [1, 1, 2, 2, 3, 3] and record.checkpoint_step == 3
    job.step_once()  # and it goes on writing there
    assert job.wait_for_step(4, timeout=120) and job.wait_paused(timeout=120)
    assert len(runs.load_run(job.run_id, tmp_path).history) == 8 and _manifest_step(folder) == 4
    job.stop()
    assert job.wait(timeout=120) and runs.load_run(job.run_id, tmp_path).status == "stopped"


def test_damage_is_reported_and_skipped_and_other_runs_still_list(tmp_path):
    jobs = [runs.Job(tiny(steps=2), tmp_path) for _ in range(2)]
    for job in jobs:
        job.start()
        assert job.wait(timeout=120) and job.status == "finished"
    damaged, fine = jobs
    with open(damaged.path / "metrics.jsonl", "a") as f:
        f.write('{"kind": "step", "step": 3, "rac')  # a line cut short
    (damaged.path / "resnet-20.pt").unlink()  # a checkpoint gone
    listed = runs.list_runs(tmp_path).set_index("run_id")
    assert set(listed.index) == {damaged.run_id, fine.run_id} and listed.loc[fine.run_id, "notes"] == ""
    notes = listed.loc[damaged.run_id, "notes"]
    assert "checkpoint resnet-20.pt is missing" in notes and "last metrics line is cut short" in notes
    record = runs.load_run(damaged.run_id, tmp_path)
    assert len(record.history) == 4 and [c["label"] for c in record.checkpoints] == ["Plain-20"]
    assert any("1 metrics line cut short or unreadable (line 7) skipped" in n for n in record.notes)
    assert any("resnet-20.pt (ResNet-20) is missing" in n for n in record.notes)
    assert {(c["run_id"], c["label"]) for c in runs.list_checkpoints(tmp_path)} == {
        (damaged.run_id, "Plain-20"), (fine.run_id, "Plain-20"), (fine.run_id, "ResNet-20")}
