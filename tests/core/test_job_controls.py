"""Pause then Step: the step a paused race shows is the one it holds at, and one Step trains exactly one more.

The app once drew "step 250" right after Pause while step 251 was still in flight, so the next Step showed 252.
"""

from __future__ import annotations

import time

from resnet_core import runs
from resnet_core.train import RaceConfig, RacerSpec


def tiny(steps: int = 400) -> RaceConfig:
    return RaceConfig(racers=(RacerSpec("resnet20", residual=False), RacerSpec("resnet20")), image_size=16, width=4,
                      steps=steps, batch_size=16, n_train=256, n_test=32, eval_every=5, eval_samples=32,
                      warmup_steps=2, name="tiny race")


def test_pause_returns_the_step_it_holds_at_and_each_step_adds_exactly_one(tmp_path):
    job = runs.Job(tiny(), tmp_path)
    job.start()
    try:
        assert job.wait_for_step(3, timeout=120)
        held = job.pause()
        # No waiting here: what a page draws right after Pause is already the step the race holds at.
        assert job.status == "paused" and job.snapshot().step == held >= 3
        time.sleep(0.3)
        assert job.snapshot().step == held
        for n in (1, 2):
            target = job.step_once()
            assert target == held + n
            assert job.wait_for_step(target, timeout=120) and job.wait_paused(timeout=120)
            time.sleep(0.2)
            snap = job.snapshot()
            assert snap.step == held + n and snap.status == "paused"
            assert snap.history["step"].max() == held + n and len(snap.history) == 2 * (held + n)
    finally:
        job.stop()
        assert job.wait(timeout=120)


def test_steps_asked_for_in_a_row_are_each_counted(tmp_path):
    job = runs.Job(tiny(), tmp_path)
    assert job.step_once() == 1  # from ready: one step, then paused
    second = job.step_once()  # asked while the first may still be in flight: it comes after it
    assert second == 2
    try:
        assert job.wait_for_step(second, timeout=120) and job.wait_paused(timeout=120)
        time.sleep(0.2)
        assert job.snapshot().step == 2 and job.status == "paused"
        assert job.pause() == 2  # pausing a paused race changes nothing
    finally:
        job.stop()
        assert job.wait(timeout=120)
    assert job.step_once() == job.snapshot().step  # an ended race takes no more steps
