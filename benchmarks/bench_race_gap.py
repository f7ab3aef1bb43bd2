"""How soon the races tell their story: seconds of training until each preset shows its 2x gap, on the CPU.

Each race is its preset exactly (resnet_core.train.PRESETS), run by the real engine (``Race.step`` with the
evaluations it schedules) on the CPU with torch's default threads. After every step the mean training loss of
each racer's last ``FINAL_WINDOW`` (20) steps, the window the results table uses, is compared:

* *Plain-56 vs ResNet-56*: the gap is Plain-56's mean loss >= 2 x ResNet-56's;
* *The degradation quartet*: Plain-56's mean loss >= 2 x Plain-20's (the paper's degradation, shown twice over).

Printed: the step and the seconds of training (the race's own clock, evaluations included) at which the gap
first holds, the ratio of those seconds to the target (issue 24: <= 60 s for the pair, <= 180 s for the
quartet), and the load average before and after, since the machine is shared. A race that has not shown its gap
by its last step, or by ``--cap`` times its target, is reported as such. The engine's own speed against a bare
PyTorch loop is benchmarks/bench_train.py.

    python benchmarks/bench_race_gap.py [--races pair,quartet] [--cap 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from resnet_core.train import FINAL_WINDOW, PRESETS, Race

RACES = {
    # short name: (preset, the racer that must end high, the racer it is compared with, target seconds)
    "pair": ("Plain-56 vs ResNet-56", "Plain-56", "ResNet-56", 60.0),
    "quartet": ("The degradation quartet", "Plain-56", "Plain-20", 180.0),
}
GAP = 2.0


def _load() -> str:
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


def time_to_gap(preset: str, high: str, low: str, cap_s: float) -> tuple[int | None, float | None, float, int]:
    """(step, training seconds) when ``high``'s windowed loss first reaches GAP x ``low``'s (None, None if it
    did not), the seconds trained in all, and the steps run."""
    config = PRESETS[preset]
    config = type(config).from_dict({**config.to_dict(), "device": "cpu"})
    race = Race(config)
    losses: dict[str, list[float]] = {label: [] for label in config.labels}
    try:
        while not race.done:
            for row in race.step():
                losses[row["racer"]].append(row["loss"])
            if race.eval_due():
                start = time.perf_counter()
                race.evaluate()
                race.wall += time.perf_counter() - start  # the class waits for the evaluations too
            window_high, window_low = losses[high][-FINAL_WINDOW:], losses[low][-FINAL_WINDOW:]
            if len(window_low) == FINAL_WINDOW:
                mean_high, mean_low = sum(window_high) / FINAL_WINDOW, sum(window_low) / FINAL_WINDOW
                if mean_high >= GAP * mean_low:
                    return race.step_index, race.wall, race.wall, race.step_index
            if race.wall > cap_s:
                break
    finally:
        race.close()
    return None, None, race.wall, race.step_index


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--races", default="pair,quartet", help=f"comma-separated, of {', '.join(RACES)}")
    parser.add_argument("--cap", type=float, default=3.0, help="give up after this many times the target")
    args = parser.parse_args()
    import torch

    print(f"load average before: {_load()}; CPU, {torch.get_num_threads()} threads", flush=True)
    ok = True
    for name in args.races.split(","):
        preset, high, low, target = RACES[name.strip()]
        step, seconds, trained, steps = time_to_gap(preset, high, low, args.cap * target)
        if seconds is None:
            ok = False
            print(f"{preset}: no {GAP:g}x gap ({high} over {low}) in {steps} steps, {trained:.0f} s of training; "
                  f"target <= {target:.0f} s  MISSED; load {_load()}", flush=True)
        else:
            good = seconds <= target
            ok &= good
            print(f"{preset}: {high}'s loss >= {GAP:g} x {low}'s (means of the last {FINAL_WINDOW} steps) at step "
                  f"{step}, after {seconds:.1f} s of training; / target {target:.0f} s = {seconds / target:.2f}  "
                  f"{'ok' if good else 'MISSED'}; load {_load()}", flush=True)
    print(f"load average after: {_load()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
