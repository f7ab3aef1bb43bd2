"""Cost of the instruments, as ratios against a baseline timed in the same process, interleaved.

1. Activation statistics on every block of ResNet-50 (batch 16, 224x224, CPU, eval, no grad) against the bare
   forward pass. Target: at most 1.05x (issue 24).
2. ``path_gradients`` on ResNet-152 (train-mode batch-norm, cross-entropy) against one ordinary training
   forward+backward of the same batch (loss.backward() into parameter .grad). Target: at most 2.5x.

Usage: python benchmarks/bench_probes.py [--repeats N] [--batch-152 B]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from resnet_core import build, count_hooks
from resnet_core.probes import path_gradients, record_activations, resolve_layers
from resnet_core.targets import LossTarget


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(baseline: Callable[[], object], candidate: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median seconds of baseline and candidate, alternating the order each repeat (after one warm-up each)."""
    baseline(), candidate()
    base, cand = [], []
    for i in range(repeats):
        if i % 2 == 0:
            base.append(_time(baseline))
            cand.append(_time(candidate))
        else:
            cand.append(_time(candidate))
            base.append(_time(baseline))
    return statistics.median(base), statistics.median(cand)


def bench_stats(repeats: int) -> float:
    model = build("resnet50", seed=0).eval()
    x = torch.randn(16, 3, 224, 224, generator=torch.Generator().manual_seed(0))

    def bare() -> None:
        with torch.no_grad():
            model(x)

    def recorded() -> None:
        with record_activations(model, "blocks", "stats") as rec, torch.no_grad():
            model(x)
        rec.stats()  # the DataFrame is part of the cost

    base, cand = interleaved(bare, recorded, repeats)
    assert count_hooks(model) == 0
    ratio = cand / base
    print(f"stats on all {len(resolve_layers(model, 'blocks'))} blocks of ResNet-50, batch 16, 224x224, CPU: "
          f"bare forward {base:.3f} s, recorded {cand:.3f} s, ratio {ratio:.3f} (target <= 1.05)")
    return ratio


def bench_path_gradients(repeats: int, batch: int) -> float:
    model = build("resnet152", seed=0)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, 224, 224, generator=gen)
    y = torch.randint(0, 1000, (batch,), generator=gen)

    def forward_backward() -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        model.zero_grad(set_to_none=True)

    def split() -> None:
        path_gradients(model, x, LossTarget(y), train=True)

    base, cand = interleaved(forward_backward, split, repeats)
    assert count_hooks(model) == 0
    ratio = cand / base
    print(f"path_gradients on ResNet-152, batch {batch}, 224x224, CPU: forward+backward {base:.3f} s, "
          f"path_gradients {cand:.3f} s, ratio {ratio:.3f} (target <= 2.5)")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-152", type=int, default=4)
    parser.add_argument("--part", choices=("all", "stats", "paths"), default="all")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; load average before "
          f"{' / '.join(f'{v:.1f}' for v in os.getloadavg())}")
    ok = True
    if args.part in ("all", "stats"):
        ok &= bench_stats(args.repeats) <= 1.05
    if args.part in ("all", "paths"):
        ok &= bench_path_gradients(max(3, args.repeats - 2), args.batch_152) <= 2.5
    print(("targets met" if ok else "TARGET MISSED")
          + f"; load average after {' / '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
