"""Training engine throughput against a bare PyTorch loop: same model, batch and tensors, on the CPU.

The engine runs with every metric on (loss, accuracy, learning rate, images/s, per-stage gradient norms,
one host copy per step); the bare loop does only forward, loss, backward and the optimiser step on the same
gathered-and-normalised batches, in the engine's layout (channels_last) with its fused SGD step, so the ratio is
the engine's own overhead (target >= 0.99, issue 24). A second baseline, the textbook loop (default layout,
SGD's per-tensor step), shows what the layout and the fused step gain. Rounds are interleaved (engine, bare,
textbook, engine, ...) so a change in machine load hits every side alike; the load average is printed. Also times
the Shapes generator (target: 10,000 images at 32 px in under 2 s).

    python benchmarks/bench_train.py [--arch resnet20] [--width 16] [--size 32] [--batch 64] [--rounds 12]
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F

import resnet_core
from resnet_core.data import make_shapes, shapes_split
from resnet_core.train import Race, RaceConfig, RacerSpec, describe_device


def bare_step(model, optimizer, images, labels, mean, std, generator, batch, channels_last: bool) -> None:
    idx = torch.randint(0, images.shape[0], (batch,), generator=generator)
    x = (images[idx] - mean) / std
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), labels[idx])
    loss.backward()
    optimizer.step()


def _load() -> str:
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="resnet20")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--steps", type=int, default=8, help="steps per round and side")
    args = p.parse_args()

    start = time.perf_counter()
    make_shapes(10_000, 32, seed=123)
    gen_s = time.perf_counter() - start

    train, test = shapes_split("train", 2048, args.size), shapes_split("test", 256, args.size)
    total = (args.rounds + 1) * args.steps
    config = RaceConfig(racers=(RacerSpec(args.arch),), image_size=args.size, width=args.width, steps=total + 1,
                        batch_size=args.batch, eval_every=10 * total, device="cpu", warmup_steps=0,
                        schedule="constant")
    race = Race(config, train, test)
    racer = race.racers[0]
    num_classes = len(train.classes)
    model = resnet_core.build(args.arch, seed=0, width=args.width, num_classes=num_classes)
    model.train()
    if race.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = race._optimizer(model, scaled=False)  # the engine's own choice of SGD step
    textbook = resnet_core.build(args.arch, seed=0, width=args.width, num_classes=num_classes).train()
    textbook_optimizer = torch.optim.SGD(textbook.parameters(), lr=config.lr, momentum=0.9, weight_decay=1e-4)
    mean = torch.tensor(train.mean).view(1, 3, 1, 1)
    std = torch.tensor(train.std).view(1, 3, 1, 1)
    generator = torch.Generator().manual_seed(0)

    def run_engine() -> float:
        t = time.perf_counter()
        for _ in range(args.steps):
            race.step()
        return time.perf_counter() - t

    def run_bare() -> float:
        t = time.perf_counter()
        for _ in range(args.steps):
            bare_step(model, optimizer, train.images, train.labels, mean, std, generator, args.batch,
                      race.channels_last)
        return time.perf_counter() - t

    def run_textbook() -> float:
        t = time.perf_counter()
        for _ in range(args.steps):
            bare_step(textbook, textbook_optimizer, train.images, train.labels, mean, std, generator, args.batch,
                      False)
        return time.perf_counter() - t

    print(f"load average before: {_load()}", flush=True)
    run_engine(), run_bare(), run_textbook()  # warm-up round (allocator, oneDNN primitives), not timed
    engine_s = bare_s = textbook_s = 0.0
    for _ in range(args.rounds):
        engine_s += run_engine()
        bare_s += run_bare()
        textbook_s += run_textbook()
    images = args.rounds * args.steps * args.batch
    engine_ips, bare_ips, textbook_ips = images / engine_s, images / bare_s, images / textbook_s
    assert racer.status == "running" and "grad_layer1" in race.rows[-1]  # metrics really were on
    print(f"device: {describe_device(race.device)}; {resnet_core.display_name(args.arch)} width {args.width}, "
          f"{args.size} px, batch {args.batch}, {args.rounds} interleaved rounds of {args.steps} steps")
    print(f"engine (all metrics on):          {engine_ips:8.1f} images/s")
    print(f"bare loop (same layout and step): {bare_ips:8.1f} images/s")
    print(f"textbook loop:                    {textbook_ips:8.1f} images/s")
    print(f"ratio engine/bare: {engine_ips / bare_ips:.3f} (target >= 0.99); engine/textbook: "
          f"{engine_ips / textbook_ips:.2f}; load average {_load()}")
    print(f"Shapes: 10,000 images at 32 px generated in {gen_s:.2f} s (target < 2 s)")


if __name__ == "__main__":
    main()
