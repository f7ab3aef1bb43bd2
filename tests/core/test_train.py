"""The training engine on tiny seeded races (width 4, 16 px): lockstep, metrics, divergence, checkpoints, CLI."""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import replace

import pytest
import torch

import resnet_core
from resnet_core.cli import train_main
from resnet_core.train import (
    MAX_SKIPPED_STEPS,
    PRESET_NOTES,
    PRESETS,
    Race,
    RaceConfig,
    RacerSpec,
    amp_dtype,
    degradation_note,
    describe_device,
    lr_at,
    pick_device,
    step_action,
    summarize,
)


def tiny(**overrides) -> RaceConfig:
    base = RaceConfig(racers=(RacerSpec("resnet20", residual=False), RacerSpec("resnet20")), image_size=16,
                      width=4, steps=6, batch_size=16, n_train=256, n_test=64, eval_every=3, eval_samples=64,
                      warmup_steps=2, name="tiny race")
    return replace(base, **overrides)


def test_learning_rate_warmup_and_schedules():
    cfg = tiny(steps=100, warmup_steps=10, lr=0.1, schedule="step")
    assert lr_at(0, cfg) == pytest.approx(0.01) and lr_at(9, cfg) == pytest.approx(0.1)
    assert lr_at(10, cfg) == pytest.approx(0.1)
    assert lr_at(55, cfg) == pytest.approx(0.01) and lr_at(78, cfg) == pytest.approx(0.001)  # 50%, 75% of 90
    cos = replace(cfg, schedule="cosine")
    assert lr_at(10, cos) == pytest.approx(0.1) and lr_at(99, cos) < 0.001
    assert lr_at(50, replace(cfg, schedule="constant")) == 0.1
    assert lr_at(0, replace(cfg, warmup_steps=0)) == 0.1


def test_racers_train_in_lockstep_on_identical_batches():
    race = Race(tiny(steps=4))
    seen: dict[str, list[torch.Tensor]] = {r.label: [] for r in race.racers}
    handles = [r.model.register_forward_pre_hook(lambda m, args, label=r.label: seen[label].append(args[0].clone()))
               for r in race.racers]
    try:
        for _ in range(4):
            race.step()
    finally:
        for h in handles:
            h.remove()
    plain, res = seen["Plain-20"], seen["ResNet-20"]
    assert len(plain) == len(res) == 4
    for a, b in zip(plain, res, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(plain[0], plain[1])  # a new batch at every step
    assert resnet_core.count_hooks(race.racers[0].model) == 0


def test_same_seed_same_curves_and_metrics_are_complete():
    a = Race(tiny()).train()
    b = Race(tiny()).train()
    ha, hb = a.history(), b.history()
    assert ha["loss"].tolist() == hb["loss"].tolist()
    assert len(ha) == 6 * 2 and set(ha["racer"]) == {"Plain-20", "ResNet-20"}
    for column in ("loss", "acc", "lr", "images_per_s", "grad_stem", "grad_layer1", "grad_layer2", "grad_layer3",
                   "grad_head"):
        assert ha[column].map(math.isfinite).all(), column
    assert ha["acc"].between(0, 1).all() and (ha["images_per_s"] > 0).all()
    assert ha["lr"].tolist()[::2] == [lr_at(s, a.config) for s in range(6)]
    assert ha.groupby("racer")["status"].last().eq("finished").all()
    ev = a.evals()
    assert ev["step"].tolist() == [3, 3, 6, 6] and ev["test_acc"].between(0, 1).all()
    summary = a.summary()
    assert list(summary["racer"]) == ["Plain-20", "ResNet-20"]
    assert summary["params"].tolist() == [resnet_core.count_params(r.model) for r in a.racers]


def test_stage_gradient_norms_are_the_true_norms():
    race = Race(tiny(steps=2))
    race.step()
    row = race.rows[-1]  # ResNet-20
    racer = race.racers[1]
    # The optimiser step leaves .grad as computed (SGD's weight decay is not applied in place to .grad).
    for stage, params in racer.groups.items():
        expected = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])).item()
        assert row[f"grad_{stage}"] == pytest.approx(expected, rel=1e-5)
    assert list(racer.groups) == ["stem", "layer1", "layer2", "layer3", "head"]


