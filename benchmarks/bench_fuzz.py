"""Fuzz the image and checkpoint paths at a larger size than the suite, each property in one watched child.

Prints, per property: examples run, outcomes by type (a bounded result or ImageError / WeightsError /
CheckpointMismatch), wall seconds, examples per second, and peak resident memory (absolute and growth over
the child's baseline after its imports). Exits 1 if any example ends otherwise, or a child grows more than
3 GB over its baseline or outlives the timeout.

Usage: RESNET_EXPLORER_FUZZ_EXAMPLES=5000 python benchmarks/bench_fuzz.py [--timeout SECONDS]
(default 1,000 examples per property). The watcher and the properties live in tests/fuzz/ and run as
modules from the repository root (``python -m tests.fuzz.watch``), whatever the current directory.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per property (a hang guard)")
    args = parser.parse_args()
    examples = int(os.environ.get("RESNET_EXPLORER_FUZZ_EXAMPLES", "0") or 0) or 1000
    print(f"fuzzing {examples} examples per property (RESNET_EXPLORER_FUZZ_EXAMPLES)", flush=True)
    return subprocess.run([sys.executable, "-m", "tests.fuzz.watch", str(examples), str(args.timeout)],
                          cwd=REPO, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main())
