"""DistributedDataParallel under torchrun: 2 CPU processes (gloo) train a tiny race; the ranks' weights agree."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from tests.conftest import REPO

WORKER = textwrap.dedent('''
    import os, sys
    import torch
    import torch.distributed as dist
    from resnet_core.train import Race, RaceConfig, RacerSpec

    out = sys.argv[1]
    cfg = RaceConfig(racers=(RacerSpec("resnet20", residual=False), RacerSpec("resnet20")), image_size=16, width=4,
                     steps=3, batch_size=16, n_train=128, n_test=16, eval_every=3, eval_samples=16, warmup_steps=1)
    race = Race(cfg)
    init = {r.label: {k: v.clone() for k, v in r.model.named_parameters()} for r in race.racers}
    indices = []
    for _ in range(cfg.steps):
        race.step()
        indices.append(race.last_batch_indices.clone())
    rank = dist.get_rank()
    torch.save({"world": dist.get_world_size(), "backend": dist.get_backend(), "indices": indices,
                "losses": [row["loss"] for row in race.rows], "init": init,
                "wrapped": [type(r.train_model).__name__ for r in race.racers],
                "params": {r.label: dict(r.model.named_parameters()) for r in race.racers}},
               os.path.join(out, f"rank{rank}.pt"))
    dist.destroy_process_group()
''')


@pytest.mark.slow
def test_two_cpu_ranks_end_with_equal_weights(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), str(tmp_path)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["world"] == 2 and r0["backend"] == "gloo"
    assert r0["wrapped"] == ["DistributedDataParallel"] * 2
    # DistributedSampler: each rank trains on its own half of every global batch.
    for a, b in zip(r0["indices"], r1["indices"], strict=True):
        assert len(a) == len(b) == 8 and not set(a.tolist()) & set(b.tolist())
    # Metrics are averaged over ranks, so both ranks log the same losses.
    assert r0["losses"] == pytest.approx(r1["losses"])
    for label in ("Plain-20", "ResNet-20"):
        p0, p1 = r0["params"][label], r1["params"][label]
        assert p0.keys() == p1.keys()
        for name in p0:
            assert torch.equal(p0[name], p1[name]), f"{label} {name} differs between ranks"
        changed = sum(not torch.equal(p0[n], r0["init"][label][n]) for n in p0)
        assert changed > len(p0) // 2  # the ranks really trained