def test_a_diverging_racer_stops_and_the_others_go_on():
    race = Race(tiny(steps=4))
    with torch.no_grad():
        race.racers[0].model.fc.weight[0, 0] = float("nan")  # Plain-20 now produces a non-finite loss
    race.train()
    plain, res = race.racers
    assert plain.status == "diverged" and res.status == "finished"
    assert "Plain-20 diverged at step 1" in plain.message and "lower learning rate" in plain.message
    h = race.history()
    assert h[h.racer == "Plain-20"]["step"].tolist() == [1]
    assert h[h.racer == "ResNet-20"]["step"].tolist() == [1, 2, 3, 4]
    assert set(race.evals()["racer"]) == {"ResNet-20"}
    assert race.summary().set_index("racer").loc["Plain-20", "status"] == "diverged"


def test_a_huge_learning_rate_diverges_every_racer_and_ends_the_race():
    race = Race(tiny(steps=30, lr=1e6, warmup_steps=0))
    race.train()
    assert all(r.status == "diverged" for r in race.racers) and race.done
    assert race.step_index < 30


def test_step_action_lets_the_gradient_scaler_skip_steps():
    # No scaler (fp32, bf16): any non-finite number is divergence.
    assert step_action(True, True, False, 0) == ("step", 0)
    assert step_action(True, False, False, 0) == ("diverge", 0)
    assert step_action(False, True, False, 0)[0] == "diverge"
    # A scaler (fp16): inf gradients with a finite loss are a skipped step, not divergence...
    assert step_action(True, False, True, 0) == ("step", 1)
    assert step_action(True, False, True, MAX_SKIPPED_STEPS - 2) == ("step", MAX_SKIPPED_STEPS - 1)
    assert step_action(True, True, True, 7) == ("step", 0)  # a finite step resets the count
    # ...until MAX_SKIPPED_STEPS in a row; a non-finite loss is divergence at once.
    assert step_action(True, False, True, MAX_SKIPPED_STEPS - 1) == ("diverge", MAX_SKIPPED_STEPS)
    assert step_action(False, False, True, 0)[0] == "diverge"


def _scaled(race: Race, index: int, **scaler_options) -> None:
    """Give one racer a real GradScaler (on the CPU, in fp32: a huge scale overflows the gradients to inf), and the
    unfused optimizer step the engine pairs with one (fp16 on CUDA)."""
    racer = race.racers[index]
    racer.scaler = torch.amp.GradScaler("cpu", **scaler_options)
    racer.optimizer = race._optimizer(racer.model, scaled=True)


def test_a_gradient_scaler_skipping_early_steps_is_not_divergence():
    race = Race(tiny(steps=12))
    res = race.racers[1]
    with torch.no_grad():
        res.model.fc.weight.mul_(16)  # larger gradients (max ~8): x 2^127 they overflow, x 2^124 they do not
    _scaled(race, 1, init_scale=2.0 ** 127, backoff_factor=0.5)
    before = [p.detach().clone() for p in res.model.parameters()]
    race.step()
    assert res.status == "running" and res.skipped == 1 and not res.message
    assert race.rows[-1]["status"] == "running" and not all(math.isfinite(v) for k, v in race.rows[-1].items() if k.startswith("grad_"))
    assert all(torch.equal(a, b) for a, b in zip(before, res.model.parameters(), strict=True))  # step skipped
    assert res.scaler.get_scale() == 2.0 ** 126  # and the scale lowered
    skipped = [res.skipped]
    while not race.done:
        race.step()
        skipped.append(res.skipped)
    assert skipped[:4] == [1, 2, 3, 0]  # measured: three overflowing steps, then the scale fits
    assert [r.status for r in race.racers] == ["finished", "finished"] and not race.messages
    assert res.scaler.get_scale() <= 2.0 ** 124
    assert any(not torch.equal(a, b) for a, b in zip(before, res.model.parameters(), strict=True))  # it trained


