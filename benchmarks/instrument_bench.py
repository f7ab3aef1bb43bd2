"""What bench_landscape.py and bench_lesion.py share: the model and batch flags, the seeded model and batch, and
the candidate timed between the two halves of its bare-forward baseline (so a change in machine load hits both
alike; this process's CPU time is reported beside the wall time, as it is far less disturbed by other work on a
shared machine). Not a benchmark itself (``make bench`` runs ``bench_*.py``)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from resnet_core import build


def parser(doc: str, *, batch: int = 256) -> argparse.ArgumentParser:
    """The flags every instrument benchmark takes: --arch, --width, --batch, --size."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--arch", default="resnet56")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--batch", type=int, default=batch)
    p.add_argument("--size", type=int, default=32)
    return p


def model_and_batch(args: argparse.Namespace, *, residual: bool = True) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The seeded model in eval mode (warmed up by one forward) and a seeded batch of random images and labels."""
    model = build(args.arch, seed=0, width=args.width, residual=residual).eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=gen)
    y = torch.randint(0, 10, (args.batch,), generator=gen)
    with torch.no_grad():
        model(x)  # warm-up
    return model, x, y


def against_bare(model: nn.Module, x: torch.Tensor, passes: int, candidate: Callable[[], Any]
                 ) -> tuple[Any, float, float, float, float]:
    """(candidate's result, its wall s, its CPU s, the wall s and CPU s of ``passes`` bare no-grad forwards of
    ``x``), the candidate run between the two halves of the baseline."""
    def bare(forwards: int) -> tuple[float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        with torch.no_grad():
            for _ in range(forwards):
                model(x)
        return time.perf_counter() - start, time.process_time() - cpu

    first = bare(passes // 2)
    start, cpu = time.perf_counter(), time.process_time()
    result = candidate()
    cand, cand_cpu = time.perf_counter() - start, time.process_time() - cpu
    second = bare(passes - passes // 2)
    return result, cand, cand_cpu, first[0] + second[0], first[1] + second[1]
