"""resnet_core vs torchvision forward pass with identical weights (ResNet-50, batch 8, 224x224, CPU, eval).

Both models run in this process, interleaved (the order alternates every repeat so neither always runs on a
warmer cache), and the script prints the median of the per-repeat time ratios ours / torchvision.
Target: 1.00 +/- 0.05 (our taps are nn.Identity and our ReLUs are separate, non-inplace modules).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision.models as tvm

import resnet_core


def _time(model: torch.nn.Module, x: torch.Tensor) -> float:
    start = time.perf_counter()
    model(x)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()

    ours = resnet_core.build(args.arch, seed=0).eval()
    theirs = tvm.get_model(args.arch).eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = (ours(x) - theirs(x)).abs().max().item()
        for _ in range(args.warmup):
            ours(x)
            theirs(x)
        ratios, t_ours, t_theirs = [], [], []
        for i in range(args.repeats):
            if i % 2:
                a, b = _time(theirs, x), _time(ours, x)
                a, b = b, a
            else:
                a, b = _time(ours, x), _time(theirs, x)
            t_ours.append(a)
            t_theirs.append(b)
            ratios.append(a / b)
    print(f"{args.arch}, batch {args.batch}, {args.size}x{args.size}, CPU, eval, no_grad, "
          f"{torch.get_num_threads()} threads, {args.repeats} interleaved repeats; max |output diff| = {diff:.2e}")
    print(f"resnet_core median {statistics.median(t_ours) * 1e3:.1f} ms, "
          f"torchvision median {statistics.median(t_theirs) * 1e3:.1f} ms")
    print(f"median ratio resnet_core / torchvision = {statistics.median(ratios):.3f} "
          f"(quartiles {statistics.quantiles(ratios, n=4)[0]:.3f} .. {statistics.quantiles(ratios, n=4)[2]:.3f}; "
          "target 1.00 +/- 0.05)")


if __name__ == "__main__":
    main()