def test_a_gradient_scaler_that_never_recovers_diverges_after_the_limit():
    race = Race(tiny(steps=MAX_SKIPPED_STEPS + 10))
    _scaled(race, 0, init_scale=float("inf"))  # inf x loss: every gradient non-finite, the scale stays inf
    race.train()
    plain, res = race.racers
    assert plain.status == "diverged" and res.status == "finished"
    assert f"Plain-20 diverged at step {MAX_SKIPPED_STEPS}" in plain.message
    assert f"not finite for {MAX_SKIPPED_STEPS} steps in a row" in plain.message
    assert len(race.history().query("racer == 'Plain-20'")) == MAX_SKIPPED_STEPS


def test_checkpoint_round_trip(tmp_path):
    race = Race(tiny(steps=3)).train()
    racer = race.racers[1]
    ckpt = race.checkpoint(racer)
    path = tmp_path / "resnet.pt"
    torch.save(ckpt, path)
    loaded = torch.load(path, weights_only=True)
    assert loaded["format"] == "resnet-explorer/1" and loaded["arch"] == "resnet20"
    assert loaded["options"] == {"residual": True, "num_classes": 10, "width": 4}
    assert loaded["classes"] == list(resnet_core.data.SHAPES_CLASSES)
    prep = loaded["preprocessing"]
    assert prep["resize"] == prep["crop"] == 16 and len(prep["mean"]) == 3
    assert loaded["dataset"] == "shapes" and loaded["metrics"]["steps"] == 3
    model = resnet_core.build(loaded["arch"], **loaded["options"])
    model.load_state_dict(loaded["state_dict"], strict=True)
    x = torch.randn(2, 3, 16, 16)
    racer.model.eval()
    model.eval()
    assert torch.allclose(model(x), racer.model(x), atol=1e-6)


def test_config_round_trip_and_one_sentence_errors():
    cfg = PRESETS["The degradation quartet"]
    assert RaceConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.labels == ["Plain-20", "Plain-56", "ResNet-20", "ResNet-56"]
    for bad, match in [(dict(lr=-1.0), "learning rate"), (dict(batch_size=1), "batch size"),
                       (dict(schedule="linear"), "schedule"), (dict(dataset="imagenet"), "Unknown data set")]:
        with pytest.raises(ValueError, match=match):
            tiny(**bad)
    with pytest.raises(ValueError, match="different net"):
        RaceConfig(racers=(RacerSpec("resnet20"), RacerSpec("resnet20")))
    with pytest.raises(ValueError, match="Unknown architecture"):
        RacerSpec.parse("resnet21")
    assert RacerSpec.parse("resnet56:plain") == RacerSpec("resnet56", residual=False)


def test_device_auto_is_cpu_here_without_amp():
    device = pick_device("auto")
    if torch.cuda.is_available():
        pytest.skip("a CUDA machine: auto picks the GPU")
    assert device.type in ("cpu", "mps")
    assert amp_dtype(torch.device("cpu")) is None
    threads = torch.get_num_threads()
    try:  # pinned: the machine's count would make this "1 thread" on a one-core runner
        torch.set_num_threads(1)
        assert describe_device(torch.device("cpu")) == "CPU, 1 thread"
        torch.set_num_threads(2)
        assert describe_device(torch.device("cpu")) == "CPU, 2 threads"
    finally:
        torch.set_num_threads(threads)


def test_degradation_direction_on_a_small_config():
    """Deeper plain nets train worse than their residual twins (He et al. 2015, Fig. 6), seeded and small."""
    cfg = tiny(racers=(RacerSpec("resnet44", residual=False), RacerSpec("resnet44")), width=8, steps=300,
               batch_size=32, n_train=1024, lr=0.02, warmup_steps=10, eval_every=300)
    summary = Race(cfg).train().summary().set_index("racer")
    # Measured (final loss, Plain-44 minus ResNet-44) for seeds 0/1/2: 1 thread 0.67/0.77/1.16, 2 threads
    # 0.82/0.53/0.79, 4 threads 0.62/0.77; Plain-44 stays at chance (2.27-2.31, ln 10 = 2.30) in every run.
    # At width 4 and 120 steps the ResNet had barely started and the gap (0.02-0.33) followed the thread count.
    # On an AMD EPYC (2 threads, seed 0) the gap is 0.23 (Plain-44 2.29, ResNet-44 2.06): the CPU's kernels change
    # the trajectory. 0.15 is still several times the plain net's spread around chance (2.27-2.31).
    assert summary.loc["Plain-44", "final_loss"] > 2.2
    assert summary.loc["Plain-44", "final_loss"] - summary.loc["ResNet-44", "final_loss"] > 0.15


