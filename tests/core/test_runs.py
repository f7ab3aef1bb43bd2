"""Background runs: Start/Pause/Step/Resume/Stop semantics, run folders, past runs and checkpoints."""

from __future__ import annotations

import json
import time

import pytest
import torch

import resnet_core
from resnet_core import runs
from resnet_core.train import RaceConfig, RacerSpec


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
    assert runs.runs_dir() == tmp_path / "elsewhere"
    assert runs.list_runs().empty and runs.list_checkpoints() == []


def test_registry_runs_one_race_at_a_time(tmp_path):
    registry = runs.Registry(tmp_path)
    job = registry.start(tiny())
    assert registry.current() is job and registry.get(job.run_id) is job
    with pytest.raises(ValueError, match="still running; stop it"):
        registry.start(tiny())
    job.stop()
    assert job.wait(timeout=120)
    second = registry.start(tiny(steps=2))
    assert second.wait(timeout=120) and second.status == "finished"
    assert registry.current() is second and len(registry.jobs()) == 2


def test_a_ready_job_also_blocks_a_second_race(tmp_path):
    registry = runs.Registry(tmp_path)
    ready = registry.start(tiny(), paused=True)
    assert ready.status == "ready"
    with pytest.raises(ValueError, match="still waiting to start; stop it"):
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
