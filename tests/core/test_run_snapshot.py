"""A past run reads back as the same snapshot its live job published (what the Training page draws)."""

from __future__ import annotations

import pandas as pd

from resnet_core import runs
from resnet_core.train import RaceConfig, RacerSpec


def test_a_finished_run_reads_back_as_its_live_snapshot(tmp_path):
    config = RaceConfig(racers=(RacerSpec("resnet20", residual=False), RacerSpec("resnet20")), image_size=16,
                        width=4, steps=4, batch_size=8, n_train=64, n_test=16, eval_every=2, eval_samples=16,
                        warmup_steps=1, name="snapshot race")
    job = runs.Job(config, tmp_path)
    job.start()
    assert job.wait(timeout=120) and job.status == "finished"
    live = job.snapshot()
    past = runs.load_run(job.run_id, tmp_path).snapshot()
    assert isinstance(past, runs.JobSnapshot)
    assert (past.run_id, past.name, past.status, past.step, past.steps) == (job.run_id, "snapshot race", "finished",
                                                                           4, 4)
    assert past.progress == 1.0 and not past.active and past.eta_s is None
    assert past.racers == {"Plain-20": "finished", "ResNet-20": "finished"} == live.racers
    pd.testing.assert_series_equal(past.history["loss"], live.history["loss"], check_exact=False, rtol=1e-6)
    assert past.evals["test_acc"].tolist() == live.evals["test_acc"].tolist()
    assert past.summary["racer"].tolist() == live.summary["racer"].tolist() == ["Plain-20", "ResNet-20"]
    assert sorted(past.checkpoints) == sorted(live.checkpoints) and len(past.checkpoints) == 2
    assert past.device == live.device and past.device.startswith("CPU")