def test_cli_writes_a_run_folder(tmp_path, capsys):
    code = train_main(["--racer", "resnet20:plain", "--racer", "resnet20", "--steps", "3", "--width", "4",
                 "--image-size", "16", "--batch-size", "16", "--n-train", "128", "--eval-every", "3",
                 "--runs-dir", str(tmp_path), "--no-progress"])
    assert code == 0
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]  # the run folder (beside the race slot's files)
    info = json.loads((run / "config.json").read_text())
    assert info["source"] == "cli" and info["racers"] == ["Plain-20", "ResNet-20"]
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["kind"] for line in lines].count("step") == 6 and [line["kind"] for line in lines].count("eval") == 2
    assert (run / "plain-20.pt").is_file() and (run / "resnet-20.pt").is_file()
    out = capsys.readouterr().out
    assert "ResNet-20" in out and "run folder" in out


def test_cli_logs_only_real_evaluations_when_racers_diverge(tmp_path):
    # lr 1e6 with no warm-up: step 1 is finite (initial weights), later steps diverge. With an evaluation at
    # every step, the log must hold exactly what evaluate() measured: one row per (step, racer), none for a
    # racer at or after the step it diverged.
    code = train_main(["--racer", "resnet20:plain", "--racer", "resnet20", "--steps", "30", "--width", "4",
                 "--image-size", "16", "--batch-size", "16", "--n-train", "128", "--eval-every", "1",
                 "--lr", "1e6", "--warmup", "0", "--runs-dir", str(tmp_path), "--no-progress"])
    assert code == 0
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]  # the run folder (beside the race slot's files)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [line for line in lines if line["kind"] == "step"]
    evals = [(line["step"], line["racer"]) for line in lines if line["kind"] == "eval"]
    diverged = {line["racer"]: line["step"] for line in steps if line["status"] == "diverged"}
    assert diverged, "lr 1e6 should make a racer diverge"
    assert len(evals) == len(set(evals)), "an evaluation was logged twice (stale rows)"
    for step, racer in evals:
        assert step < diverged.get(racer, 10**9), (step, racer)
    last_running = {}
    for line in steps:
        if line["status"] != "diverged":
            last_running[line["racer"]] = line["step"]
    assert sorted(evals) == sorted((s, r) for r, last in last_running.items() for s in range(1, last + 1))


