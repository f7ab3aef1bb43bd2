"""The lesson's steps 6-7 in a new process: measured (an empty folder of kept measurements) against read back
(the folder the first process filled), at the page's settings (pages/lesson.py: 11 x 11 landscape of 64 training
images, lesion study and curve on 128 held-out images, the demo pair).

Each round starts two fresh Python processes on one new folder, one after the other: the first measures and
keeps, the second finds the entries. Both time only the two calls (imports and loading the pair apart) and
print their seconds; the script prints the medians and the ratio, with the load average.

    python benchmarks/bench_lesson_store.py [--rounds 3]

Measured here 2026-12-07, 2 cores, load average 0.5-1.3, 3 rounds: measured 9.38-10.58 s (median 9.95 s), read
back 0.039-0.045 s (median 0.040 s): 0.004 x, the same numbers. The lesson page's first visit in a new process
(AppTest, imports and the other steps included): 17.0 s with an empty folder, 4.1 s with the entries kept.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHILD = """
import json, time
from resnet_core import lesson
pair = lesson.load_pair(lesson.DEMO_PAIR)
x, y = lesson.shapes_batch("train", 64, pair.image_size)[:2]
xt, yt = lesson.shapes_batch("test", 128, pair.image_size)[:2]
start = time.perf_counter()
surfaces, _ = lesson.landscape_pair(pair, x, y, steps=11, span=1.0, seed=0)
studies, _ = lesson.lesion_pair(pair, xt, yt, max_removed=4, samples=6)
print(json.dumps({"seconds": time.perf_counter() - start, "first_loss": float(surfaces["loss"].iloc[0]),
                  "full_accuracy": float(studies["full_accuracy"].iloc[0])}))
"""


def _child(folder: Path) -> dict[str, float]:
    env = {**os.environ, "RESNET_EXPLORER_CACHE": str(folder), "OMP_WAIT_POLICY": "PASSIVE"}
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=600, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    before = os.getloadavg()
    measured, read = [], []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as folder:
            first, second = _child(Path(folder)), _child(Path(folder))
        if (first["first_loss"], first["full_accuracy"]) != (second["first_loss"], second["full_accuracy"]):
            raise SystemExit("the kept numbers differ from the measured ones")
        measured.append(first["seconds"])
        read.append(second["seconds"])
    after = os.getloadavg()
    m, r = statistics.median(measured), statistics.median(read)
    print(f"lesson steps 6-7 in a new process, {args.rounds} rounds; load average "
          f"{' / '.join(f'{v:.2f}' for v in before)} before, {' / '.join(f'{v:.2f}' for v in after)} after")
    print(f"measured (empty folder): median {m:.2f} s ({', '.join(f'{v:.2f}' for v in measured)})")
    print(f"read back (kept):        median {r:.3f} s ({', '.join(f'{v:.3f}' for v in read)})")
    print(f"read / measured: {r / m:.4f} (the same numbers: checked)")


if __name__ == "__main__":
    main()
