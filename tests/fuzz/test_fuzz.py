"""Fuzzing: hypothesis drives the image path and the checkpoint path, each property in one watched child.

Run alone with ``pytest -m fuzz``. The suite runs 700 image and 400 checkpoint examples (1,100 in all);
``RESNET_EXPLORER_FUZZ_EXAMPLES`` scales both (``benchmarks/bench_fuzz.py`` runs more).
"""

from __future__ import annotations

import os

import pytest

from tests.fuzz.watch import RSS_BOUND, run_property

pytestmark = pytest.mark.fuzz

SCALE = int(os.environ.get("RESNET_EXPLORER_FUZZ_EXAMPLES", "0") or 0)
EXAMPLES = {"images": SCALE or 700, "checkpoints": SCALE or 400}
# A hang guard, not a speed check: generous for a shared 2-core machine.
TIMEOUT = 600


@pytest.mark.parametrize("name, errors", [
    ("images", {"ImageError"}),
    ("checkpoints", {"WeightsError", "CheckpointMismatch", "NotAResNet"}),  # both subclass WeightsError
])
def test_every_example_ends_in_a_bounded_result_or_one_clear_error(name, errors):
    watched = run_property(name, EXAMPLES[name], timeout=TIMEOUT)
    tail = "".join(watched.output[-40:])
    assert watched.killed is None, f"{name}: {watched.killed}\n{tail}"
    assert watched.returncode == 0 and watched.result is not None, tail  # hypothesis prints the failing example
    assert watched.result["examples"] >= EXAMPLES[name]
    outcomes = watched.result["outcomes"]
    assert set(outcomes) <= {"result"} | errors, outcomes
    assert outcomes.get("result", 0) > 0 and sum(outcomes.get(e, 0) for e in errors) > 0, outcomes  # both occur
    assert watched.growth < RSS_BOUND
