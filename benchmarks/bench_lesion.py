"""Cost of a lesion study against the forward passes it needs, timed in the same process.

``lesion_study`` of ResNet-56 (width 16, 32 px, a fixed batch of 256 images, CPU, eval) needs one forward of
the full model and one per removable block (27 + 1 = 28); the baseline is that many bare no-grad forwards of
the same batch on the same model. Target (issue 14): ratio <= 1.2.

Full size: python benchmarks/bench_lesion.py                 (about 30 s on a quiet 2-core laptop)
Reduced:   python benchmarks/bench_lesion.py --batch 64

A pass with blocks removed from stage s on starts from stage s's input kept from the full pass, so the study
costs less than the passes it needs. Measured here at full size (2 cores shared with other work, load 6-16):
ratio 0.565 (CPU-time ratio 0.616); before the stage inputs were kept: 0.93 and, for the plain twin, 1.26.
"""

from __future__ import annotations

import time

import torch
from instrument_bench import against_bare, model_and_batch, parser

from resnet_core import lesion


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--plain", action="store_true", help="the plain twin (fewer removable blocks)")
    args = p.parse_args()
    model, x, y = model_and_batch(args, residual=not args.plain)
    passes = 1 + int(lesion.block_table(model)["removable"].sum())
    # The memory costing profiles the architecture once per process (a meta-device pass, then cached):
    # reported on its own, as it is not part of the per-pass cost.
    start = time.perf_counter()
    lesion.estimate(model, x.shape)
    costing = time.perf_counter() - start
    study, cand, cand_cpu, base, base_cpu = against_bare(model, x, passes, lambda: lesion.lesion_study(model, x, y))
    ratio, cpu_ratio = cand / base, cand_cpu / base_cpu
    print(f"lesion study of {'plain ' if args.plain else ''}{args.arch} (width {args.width}, {args.size} px, batch "
          f"{args.batch}, CPU, {torch.get_num_threads()} threads): {passes} bare forwards {base:.2f} s, study "
          f"{cand:.2f} s, ratio {ratio:.3f} (target <= 1.2), CPU-time ratio {cpu_ratio:.3f}; first costing {costing:.2f} s; {len(study)} blocks")


if __name__ == "__main__":
    main()
