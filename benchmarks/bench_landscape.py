"""Cost of a loss-landscape surface against the bare forward passes it needs, timed in the same process.

A ``steps`` x ``steps`` surface of ResNet-56 (width 16, 32 px, a fixed batch of 256 images, CPU, eval) against
``steps``² bare no-grad forwards of the same batch on the same model. Target (issue 14): ratio <= 1.2, i.e. a
surface costs one forward of the batch per grid point and nothing else (the perturbed weights are built on
the fly and run through ``torch.func.functional_call`` on a private copy).

Full size (the issue's figure): python benchmarks/bench_landscape.py           (21x21, batch 256: minutes)
Reduced (a 2-core laptop shared with others): python benchmarks/bench_landscape.py --steps 7 --batch 64

Measured here (2 cores shared with other sessions, load 5-16; the full 21x21 size was not run): 7x7 at batch 64,
ratio 0.983 (CPU-time ratio 0.938); 11x11 at batch 256, ratio 1.254 (CPU-time ratio 1.075; another job started
on the machine during the surface).
"""

from __future__ import annotations

import time

import torch
from instrument_bench import against_bare, model_and_batch, parser

from resnet_core import landscape


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--steps", type=int, default=21)
    args = p.parse_args()
    model, x, y = model_and_batch(args)
    points = args.steps * args.steps
    # The memory costing profiles the architecture once per process (a meta-device pass, then cached):
    # reported on its own, as it is not part of the per-pass cost.
    start = time.perf_counter()
    landscape.estimate(model, x.shape)
    costing = time.perf_counter() - start
    grid, cand, cand_cpu, base, base_cpu = against_bare(
        model, x, points, lambda: landscape.surface(model, x, y, steps=args.steps, seed=0))
    ratio, cpu_ratio = cand / base, cand_cpu / base_cpu
    print(f"{args.steps}x{args.steps} surface of {args.arch} (width {args.width}, {args.size} px, batch "
          f"{args.batch}, CPU, {torch.get_num_threads()} threads): {points} bare forwards {base:.1f} s, surface "
          f"{cand:.1f} s, ratio {ratio:.3f} (target <= 1.2), CPU-time ratio {cpu_ratio:.3f}; first costing {costing:.2f} s; loss {grid['loss'].min():.3f} to {grid['loss'].max():.3f}")


if __name__ == "__main__":
    main()