def test_degradation_is_claimed_only_where_the_summary_shows_it():
    quartet = PRESETS["The degradation quartet"]

    def summary(losses: dict[str, float], steps: int = 100, status: str = "finished"):
        rows = [{"step": s, "racer": label, "loss": loss, "acc": 0.5, "status": status}
                for s in range(1, steps + 1) for label, loss in losses.items()]
        import pandas as pd

        return summarize(pd.DataFrame(rows), pd.DataFrame(columns=["step", "racer", "test_loss", "test_acc"]))

    shown = summary({"Plain-20": 0.9, "Plain-56": 2.29, "ResNet-20": 0.8, "ResNet-56": 0.6})
    note = degradation_note(quartet, shown)
    assert note is not None and "Plain-56" in note and "Plain-20" in note and "2.290" in note and "0.900" in note
    # Deeper plain net as good as the shallow one: no claim; nor within the margin; nor after too few steps.
    assert degradation_note(quartet, summary({"Plain-20": 0.9, "Plain-56": 0.7, "ResNet-20": 0.8,
                                              "ResNet-56": 0.6})) is None
    assert degradation_note(quartet, summary({"Plain-20": 0.9, "Plain-56": 0.92})) is None
    assert degradation_note(quartet, summary({"Plain-20": 0.9, "Plain-56": 2.29}, steps=5)) is None
    assert degradation_note(quartet, summary({"Plain-20": 0.9, "Plain-56": float("nan")})) is None
    # One depth (the default preset) can never show it, however far apart plain and residual end.
    pair = PRESETS["Plain-20 vs ResNet-20"]
    assert degradation_note(pair, summary({"Plain-20": 2.3, "ResNet-20": 0.2})) is None
    assert degradation_note(pair, summarize(*[__import__("pandas").DataFrame()] * 2)) is None
    as_read_back = shown.astype(object).where(shown.notna(), None)  # summary.json: NaN -> null
    as_read_back.loc[as_read_back["racer"] == "Plain-20", "final_loss"] = None
    assert degradation_note(quartet, as_read_back) is None
    assert degradation_note(quartet, shown.drop(columns=["steps"])) is None  # an older summary layout
    assert set(PRESET_NOTES) == set(PRESETS)
    assert "cannot show degradation" in PRESET_NOTES["Plain-20 vs ResNet-20"]


def test_degradation_note_on_a_measured_race():
    """A real (small, seeded) race: the note follows the measured summary, whatever it says."""
    cfg = tiny(racers=(RacerSpec("resnet20", residual=False), RacerSpec("resnet44", residual=False)), steps=60,
               batch_size=32, n_train=512, lr=0.02, warmup_steps=10, eval_every=60)
    race = Race(cfg).train()
    summary = race.summary().set_index("racer")
    gap = summary.loc["Plain-44", "final_loss"] - summary.loc["Plain-20", "final_loss"]
    note = degradation_note(cfg, race.summary())
    assert (note is not None) == (gap > 0.05)
    if note is not None:
        assert "Plain-44" in note


