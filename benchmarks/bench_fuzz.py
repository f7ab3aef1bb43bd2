"""Fuzz the image and checkpoint paths at a larger size than the suite, each property in one watched child.

Prints, per property: examples run, outcomes by type (a bounded result or ImageError / WeightsError /
CheckpointMismatch), wall seconds, examples per second, and peak resident memory (absolute and growth over
the child's baseline after its imports). The run fails (exit 1) if any example ends otherwise, or the child
grows more than 3 GB over its baseline or outlives the timeout.

Usage: RESNET_EXPLORER_FUZZ_EXAMPLES=5000 python benchmarks/bench_fuzz.py [--timeout SECONDS]
(default 2,000 examples per property). Run it from the repository root: the child is ``tests.fuzz.properties``.
"""

from __future__ import annotations

import argparse
import os

from tests.fuzz.watch import RSS_BOUND, run_property


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per property (a hang guard)")
    args = parser.parse_args()
    examples = int(os.environ.get("RESNET_EXPLORER_FUZZ_EXAMPLES", "0") or 0) or 2000
    failed = False
    for name in ("images", "checkpoints"):
        watched = run_property(name, examples, timeout=args.timeout)
        result = watched.result or {}
        ran = result.get("examples", 0)
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(result.get("outcomes", {}).items())) or "none"
        print(f"{name}: {ran} examples in {watched.seconds:.1f} s ({ran / max(watched.seconds, 1e-9):.1f}/s); "
              f"outcomes: {outcomes}; peak RSS {watched.peak_rss / 2**20:,.0f} MB "
              f"({watched.growth / 2**20:+,.0f} MB over the {watched.baseline_rss / 2**20:,.0f} MB baseline, "
              f"bound {RSS_BOUND / 2**20:,.0f} MB)")
        if watched.killed or watched.returncode != 0 or ran < examples:
            failed = True
            print(f"  FAILED: {watched.killed or f'exit {watched.returncode}'}")
            print("".join(watched.output[-40:]))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
