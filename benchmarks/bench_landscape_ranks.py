"""The loss landscape on two processes against one: ``resnet-probe landscape --nproc 2`` (torchrun's launcher, two
gloo ranks with one thread each, every other grid point) against ``resnet-probe landscape`` in one process with
two threads, on the same machine, interleaved.

Both are the whole command a user runs (Python start, imports, the checkpoint, the batch, the grid, the CSV),
on the embedded demo ResNet-20 (32 px Shapes) at the issue's size: a 21 x 21 grid on a fixed batch of 128
training images. Each setting runs ``--rounds`` times, alternating; the medians and their ratio are printed
with the load average, and the two CSVs are checked to be the same surface (max |difference| of the loss).

    python benchmarks/bench_landscape_ranks.py [--steps 21] [--batch 128] [--rounds 3]

Measured here, 2026-12-07, 2 cores, load average 1.6 before and 1.7 after: one process with 2 threads 47.1 s,
two processes with 1 thread each 41.7 s (two / one = 0.89); the two surfaces are identical (max |loss
difference| 0). Each evaluation of a 128-image batch on ResNet-20 is too small to keep two threads busy, so two
ranks of one thread use the two cores better than one rank of two.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

BIN = Path(sys.executable).parent


def load() -> str:
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


def run(setting: str, folder: Path, steps: int, batch: int) -> tuple[float, Path]:
    out = folder / f"{setting}.csv"
    command = [str(BIN / "resnet-probe"), "landscape", "demo:resnet20", "--steps", str(steps), "--batch", str(batch),
               "--out", str(out)]
    threads = "2"
    if setting == "two processes":
        command += ["--nproc", "2"]
        threads = "1"  # per process: the same two cores in all
    env = {**os.environ, "OMP_NUM_THREADS": threads, "OMP_WAIT_POLICY": "PASSIVE"}
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env, cwd=folder)
    return time.perf_counter() - start, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=21)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"load average before: {load()}; {os.cpu_count()} CPUs", flush=True)
    times: dict[str, list[float]] = {"one process, 2 threads": [], "two processes": []}
    tables: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ranks-") as tmp:
        for round_index in range(args.rounds):
            for setting in times:
                seconds, tables[setting] = run(setting, Path(tmp), args.steps, args.batch)
                times[setting].append(seconds)
                print(f"round {round_index + 1}, {setting}: {seconds:.1f} s; load {load()}", flush=True)
        one, two = (pd.read_csv(path) for path in tables.values())
        difference = float((one["loss"] - two["loss"]).abs().max())
    baseline, split = (statistics.median(values) for values in times.values())
    print(f"\n{args.steps} x {args.steps} grid, batch {args.batch}, medians of {args.rounds}:")
    print(f"one process, 2 threads   {baseline:7.1f} s")
    print(f"two processes, 1 thread  {split:7.1f} s   two / one = {split / baseline:.2f}")
    print(f"the same surface: max |loss difference| {difference:.2e} (threads per evaluation differ: 2 against 1)")
    print(f"load average after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
