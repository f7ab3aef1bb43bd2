"""``resnet-probe``: the loss landscape (Li et al. 2018) and the lesion study (Veit et al. 2016) of a trained
checkpoint from the command line (``landscape CHECKPOINT``, ``lesion CHECKPOINT``; ``python -m
resnet_core.landscape|lesion`` are the same). Each writes its table as CSV and prints a short version; every
library error is one sentence on stderr and exit code 2. The landscape splits its grid over processes with
``--nproc N`` or, under torchrun, ``--distributed``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .cli import with_folder
from .settings import set_memory_budget

# ------------------------------------------------ resnet-probe (python -m resnet_core.landscape / .lesion)
_PROBE_COMMANDS = ("landscape", "lesion")


def _model_arguments(p: argparse.ArgumentParser, split: str, batch: int) -> None:
    """The arguments both instruments share: the model, its images, the output file, the memory budget."""
    p.add_argument("checkpoint", help="a checkpoint file (a run's <racer>.pt, an upload, any loadable checkpoint) or "
                                      "an embedded demo, demo:resnet20 or demo:plain20")
    p.add_argument("--dataset", help="the images to measure on (shapes, cifar10, mnist, fashion_mnist or "
                                     "folder:<path>; default: the data set the checkpoint was trained on)")
    p.add_argument("--split", choices=("train", "test"), default=split, help=f"default {split}")
    p.add_argument("--batch", type=int, default=batch, help=f"images in the fixed batch (default {batch})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="the CSV file to write (default <checkpoint name>-<instrument>.csv here)")
    p.add_argument("--memory-budget", metavar="SIZE", help="memory the instrument may use, e.g. 4GB")


def _landscape_arguments(p: argparse.ArgumentParser) -> None:
    _model_arguments(p, "train", 128)
    p.add_argument("--steps", type=int, default=21, help="grid points per side (default 21)")
    p.add_argument("--span", type=float, default=1.0, help="the grid runs from -span to span (default 1.0)")
    p.add_argument("--line", action="store_true", help="the 1-D slice instead of the 2-D surface")
    p.add_argument("--to", help="a second checkpoint of the same net: the straight line from the first to it")
    p.add_argument("--distributed", action="store_true",
                   help="split the grid over the processes torchrun starts (gloo on the CPU, NCCL on GPUs): "
                        "torchrun --nproc-per-node N -m resnet_core.landscape CHECKPOINT ... --distributed")
    p.add_argument("--nproc", type=int, metavar="N",
                   help="start N processes with torchrun's launcher (in this process) and split the grid over them")


def _lesion_arguments(p: argparse.ArgumentParser) -> None:
    _model_arguments(p, "test", 256)
    p.add_argument("--curve", action="store_true", help="k random removable blocks removed together, k = 1..max")
    p.add_argument("--max-removed", type=int, default=5)
    p.add_argument("--samples", type=int, default=8, help="sets of blocks per k for --curve (default 8)")


def _probe_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="resnet-probe", allow_abbrev=False,
        description="The loss landscape (Li et al. 2018) and the lesion study (Veit et al. 2016) of a trained "
                    "checkpoint: writes the table as CSV and prints a short version.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{landscape,lesion}")
    _landscape_arguments(sub.add_parser("landscape", allow_abbrev=False, help="the loss on a grid around the weights (or a line)"))
    _lesion_arguments(sub.add_parser("lesion", allow_abbrev=False, help="each block removed in turn (or k blocks together: --curve)"))
    return p


def _significant(value: float) -> str:
    return f"{value:.3g}"


def _every(values: Sequence[Any], most: int) -> list[Any]:
    """At most ``most`` evenly spaced items of ``values``, the first and the last among them."""
    values = list(values)
    if len(values) <= most:
        return values
    step = (len(values) - 1) / (most - 1)
    return [values[round(i * step)] for i in range(most)]


def write_table(table: Any, out: str | Path, short: Any, heading: str) -> Path:
    """The probes' one output: ``table`` (a DataFrame) written as CSV to ``out``, then ``heading``, the short
    table ``short`` and where the CSV went printed on stdout. Returns the written path."""
    path = Path(out)
    table.to_csv(path, index=False)
    print(heading)
    print(short.to_string(index=False))
    print(f"wrote {len(table)} rows to {path}")
    return path


def _open(source: str) -> Any:
    from .lesson import open_trained

    return open_trained(source)


def _probe_model(args: argparse.Namespace) -> tuple[Any, Any, Any, str]:
    """The model, its fixed batch and the data set's name, after the memory budget is set."""
    from .lesson import data_for, model_batch

    if args.memory_budget is not None:
        set_memory_budget(args.memory_budget)
    model = _open(args.checkpoint)
    dataset = data_for(model, args.dataset)
    x, y = model_batch(model, dataset, args.split, args.batch, download=None)
    return model, x, y, dataset