def test_cli_bad_input_is_one_sentence(capsys):
    assert train_main(["--racer", "resnet21"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("resnet-train: Unknown architecture 'resnet21'") and "\n" not in err
    assert train_main([]) == 2
    assert "--preset" in capsys.readouterr().err


def test_cli_names_the_data_folder_the_page_leaves_out(capsys, tmp_path, monkeypatch):
    """The library's sentence has no server path (visitors read it); the operator's command line adds it."""
    monkeypatch.setenv("RESNET_EXPLORER_OFFLINE", "1")
    monkeypatch.setenv("RESNET_EXPLORER_DATA", str(tmp_path / "no-data"))
    assert train_main(["--racer", "resnet20", "--dataset", "cifar10", "--steps", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("resnet-train: CIFAR-10 is not in the data folder") and "\n" not in err
    assert err.endswith(f"(folder: {tmp_path / 'no-data'})")


def _round_trip(ckpt: dict) -> dict:
    """Through bytes and back, as a checkpoint file is read (weights_only)."""
    import io

    buffer = io.BytesIO()
    torch.save(ckpt, buffer)
    return torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)


def test_a_restored_race_continues_the_uninterrupted_curve_exactly():
    # 12 steps of 16 images from 64: three epochs, so the restore lands mid-epoch with the sampler reshuffled
    # (steps 4 -> 5 cross nothing, 7 is inside epoch 2). Same process, same threads: the curves are equal.
    cfg = tiny(steps=12, n_train=64, schedule="step", checkpoint_every=7)
    whole = Race(cfg)
    batches, ckpts = [], None
    while not whole.done:
        whole.step()
        batches.append(whole.last_batch_indices.clone())
        if whole.eval_due():
            whole.evaluate()
        if whole.checkpoint_due():
            assert whole.step_index == 7
            ckpts = {r.label: _round_trip(whole.checkpoint(r)) for r in whole.racers}
    resume = ckpts["ResNet-20"]["resume"]
    assert resume["step"] == 7 and resume["data"] == {"epoch": 2, "cursor": 48, "seed": 0, "world_size": 1}
    assert resume["schedule"]["next_lr"] == lr_at(7, cfg) and resume["scaler"] is None
    assert resume["optimizer"]["state"]  # momentum buffers
    part = Race(cfg)
    part.restore(ckpts, whole.rows, whole.eval_rows)  # the log beyond step 7 is dropped
    assert part.step_index == 7 and len(part.rows) == 14 and [r["step"] for r in part.eval_rows] == [3, 3, 6, 6]
    resumed_batches = []
    while not part.done:
        part.step()
        resumed_batches.append(part.last_batch_indices.clone())
        if part.eval_due():
            part.evaluate()
    assert all(torch.equal(a, b) for a, b in zip(batches[7:], resumed_batches, strict=True))  # data order
    a, b = whole.history(), part.history()
    assert b["step"].tolist() == a["step"].tolist()
    assert b["loss"].tolist() == pytest.approx(a["loss"].tolist(), rel=1e-6, abs=0)
    assert b["lr"].tolist() == a["lr"].tolist()
    assert part.evals()["test_loss"].tolist() == pytest.approx(whole.evals()["test_loss"].tolist(), rel=1e-6)
    for x, y in zip(whole.racers, part.racers, strict=True):
        assert x.status == y.status == "finished"
        for p, q in zip(x.model.state_dict().values(), y.model.state_dict().values(), strict=True):
            assert torch.allclose(p.float(), q.float(), rtol=1e-6, atol=0)


def test_restore_refuses_checkpoints_of_mixed_steps_or_without_resume_state():
    race = Race(tiny(steps=4))
    race.step()
    early = {r.label: race.checkpoint(r) for r in race.racers}
    race.step()
    mixed = {**early, "ResNet-20": race.checkpoint(race.racers[1])}
    with pytest.raises(ValueError, match="different steps"):
        Race(tiny(steps=4)).restore(mixed)
    bare = {label: {k: v for k, v in c.items() if k != "resume"} for label, c in early.items()}
    with pytest.raises(ValueError, match="weights only"):
        Race(tiny(steps=4)).restore(bare)
    with pytest.raises(ValueError, match="No checkpoint for Plain-20"):
        Race(tiny(steps=4)).restore({"ResNet-20": early["ResNet-20"]})
    with pytest.raises(ValueError, match="checkpoint interval \\(checkpoint_every\\) must be 0"):
        tiny(checkpoint_every=-1)


def test_racers_train_side_by_side_on_one_thread_each_and_the_count_is_given_back():
    """On a CPU with two threads, each racer's forward runs on one thread (a team of two per racer made the
    56-layer pair's step 230 ms instead of 95), the racers run in different threads, and the process has its
    thread count back after every step and evaluation. Nets and batches are channels-last, the step fused."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        race = Race(tiny(steps=3, eval_every=2, device="cpu"))
        seen: list[tuple[str, int, str]] = []
        def record(label: str) -> None:
            seen.append((label, torch.get_num_threads(), threading.current_thread().name))
            # A forward as long as a real net's: a tiny net's step could end before the next racer's is
            # submitted, and the pool would rightly hand that one to the same idle worker.
            time.sleep(0.2)

        for racer in race.racers:
            racer.model.register_forward_pre_hook(lambda _m, args, label=racer.label: record(label))
        race.step()
        assert torch.get_num_threads() == 2
        race.step()
        race.evaluate()
        assert torch.get_num_threads() == 2
        assert {count for _, count, _ in seen} == {1}
        assert {label for label, _, _ in seen} == {"Plain-20", "ResNet-20"}
        assert all(name.startswith("racer") for _, _, name in seen)
        first_step = {label: name for label, _, name in seen[:2]}
        assert len(set(first_step.values())) == 2  # the two racers of a step: two workers
        x, _ = race.next_batch()
        assert x.is_contiguous(memory_format=torch.channels_last)
        assert all(r.model.conv1.weight.is_contiguous(memory_format=torch.channels_last) for r in race.racers)
        assert all(group["fused"] for r in race.racers for group in r.optimizer.param_groups)
        race.close()
    finally:
        torch.set_num_threads(threads)
