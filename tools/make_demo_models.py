"""Train the embedded demo models in ``resnet_core/weights/demo_models/`` with the project's own trainer.

    make demo-models                                    # the recipe below; commit what it writes
    .venv/bin/python tools/make_demo_models.py --out /tmp/demo --steps 20   # a quick look, elsewhere

ResNet-20 and its plain twin Plain-20 (CIFAR stem, full width 16, 32 px) race on the built-in Shapes set
(``resnet_core.train.Race``: one seeded sampler, identical batches) with a fixed seed, on the CPU with a fixed
number of threads and deterministic algorithms, so the same command gives the same accuracies. Each net is saved
as an ordinary checkpoint in our format (``Race.checkpoint``, the file a training run writes) without the
optimizer's resume state, which only a continued race needs and which would double the size. Beside them:
``metrics.json`` (the recipe, per net its held-out accuracy on the 2,000 Shapes test images, final training
loss and accuracy, parameters, file size; the training time), ``history.csv`` (the training curves) and
``checks.json`` (the localisation check of ResNet-20: ``cam.localisation_numbers``, the numbers every view of it
shows). ``--checks-only`` measures ``checks.json`` again from the checkpoints already there (seconds).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import torch

from resnet_core.cam import localisation_numbers
from resnet_core.train import Race, RaceConfig, RacerSpec
from resnet_core.weights.checkpoints import model_from_checkpoint, read_checkpoint, save_checkpoint
from resnet_core.weights.demo import CHECKS_FILE, DEMO_CHECK_MODEL, DEMO_MODELS, HISTORY_FILE, METRICS_FILE

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "resnet_core" / "weights" / "demo_models"
THREADS = 2  # fixed: the order of float reductions (and so the last digits) depends on the thread count

# One depth with and without shortcuts, the paper's CIFAR nets at full width: the pair the lesson compares.
# Cosine decay to zero ends both nets at a settled minimum (a constant rate leaves them mid-step).
RECIPE = RaceConfig(
    racers=(RacerSpec("resnet20", residual=False), RacerSpec("resnet20")),
    dataset="shapes", image_size=32, width=None, steps=600, batch_size=64, lr=0.05, warmup_steps=30,
    schedule="cosine", n_train=10_000, n_test=2_000, eval_every=100, eval_samples=2_000, seed=0, device="cpu",
    checkpoint_every=0, name="embedded demo models",
)


def _key(label: str) -> str:
    for demo in DEMO_MODELS.values():
        if demo.label == label:
            return demo.key
    raise SystemExit(f"The racer {label} is not one of the embedded demo models ({', '.join(DEMO_MODELS)}).")


def make(out: Path, config: RaceConfig, threads: int = THREADS) -> dict:
    """Train ``config``'s racers, write their checkpoints, ``metrics.json`` and ``history.csv`` into ``out``."""
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    out.mkdir(parents=True, exist_ok=True)
    race = Race(config)
    started = time.perf_counter()

    def report(race: Race, rows: list[dict]) -> None:
        if race.eval_rows and race.eval_rows[-1]["step"] == race.step_index:
            accs = ", ".join(f"{r['racer']} {r['test_acc']:.1%}" for r in race.eval_rows[-len(race.racers):])
            print(f"step {race.step_index:>5}/{config.steps}  {time.perf_counter() - started:6.0f} s  "
                  f"held-out accuracy: {accs}", flush=True)

    race.train(report)
    seconds = time.perf_counter() - started
    summary = race.summary().set_index("racer")
    evals = race.evals()
    models = {}
    for racer in race.racers:
        key = _key(racer.label)
        checkpoint = race.checkpoint(racer)
        checkpoint["resume"] = None  # a finished demo is not continued: half the bytes
        path = save_checkpoint(out / DEMO_MODELS[key].file, checkpoint)
        row = summary.loc[racer.label]
        last = evals[evals["racer"] == racer.label].iloc[-1]
        models[key] = {
            "weights_id": DEMO_MODELS[key].weights_id, "label": racer.label, "file": path.name,
            "bytes": path.stat().st_size, "params": int(row["params"]), "status": racer.status,
            "steps": int(row["steps"]), "test_acc": round(float(last["test_acc"]), 6),
            "test_loss": round(float(last["test_loss"]), 6), "test_images": config.eval_samples,
            "final_loss": round(float(row["final_loss"]), 6), "final_acc": round(float(row["final_acc"]), 6),
            "train_seconds": round(float(row["seconds"]), 1),
        }
    metrics = {
        "made_by": "tools/make_demo_models.py (make demo-models)",
        "recipe": config.to_dict(), "threads": threads, "torch": torch.__version__,
        "python": platform.python_version(), "train_seconds": round(seconds, 1), "models": models,
        "evals": [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()}
                  for r in evals.to_dict("records")],
    }
    (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    history = race.history()
    with open(out / HISTORY_FILE, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "racer", "loss", "acc", "lr"])
        for r in history[["step", "racer", "loss", "acc", "lr"]].itertuples(index=False):
            writer.writerow([int(r.step), r.racer, f"{r.loss:.5f}", f"{r.acc:.4f}", f"{r.lr:.6f}"])
    write_checks(out, threads)
    return metrics


def write_checks(out: Path, threads: int = THREADS) -> dict:
    """Measure the localisation check of the ResNet-20 in ``out`` and write ``checks.json`` beside it."""
    torch.set_num_threads(threads)
    demo = DEMO_MODELS[DEMO_CHECK_MODEL]
    model = model_from_checkpoint(read_checkpoint(out / demo.file)).eval()
    checks = {"made_by": "tools/make_demo_models.py (make demo-models)", "model": demo.weights_id,
              **localisation_numbers(model)}
    (out / CHECKS_FILE).write_text(json.dumps(checks, indent=2) + "\n", encoding="utf-8")
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"folder to write (default {OUT.relative_to(REPO)})")
    parser.add_argument("--steps", type=int, default=RECIPE.steps, help="training steps (the recipe's by default)")
    parser.add_argument("--threads", type=int, default=THREADS, help="CPU threads (fixed for reproducibility)")
    parser.add_argument("--checks-only", action="store_true", help=f"only measure {CHECKS_FILE} again")
    args = parser.parse_args(argv)
    if args.checks_only:
        checks = write_checks(args.out, args.threads)
        print(f"pointing game {checks['hit_rate']:.1%} (chance {checks['chance']:.1%}) on {checks['images']} "
              f"held-out Shapes images; wrote {args.out / CHECKS_FILE}")
        return 0
    config = dataclasses.replace(RECIPE, steps=args.steps, eval_every=min(RECIPE.eval_every, args.steps))
    metrics = make(args.out, config, args.threads)
    for key, model in metrics["models"].items():
        print(f"demo:{key:<9} {model['label']:<10} held-out accuracy {model['test_acc']:.2%} "
              f"({model['test_images']} Shapes images), {model['bytes'] / 2**20:.2f} MB")
    print(f"trained in {metrics['train_seconds']:.0f} s with {metrics['threads']} threads; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
