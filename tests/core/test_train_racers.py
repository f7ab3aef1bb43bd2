"""Racers trained side by side on the CPU (one worker thread each): the same numbers as alone, no thread left."""

from __future__ import annotations

import threading

import pytest
import torch

from resnet_core.train import Race, RaceConfig, RacerSpec


def _config(*racers: RacerSpec) -> RaceConfig:
    return RaceConfig(racers=racers, image_size=16, width=4, steps=6, batch_size=16, n_train=128, n_test=32,
                      eval_every=3, eval_samples=32, warmup_steps=2, name="side by side")


def _racer_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("racer")]


def test_side_by_side_racers_match_each_racer_trained_alone_and_leave_nothing_behind():
    threads = torch.get_num_threads()
    pair = (RacerSpec("resnet20", residual=False), RacerSpec("resnet20"))
    torch.set_num_threads(2)
    try:
        race = Race(_config(*pair))
        race.step()
        assert len(_racer_threads()) == 2  # one worker per racer
        assert torch.get_num_threads() == 2  # the workers' single thread did not leak to this one
        race.train()
        together, scores = race.history(), race.evals()
        assert _racer_threads() == []  # a finished race ends its workers
        again = Race(_config(*pair)).train().history()  # no race between the workers: run to run, bit for bit
        assert again[["loss", "grad_stem"]].equals(together[["loss", "grad_stem"]])
        torch.set_num_threads(1)  # alone, on one thread: what each worker ran
        for spec in pair:
            solo = Race(_config(spec)).train()
            alone, mine = solo.history(), together[together["racer"] == spec.label]
            # Held-out scores computed in the workers too (without autograd: grad mode is per thread).
            assert scores[scores["racer"] == spec.label]["step"].tolist() == solo.evals()["step"].tolist() == [3, 6]
            assert scores[scores["racer"] == spec.label]["test_loss"].iloc[0] == pytest.approx(
                solo.evals()["test_loss"].iloc[0], rel=1e-4)
            assert mine["step"].tolist() == alone["step"].tolist() == [1, 2, 3, 4, 5, 6]
            # Same batches, same thread count: equal to float rounding (the first loss bit for bit), which a
            # plain net's stem gradient amplifies within a few steps, so its norms are compared early only.
            assert mine["loss"].iloc[0] == alone["loss"].iloc[0]
            assert mine["loss"].tolist() == pytest.approx(alone["loss"].tolist(), rel=1e-2)
            assert mine["grad_stem"].tolist()[:4] == pytest.approx(alone["grad_stem"].tolist()[:4], rel=1e-3)
    finally:
        torch.set_num_threads(threads)
    assert torch.get_num_threads() == threads


def test_a_stopped_race_ends_its_workers_and_a_step_after_restarts_them():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        race = Race(_config(RacerSpec("resnet20", residual=False), RacerSpec("resnet20")))
        race.step()
        race.close()
        assert _racer_threads() == []
        race.step()  # a paused job that resumes: the workers come back
        assert len(_racer_threads()) == 2 and race.step_index == 2
        (row, _) = race.evaluate()
        assert row["step"] == 2 and 0 <= row["test_acc"] <= 1
        race.stop()
        assert _racer_threads() == []
    finally:
        torch.set_num_threads(threads)