def _default_out(args: argparse.Namespace, instrument: str) -> str:
    return args.out or f"{Path(args.checkpoint.replace(':', '-')).stem}-{instrument}.csv"


def _landscape(args: argparse.Namespace) -> int:
    from .landscape import join_ranks, launch_ranks, leave_ranks, line, surface

    if (args.nproc is not None or args.distributed) and (args.to or args.line):
        raise ValueError("--nproc and --distributed split the 2-D surface; a line has too few points to share.")
    if args.nproc is not None:
        if args.distributed or "RANK" in os.environ:
            raise ValueError("--nproc starts the ranks itself: leave out --distributed, and do not run it under "
                             "torchrun.")
        _probe_model(args)  # the checkpoint, its data and the budget checked once, before any rank starts
        return launch_ranks(args.nproc, args.argv)
    device = join_ranks() if args.distributed else None
    try:
        return _landscape_here(args, device, line, surface)
    finally:
        if device is not None:
            leave_ranks()


def _landscape_here(args: argparse.Namespace, device: Any, line: Any, surface: Any) -> int:
    model, x, y, dataset = _probe_model(args)
    main_rank = device is None or int(os.environ.get("RANK", "0")) == 0
    if device is not None:
        model, x, y = model.to(device), x.to(device), y.to(device)

    def report(done: int, total: int) -> None:
        if main_rank:
            print(f"\r{done}/{total} points", end="", file=sys.stderr, flush=True)

    label = model.card.label or "the model"
    where = f"{label}, {x.shape[0]} {args.split} images of {dataset} ({x.shape[-1]} px), seed {args.seed}"
    if args.to or args.line:
        other = _open(args.to) if args.to else None
        table = line(model, x, y, steps=args.steps, span=args.span, seed=args.seed, to=other, on_progress=report)
        print(file=sys.stderr)
        short = table.loc[_every(table.index, 11)].copy()
        heading = (f"{'Straight line to ' + args.to if other is not None else 'Loss along one random direction'}"
                   f" ({where}):")
        short = short.assign(loss=short["loss"].map(_significant), accuracy=short["accuracy"].map("{:.1%}".format),
                             alpha=short["alpha"].map("{:g}".format))
    else:
        table = surface(model, x, y, steps=args.steps, span=args.span, seed=args.seed, on_progress=report,
                        distributed=device is not None)
        if not main_rank:
            return 0  # rank 0 writes the one table
        print(file=sys.stderr)
        if device is not None:
            where += f"; {int(os.environ['WORLD_SIZE'])} processes"
        grid = table.pivot(index="beta", columns="alpha", values="loss")
        short = grid.loc[_every(grid.index, 11), _every(grid.columns, 11)].map(_significant)
        short.columns = [f"{v:g}" for v in short.columns]
        short.insert(0, "beta \\ alpha", [f"{v:g}" for v in short.index])
        origin = table[(table["alpha"] == 0) & (table["beta"] == 0)]
        at = f"; at the weights {float(origin['loss'].iloc[0]):.4g}" if not origin.empty else ""
        heading = (f"Loss on a {args.steps} x {args.steps} grid ({where}): {table['loss'].min():.4g} to "
                   f"{table['loss'].max():.4g}{at}")
    write_table(table, _default_out(args, "line" if args.to or args.line else "landscape"), short, heading)
    return 0


