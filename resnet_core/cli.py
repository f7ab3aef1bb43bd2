"""The console entry points ``resnet-train`` (``python -m resnet_core.train``) and ``resnet-weights``
(``inspect FILE``, ``fetch ARCH [MEMBER]``; ``python -m resnet_core.weights`` is the same); ``resnet-probe`` is in
:mod:`resnet_core.probe_cli`, the floor above.

The top floor of the package: the engine (``train``) races and reports through callbacks, ``runs`` writes
run folders, and this module wires the two together for a terminal (flags, progress bar, signals, exit
codes).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from .data import DATASETS
from .errors import WeightsError
from .models import ARCHITECTURES, display_name
from .runs import ForegroundControls, RunStorageError, RunWriter, registry_for, resume_race
from .settings import network_available, set_memory_budget
from .train import PRESETS, SCHEDULES, Race, RaceConfig, RacerSpec, describe_device, dist_info
from .weights import (
    OfflineWeightsError,
    class_names_for,
    download_torchvision_weights,
    hub_checkpoint_path,
    preprocessing_for,
    torchvision_weights_enum,
)
from .weights.checkpoints import CheckpointMismatch, load_checkpoint_file


# --------------------------------------------------------------------------------------------- resnet-train
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="resnet-train",
        description="Race plain against residual nets headless; writes the same run folders as the app.")
    p.add_argument("--preset", choices=list(PRESETS), help="start from a preset race (other flags override it)")
    p.add_argument("--racer", action="append", metavar="ARCH[:plain]",
                   help="a racer, e.g. resnet56 or resnet56:plain; repeat for 2-4 racers")
    p.add_argument("--dataset", help=f"{', '.join(DATASETS)} or folder:<path>")
    p.add_argument("--image-size", type=int)
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--warmup", type=int, dest="warmup_steps")
    p.add_argument("--schedule", choices=SCHEDULES)
    p.add_argument("--width", type=int)
    p.add_argument("--eval-every", type=int)
    p.add_argument("--n-train", type=int)
    p.add_argument("--n-test", type=int, help="held-out images (evaluation uses up to 1000 of them)")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:1, mps")
    p.add_argument("--threads", type=int,
                   help="CPU threads for this process (default: torch's, one per core); 1 is faster on a busy machine")
    p.add_argument("--checkpoint-every", type=int, metavar="K",
                   help="save every racer's checkpoint every K steps (default 200; 0: only at the end)")
    p.add_argument("--resume", metavar="RUN_ID",
                   help="continue an interrupted or stopped run from its latest checkpoint, with its own settings")
    p.add_argument("--runs-dir", help="where run folders go (default $RESNET_EXPLORER_RUNS or runs/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs one line per eval)")
    p.add_argument("--memory-budget", metavar="SIZE",
                   help="memory one race may use, e.g. 4GB (default $RESNET_EXPLORER_MEMORY_BUDGET or a quarter of "
                        "available memory)")
    return p


_CONFIG_FLAGS = ("preset", "racer", "dataset", "image_size", "steps", "batch_size", "lr", "warmup_steps",
                 "schedule", "width", "eval_every", "n_train", "n_test", "seed", "device", "checkpoint_every")


class _StopRequests:
    """SIGINT/SIGTERM ask the race to stop after the current step (a second SIGINT interrupts at once).

    Installed only in the main thread (Python delivers signals there); the previous handlers come back on
    exit. Under torchrun the ranks agree on the step to stop at (one all-reduce per step)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopRequests:
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: stop now, without a checkpoint
        self.signal = signum

    def requested(self, race: Race) -> bool:
        if not race.dist.enabled:
            return self.signal is not None
        import torch.distributed as dist

        flag = torch.tensor([0.0 if self.signal is None else float(self.signal)], device=race.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item() and self.signal is None:
            self.signal = int(flag.item())
        return bool(flag.item())


def config_from_args(args: argparse.Namespace) -> RaceConfig:
    """A RaceConfig from CLI flags: the preset (or defaults), overridden by each flag given."""
    base = PRESETS[args.preset] if args.preset else None
    if args.racer:
        racers = tuple(RacerSpec.parse(r) for r in args.racer)
    elif base is not None:
        racers = base.racers
    else:
        raise ValueError("Give --preset or at least one --racer (e.g. --racer resnet20:plain --racer resnet20).")
    fields = ("dataset", "image_size", "steps", "batch_size", "lr", "warmup_steps", "schedule", "width",
              "eval_every", "n_train", "n_test", "seed", "device", "checkpoint_every")
    overrides = {f: getattr(args, f) for f in fields if getattr(args, f) is not None}
    if base is None:
        name = " vs ".join(r.label for r in racers)
        return RaceConfig(racers=racers, name=name, **overrides)
    name = base.name if not args.racer else " vs ".join(r.label for r in racers)
    return replace(base, racers=racers, name=name, **overrides)


def train_main(argv: Sequence[str] | None = None) -> int:
    """``resnet-train``: run a race headless with a progress bar; rank 0 writes the run folder.

    Exit codes: 0 done; 2 bad input (one sentence); 1 the runs folder cannot be written (one sentence);
    130 (143) stopped by Ctrl-C (SIGTERM) after the current step, with a checkpoint and the resume command."""
    args = _parser().parse_args(argv)
    if args.threads is not None:
        # A CLI process owns its thread pool (the app never sets it: its pool is shared by every session).
        torch.set_num_threads(max(1, args.threads))
    main_rank = dist_info().is_main
    with contextlib.ExitStack() as slot:  # the runs folder's one race slot, held by rank 0 until the end
        return _train(args, main_rank, slot)


def with_folder(error: BaseException) -> str:
    """The library's sentence, plus the server folder it leaves out for visitors: the operator needs it here."""
    folder = getattr(error, "folder", None) or (error.path.parent if isinstance(error, OfflineWeightsError) else None)
    return f"{error} (folder: {folder})" if folder else str(error)


def _train(args: argparse.Namespace, main_rank: bool, slot: contextlib.ExitStack) -> int:
    try:
        race, writer = _start(args, main_rank, slot)
    except RunStorageError as exc:
        print(f"resnet-train: {_storage_sentence(exc, None, args)}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"resnet-train: {with_folder(exc)}", file=sys.stderr)
        return 2
    bar = None
    if main_rank and not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=race.config.steps, initial=race.step_index, desc=race.config.name, unit="step",
                   file=sys.stderr)
    stops = _StopRequests()
    try:
        stopped = _race(race, writer, bar, stops, main_rank)
    except RunStorageError as exc:
        if bar is not None:
            bar.close()
        print(f"resnet-train: {_storage_sentence(exc, writer, args)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        if main_rank:
            saved = writer.checkpoint_step if writer is not None else None
            where = (f"the last checkpoint is from step {saved}; resume with: {_resume_command(writer, args)}"
                     if saved is not None else "no checkpoint was saved")
            print(f"resnet-train: interrupted again at step {race.step_index}, without saving; {where}",
                  file=sys.stderr)
        return 130
    _report(race, writer, stopped, args)
    if race.dist.enabled:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    if stopped:
        return 128 + (stops.signal or signal.SIGINT)
    return 0


def _start(args: argparse.Namespace, main_rank: bool, slot: contextlib.ExitStack
           ) -> tuple[Race, RunWriter | None]:
    """The race the flags ask for (or the run ``--resume`` names) and, on rank 0, the writer of its folder; rank
    0 takes the runs folder's race slot first (RaceBusy, a ValueError, while the app or another process trains)."""
    if args.memory_budget is not None:
        set_memory_budget(args.memory_budget)
    if args.resume:
        given = [f"--{'warmup' if f == 'warmup_steps' else f.replace('_', '-')}" for f in _CONFIG_FLAGS
                 if getattr(args, f) not in (None, [])]
        if given:
            raise ValueError(f"--resume continues a run with its own settings; drop {', '.join(given)}.")
        name_run = slot.enter_context(registry_for(args.runs_dir).holding(args.resume, "cli")) if main_rank \
            else None
        race, writer = resume_race(args.resume, args.runs_dir, write=main_rank)
        if name_run is not None and writer is not None:
            name_run(writer.run_id)
        return race, writer
    config = config_from_args(args)
    race = Race(config)
    writer = None
    if main_rank:
        name_run = slot.enter_context(registry_for(args.runs_dir).holding(config.name, "cli"))
        writer = RunWriter.create(config, runs_dir=args.runs_dir, source="cli")
        name_run(writer.run_id)
        writer.write_config(describe_device(race.device), race.dist.world_size)
    return race, writer


def _race(race: Race, writer: RunWriter | None, bar: Any, stops: _StopRequests, main_rank: bool) -> bool:
    """Race.train's loop, the writer attached as its callback (rows, evaluations, periodic checkpoints);
    True when a stop request ended it early (the run is then saved as stopped, with a held-out score)."""
    reported: set[str] = set()

    def on_step(r: Race, rows: list[dict[str, Any]], evals: list[dict[str, Any]]) -> None:
        if writer is not None:
            writer.append(rows)
            writer.append(evals, kind="eval")  # what evaluate() returned: no row for a racer that diverged
            if r.checkpoint_due():
                writer.save_checkpoints(r)
        if bar is not None:
            bar.update(1)
            bar.set_postfix({row["racer"]: f"{row['loss']:.3f}" for row in rows})
        elif main_rank and r.eval_due():
            losses = ", ".join(f"{row['racer']} {row['loss']:.3f}" for row in rows)
            print(f"step {r.step_index}/{r.config.steps}: {losses}", file=sys.stderr)
        for message in (m for m in r.messages if m not in reported):
            reported.add(message)
            if main_rank:
                print(message, file=sys.stderr)

    controls = ForegroundControls(writer, race) if writer is not None else None
    with stops:
        while not race.done:  # Race.train's loop, keeping the rows each evaluate() returns
            if controls is not None and not controls.may_step():
                stops.signal = stops.signal or signal.SIGTERM
                break  # stopped from another process while paused
            rows = race.step()
            on_step(race, rows, race.evaluate() if race.eval_due() else [])
            if controls is not None and controls.stop:  # the page's Stop counts as a SIGTERM, on every rank
                stops.signal = stops.signal or signal.SIGTERM
            if stops.requested(race):
                break
        if bar is not None:
            bar.close()
        stopped = not race.done
        if stopped:
            scored = bool(race.eval_rows) and race.eval_rows[-1]["step"] == race.step_index
            evals = race.evaluate() if not scored else []  # a stopped race still gets a held-out score
            if writer is not None:
                writer.append(evals, kind="eval")
            race.stop()
        if writer is not None:
            writer.finish(race, "stopped" if stopped else "finished")
    return stopped


def _report(race: Race, writer: RunWriter | None, stopped: bool, args: argparse.Namespace) -> None:
    """The summary table and where the run folder is (rank 0 only: the others have no writer)."""
    if writer is None:
        return
    summary = race.summary()
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if stopped:
        print(f"Stopped at step {race.step_index}; checkpoint saved in {writer.path}; resume with: "
              f"{_resume_command(writer, args)}", file=sys.stderr)
    else:
        print(f"wall time {race.wall:.1f} s on {describe_device(race.device)}; run folder: {writer.path}")


def _resume_command(writer: Any, args: argparse.Namespace) -> str:
    runs = f" --runs-dir {args.runs_dir}" if args.runs_dir else ""
    return f"resnet-train --resume {writer.run_id}{runs}"


def _storage_sentence(exc: Any, writer: Any, args: argparse.Namespace) -> str:
    """The CLI's one line for a runs folder that cannot be written (nothing stays in memory after exit)."""
    text = (f"Cannot write to the runs folder {exc.folder} ({exc.reason}): free space, or pass --runs-dir or set "
            f"RESNET_EXPLORER_RUNS to a writable folder")
    step = writer.checkpoint_step if writer is not None else None
    if step is not None:
        return f"{text}; the checkpoint of step {step} is kept: resume with {_resume_command(writer, args)}."
    return f"{text}; nothing of this run was saved."


# ------------------------------------------------------------------------- resnet-weights (python -m resnet_core.weights)
_WEIGHTS_COMMANDS = ("inspect", "fetch")


def _weights_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="resnet-weights",
        description="Checkpoints and torchvision weights: what a file holds, and fetching weights into the cache.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{inspect,fetch}")
    inspect = sub.add_parser("inspect", help="read a checkpoint safely and say what loads, what was renamed and "
                                             "what was inferred")
    inspect.add_argument("checkpoint", help="a checkpoint file (.pt .pth .th .tar .ckpt .bin .safetensors, or any "
                                            "suffix: read by its content, torch.load with weights_only=True)")
    fetch = sub.add_parser("fetch", help="download torchvision's ImageNet weights into torch.hub's cache")
    fetch.add_argument("arch", help="a torchvision architecture, e.g. resnet50")
    fetch.add_argument("member", nargs="?", help="the weights, e.g. IMAGENET1K_V2 (default: torchvision's DEFAULT)")
    return p


def weights_main(argv: Sequence[str] | None = None) -> int:
    """``resnet-weights inspect FILE`` / ``resnet-weights fetch ARCH [MEMBER]`` (``python -m
    resnet_core.weights`` is the same; a bare ``FILE`` means ``inspect FILE``). Exit codes: 0 done, 1 the file
    or the download failed (one sentence), 2 bad arguments."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] not in (*_WEIGHTS_COMMANDS, "-h", "--help"):
        args_list = ["inspect", *args_list]  # the old form: python -m resnet_core.weights FILE
    args = _weights_parser().parse_args(args_list)
    if args.command == "fetch":
        return _fetch(args.arch, args.member)
    return _inspect(Path(args.checkpoint))


def _inspect(path: Path) -> int:
    """Print the architecture, size, classes and preprocessing of a checkpoint, then one line per note."""
    try:
        model = load_checkpoint_file(path)
    except CheckpointMismatch as exc:
        print(exc)
        print(exc.table().to_string(index=False))
        return 1
    except WeightsError as exc:
        print(exc)
        return 1
    print(f"{model.arch_label}: {sum(p.numel() for p in model.parameters()):,} parameters, "
          f"{len(class_names_for(model))} classes, preprocessing {preprocessing_for(model).describe()}")
    arch = model.card.arch
    if arch and arch != "custom":
        print(f"architecture: {arch}{''.join(f' {k}={v}' for k, v in model.card.arch_options.items())}")
    for note in model.weights_notes:
        print(f"note: {note}")
    return 0


def _fetch(arch: str, member: str | None) -> int:
    """Download torchvision's weights for ``arch`` into torch.hub's cache with a progress bar on stderr."""
    enum = torchvision_weights_enum(arch)
    if enum is None:
        names = ", ".join(n for n in ARCHITECTURES if torchvision_weights_enum(n) is not None)
        print(f"resnet-weights: torchvision has no weights for '{arch}'; choose one of {names}.", file=sys.stderr)
        return 2
    try:
        member = member or enum.DEFAULT.name
        path = hub_checkpoint_path(arch, member)
    except WeightsError as exc:
        print(f"resnet-weights: {exc}", file=sys.stderr)
        return 2
    if path.exists():
        print(f"{display_name(arch)} {member}: already in the cache, {path}")
        return 0
    url = enum[member].url
    if not network_available(urlparse(url).hostname or ""):
        print(f"resnet-weights: cannot download the {display_name(arch)} {member} weights (no network): download "
              f"{url} and save it as {path.name} in {path.parent}.", file=sys.stderr)
        return 1
    from tqdm import tqdm

    with tqdm(desc=f"{display_name(arch)} {member}", unit="B", unit_scale=True, file=sys.stderr) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total or None
            bar.update(done - bar.n)

        try:
            download_torchvision_weights(arch, member, on_progress=progress)
        except (WeightsError, OSError) as exc:
            bar.close()
            print(f"resnet-weights: downloading the {display_name(arch)} {member} weights failed ({exc}); try "
                  f"again, or download {url} and save it as {path.name} in {path.parent}.", file=sys.stderr)
            return 1
    print(f"{display_name(arch)} {member}: saved to {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``resnet-train``'s entry point (the console script), the same as :func:`train_main`."""
    return train_main(argv)


__all__ = ["config_from_args", "main", "train_main", "weights_main", "with_folder"]

if __name__ == "__main__":
    raise SystemExit(train_main())