def _lesion(args: argparse.Namespace) -> int:
    from .lesion import lesion_curve, lesion_study

    model, x, y, dataset = _probe_model(args)
    label = model.card.label or "the model"
    where = f"{label}, {x.shape[0]} {args.split} images of {dataset} ({x.shape[-1]} px)"
    if args.curve:
        table = lesion_curve(model, x, y, max_removed=args.max_removed, samples=args.samples, seed=args.seed)
        short = table.groupby("removed").agg(sets=("sample", "count"), mean=("accuracy", "mean"),
                                             low=("accuracy", "min"), high=("accuracy", "max"))
        for column in ("mean", "low", "high"):
            short[column] = short[column].map("{:.1%}".format)
        short = short.reset_index()
        heading = (f"Accuracy with k random blocks removed ({where}; {table['full_accuracy'].iloc[0]:.1%} with "
                   "every block):")
    else:
        table = lesion_study(model, x, y)
        short = table[["block", "removable", "accuracy", "accuracy_drop", "agreement"]].copy()
        for column in ("accuracy", "accuracy_drop", "agreement"):
            short[column] = short[column].map(lambda v: "-" if v != v else f"{v:.1%}")
        short["removable"] = short["removable"].map({True: "yes", False: "no (changes the shape)"})
        heading = (f"Each block removed in turn ({where}; {table['full_accuracy'].iloc[0]:.1%} with every block, "
                   f"chance {1 / max(1, int(model.fc.out_features)):.0%}):")
    write_table(table, _default_out(args, "lesion-curve" if args.curve else "lesion"), short, heading)
    return 0


def _probe(command: str, args: argparse.Namespace, prog: str) -> int:
    """Run one instrument; every library error is one sentence on stderr and exit code 2."""
    try:
        return _landscape(args) if command == "landscape" else _lesion(args)
    except (ValueError, OSError) as error:
        print(f"{prog}: {with_folder(error)}", file=sys.stderr)
        return 2


def probe_main(argv: Sequence[str] | None = None) -> int:
    """``resnet-probe landscape CHECKPOINT [--steps 21] [--line | --to OTHER] [--nproc N | --distributed]`` and
    ``resnet-probe lesion CHECKPOINT [--curve]``: write the instrument's table as CSV (``--out``) and print a
    short version. Exit codes: 0 done; 2 bad input (one sentence: the file, the data set, the memory budget)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _probe_parser().parse_args(argv)
    args.argv = argv[argv.index(args.command) + 1:] if args.command in argv else []
    return _probe(args.command, args, "resnet-probe")


def landscape_main(argv: Sequence[str] | None = None, prog: str = "python -m resnet_core.landscape") -> int:
    """``python -m resnet_core.landscape CHECKPOINT ...``: the same as ``resnet-probe landscape``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # No abbreviated flags: --nproc must never reach the ranks under another spelling (see launch_ranks).
    p = argparse.ArgumentParser(prog=prog, allow_abbrev=False,
                                description="The loss landscape of a trained checkpoint (Li et al. 2018).")
    _landscape_arguments(p)
    args = p.parse_args(argv)
    args.argv = argv
    return _probe("landscape", args, prog)


def lesion_main(argv: Sequence[str] | None = None, prog: str = "python -m resnet_core.lesion") -> int:
    """``python -m resnet_core.lesion CHECKPOINT ...``: the same as ``resnet-probe lesion``."""
    p = argparse.ArgumentParser(prog=prog, allow_abbrev=False,
                                description="The lesion study of a trained checkpoint (Veit et al. 2016).")
    _lesion_arguments(p)
    return _probe("lesion", p.parse_args(argv), prog)


__all__ = ["landscape_main", "lesion_main", "probe_main", "write_table"]
