"""The computations behind the "Why residuals work" lesson: every number the lesson shows comes from here.

Small CIFAR nets (width 8-16, 32x32 inputs) keep each step well under a second on a laptop CPU. Models are
built privately here (never a shared cached model), and hooks come off in ``finally``.
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from ..hooks import preserved_state, taps
from ..job_queue import side_by_side
from ..models import build, display_name, iter_blocks
from .store import fetch_or_measure, has_entry, plain_settings, tensor_digests, weights_digest

# What the paper reported (He et al. 2015, Table 2: ImageNet top-1 error, %, 10-crop testing). Quoted, not
# measured here; the lesson labels it as the paper's.
PAPER_TABLE2_TOP1 = pd.DataFrame([
    {"depth": 18, "plain": 27.94, "resnet": 27.88},
    {"depth": 34, "plain": 28.54, "resnet": 25.03},
])
PAPER_CITATION = "He et al. 2015, Deep Residual Learning for Image Recognition, Table 2 (ImageNet val, 10-crop)"


def seeded_batch(n: int, image_size: int, seed: int) -> torch.Tensor:
    """A seeded batch of standard-normal images, (n, 3, image_size, image_size)."""
    return torch.randn(n, 3, image_size, image_size, generator=torch.Generator().manual_seed(seed))


def _block_io(model: nn.Module, block_name: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The input and output of one block during an eval-mode forward pass of ``model`` on ``x``."""
    with taps(model, train=False) as tapped, torch.no_grad():
        seen_in = tapped.record(block_name, what="input")
        seen_out = tapped.record(block_name)
        model(x)
    return seen_in[block_name], seen_out[block_name]


def identity_check(
    arch: str = "resnet20", block: str = "layer2.1", *, width: int = 16, batch: int = 8, seed: int = 0
) -> pd.DataFrame:
    """Can one block be the identity? Four versions of the same block, all fed the same real input x.

    x is what ``block`` receives in the standard residual net's own forward pass on a seeded batch. The
    versions: residual or plain (``residual=False``), with the branch's last BN scale at zero
    (``zero_init_residual=True``; set by hand for the plain twin, where the option does nothing) or the
    standard init. With option A both nets built from one seed hold identical weights, so only the shortcut
    differs. Columns: variant, residual, zero_init, max_abs_diff (max |y - x|), max_abs_input (max |x|),
    relative_diff (||y - x|| / ||x||).
    """
    x_in, _ = _block_io(build(arch, seed=seed, width=width), block, seeded_batch(batch, 32, seed))
    rows = []
    for residual in (True, False):
        for zero_init in (True, False):
            model = build(arch, seed=seed, residual=residual, width=width, zero_init_residual=zero_init)
            blk = dict(iter_blocks(model))[block]
            if zero_init and not residual:
                with torch.no_grad():  # the same zeroing the option applies to residual blocks
                    blk.last_bn().weight.zero_()
            with preserved_state(model, train=False), torch.no_grad():
                out = blk(x_in)
            rows.append({
                "variant": f"{'residual' if residual else 'plain'} block, "
                           f"{'last BN at zero' if zero_init else 'standard init'}",
                "residual": residual,
                "zero_init": zero_init,
                "max_abs_diff": float((out - x_in).abs().max()),
                "max_abs_input": float(x_in.abs().max()),
                "relative_diff": float(torch.linalg.vector_norm(out - x_in) / torch.linalg.vector_norm(x_in)),
            })
    return pd.DataFrame(rows)


def gradient_split(
    arch: str = "resnet20", *, width: int = 16, batch: int = 16, seed: int = 0, zero_init_residual: bool = False
) -> pd.DataFrame:
    """Per block, the input gradient through the shortcut vs through the branch (``probes.path_gradients``).

    A freshly built net (``seed``) in train mode on a seeded batch of normal images with random labels and the
    cross-entropy loss. One row per block; see ``probes.path_gradients`` for the columns (shortcut_norm,
    branch_norm, total_norm, shortcut_share + branch_share == 1, sum_error).
    """
    from ..probes import path_gradients
    from ..targets import LossTarget

    model = build(arch, seed=seed, width=width, zero_init_residual=zero_init_residual)
    x = seeded_batch(batch, 32, seed)
    labels = torch.randint(0, model.fc.out_features, (batch,), generator=torch.Generator().manual_seed(seed + 1))
    return path_gradients(model, x, LossTarget(labels), train=True)


def depth_ratios(
    depths: tuple[int, ...] = (20, 32, 44, 56), *, width: int = 8, batch: int = 32, seed: int = 0
) -> pd.DataFrame:
    """First-block / last-block input-gradient norm ratio at initialisation, plain vs residual, per depth.

    ``probes.depth_sweep`` on the CIFAR family (train-mode BN, seeded batch, cross-entropy on random labels),
    plus ``plain_over_residual``: how many times larger the plain net's ratio is at the same depth.
    """
    from ..probes import depth_sweep

    sweep = depth_sweep(depths, family="cifar", batch=batch, width=width, seed=seed)
    residual = sweep[sweep["residual"]].set_index("depth")["ratio"]
    sweep["plain_over_residual"] = [r / residual[d] for d, r in zip(sweep["depth"], sweep["ratio"], strict=True)]
    return sweep


def unrolled_paths(n_blocks: int) -> pd.DataFrame:
    """Veit et al. 2016: n residual blocks unroll into 2^n paths; a path's length (blocks whose branch it takes)
    is Binomial(n, 1/2). Columns: length, paths (C(n, k)), share (of all 2^n paths). Exact integers."""
    if not 0 <= n_blocks <= 1000:
        raise ValueError(f"n_blocks must be between 0 and 1000, got {n_blocks}.")
    total = 2**n_blocks
    rows = [{"length": k, "paths": math.comb(n_blocks, k), "share": math.comb(n_blocks, k) / total}
            for k in range(n_blocks + 1)]
    return pd.DataFrame(rows)


def path_summary(n_blocks: int) -> dict[str, Any]:
    """Headline numbers of the unrolled view: total paths, mean and std of the path length, the share of paths
    within one standard deviation of the mean, and the single longest path's share."""
    table = unrolled_paths(n_blocks)
    mean = float((table["length"] * table["share"]).sum())
    std = math.sqrt(float(((table["length"] - mean) ** 2 * table["share"]).sum()))
    near = table[(table["length"] - mean).abs() <= std]["share"].sum()
    return {"blocks": n_blocks, "paths": 2**n_blocks, "mean_length": mean, "std_length": std,
            "share_within_1std": float(near), "longest_share": float(table["share"].iloc[-1])}


def blocks_of(arch: str) -> int:
    """How many residual blocks ``arch`` has (counted on the meta device)."""
    with torch.device("meta"):
        return len(iter_blocks(build(arch)))


def label(arch: str, residual: bool = True) -> str:
    return display_name(arch, residual)


# ----------------------------------------------------------------------------------- steps 1, 6, 7 and 8
# The lesson's trained nets come from ordinary runs (listed on the Training page, loadable on every page).
# Step 1 draws the newest finished preset race (the quartet first: its two plain depths can show degradation).
# Steps 6-8 need a Plain-20 and a ResNet-20 that have both learned: the pair presets' constant lr 0.01 leaves
# Plain-20 at chance for hundreds of steps on Shapes (measured: loss 2.307 at step 200 of 1000), so the lesson
# trains its own pair with a higher peak learning rate, a warm-up and a cosine decay (PAIR_RECIPE).
PAIR_LABELS = ("Plain-20", "ResNet-20")
CURVES_RACE_NAME = "The degradation quartet"
PAIR_RACE_NAME = "Lesson: Plain-20 vs ResNet-20"
PAIR_RECIPE: dict[str, Any] = {"steps": 1500, "lr": 0.05, "warmup_steps": 50, "schedule": "cosine", "batch_size": 64,
                               "width": 8, "image_size": 16}
CURVE_RUN_NAMES = ("The degradation quartet", "Plain-56 vs ResNet-56", "Plain-20 vs ResNet-20")
LEARNED_OVER_CHANCE = 2.0  # a net "has learned" when its held-out accuracy is at least twice chance


@dataclass
class TrainedPair:
    """The lesson's trained plain net and its residual twin, read from a finished run."""

    run_id: str
    models: dict[str, nn.Module]  # label -> model in eval mode, plain first
    accuracy: dict[str, float]  # label -> held-out accuracy from the run's summary (NaN: not evaluated)
    image_size: int
    classes: int
    accuracy_images: int  # the held-out images the accuracy was measured on
    # What steps 6-7 measured on this pair, by step, batch and settings (see ``remember``).
    measured: dict[tuple, Any] = field(default_factory=dict, repr=False, compare=False)
    _measuring: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _digesting: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _weights: str | None = field(default=None, init=False, repr=False, compare=False)  # weights_digest, once

    def remember(self, step: str, compute: Callable[[], Any], tensors: tuple[torch.Tensor, ...],
                 **settings: Any) -> Any:
        """``compute()``'s result for this step on these tensors and settings, measured once per machine.

        In memory, once per pair object: the demo pair is package data, one object per process
        (:func:`load_pair`), shared by every session and notebook of the process whatever happens to a page's
        cache. On disk (:mod:`.store`), once per nets, inputs, settings and measuring code: the next process,
        replica or restart reads the numbers instead of measuring them again. ``step`` names the computation
        (two computations must never share a name); settings other than strings, numbers and booleans keep the
        result in memory only."""
        key = self._key(step, tensors, settings)
        with self._measuring:  # a second caller waits for the first one's measurement
            if key not in self.measured:
                self.measured[key] = (fetch_or_measure((self._weights_digest(), *key), compute)
                                      if plain_settings(settings) else compute())
            return copy.deepcopy(self.measured[key])  # a caller may change what it gets; the record stays

    def kept(self, step: str, tensors: tuple[torch.Tensor, ...], **settings: Any) -> bool:
        """Whether :meth:`remember` would answer without measuring: remembered by this object, or kept on disk.
        Never waits for a measurement in progress (a page asks this before it shows the step)."""
        key = self._key(step, tensors, settings)
        if key in self.measured:  # a dict lookup, atomic: no need for the lock a measurement holds
            return True
        return plain_settings(settings) and has_entry((self._weights_digest(), *key))

    @staticmethod
    def _key(step: str, tensors: tuple[torch.Tensor, ...], settings: dict[str, Any]) -> tuple:
        return step, tensor_digests(tensors), tuple(sorted(settings.items()))

    def _weights_digest(self) -> str:
        with self._digesting:
            if self._weights is None:
                self._weights = weights_digest(self.models)
            return self._weights

    @property
    def chance(self) -> float:
        return 1.0 / self.classes

    @property
    def accuracy_sample(self) -> str:
        """Names the accuracy's sample, e.g. "2,000 held-out Shapes images"."""
        return f"{self.accuracy_images:,} held-out Shapes images"

    def learned(self, label: str) -> bool:
        """Held-out accuracy at least LEARNED_OVER_CHANCE times chance (a net at chance has nothing to lose)."""
        value = self.accuracy.get(label, float("nan"))
        return math.isfinite(value) and value >= LEARNED_OVER_CHANCE * self.chance


def _finished_runs(runs_dir: str | Path | None) -> pd.DataFrame:
    from ..runs import list_runs

    runs = list_runs(runs_dir)
    if runs.empty:
        return runs
    return runs[(runs["status"] == "finished") & (runs["dataset"] == "shapes")]


def find_pair_run(runs_dir: str | Path | None = None, *, learned_only: bool = False) -> str | None:
    """The finished Shapes run with final checkpoints of Plain-20 and ResNet-20 to use: the newest in which both
    learned (held-out accuracy at least twice chance), else (unless ``learned_only``) the newest; None when
    there is none."""
    from ..runs import load_run

    runs = _finished_runs(runs_dir)
    fallback = None
    for run_id, racers in zip(runs.get("run_id", []), runs.get("racers", []), strict=True):
        if not set(PAIR_LABELS) <= set(str(racers).split(", ")):
            continue
        try:
            record = load_run(run_id, runs_dir)
        except ValueError:
            continue  # a damaged run never hides the others
        if not set(PAIR_LABELS) <= {c.get("label") for c in record.checkpoints}:
            continue
        fallback = fallback or run_id
        summary = record.summary.drop_duplicates("racer").set_index("racer")
        chance = 1.0 / len(_shapes_classes())
        if "test_acc" in summary and all(
                float(summary["test_acc"].get(label, float("nan"))) >= LEARNED_OVER_CHANCE * chance
                for label in PAIR_LABELS):
            return run_id
    return None if learned_only else fallback


DEMO_PAIR = "demo"  # the pair id of the embedded demo models (resnet_core.weights.demo: demo:plain20, demo:resnet20)
_DEMO_KEYS = {"Plain-20": "plain20", "ResNet-20": "resnet20"}


def demo_pair_ready() -> bool:
    """True when the embedded demo models are installed and both learned (held-out accuracy at least twice
    chance, from their metrics file)."""
    try:
        from ..weights.demo import demo_test_accuracy

        return all(demo_test_accuracy(key) >= LEARNED_OVER_CHANCE / len(_shapes_classes())
                   for key in _DEMO_KEYS.values())
    except (ImportError, OSError, ValueError, KeyError, TypeError):
        return False


def choose_pair(runs_dir: str | Path | None = None) -> str | None:
    """Which trained pair steps 6-8 use: a run trained here in which both nets learned, else the embedded demo
    models when they learned, else the newest pair run (the page then warns), else None (train one)."""
    return (find_pair_run(runs_dir, learned_only=True) or (DEMO_PAIR if demo_pair_ready() else None)
            or find_pair_run(runs_dir))


def _shapes_classes() -> tuple[str, ...]:
    from ..data import SHAPES_CLASSES

    return SHAPES_CLASSES


def find_curves_run(runs_dir: str | Path | None = None) -> str | None:
    """The newest finished run of a preset race (the quartet first, then the 56 pair, then the 20 pair)."""
    runs = _finished_runs(runs_dir)
    for name in CURVE_RUN_NAMES:
        mine = runs[runs["name"] == name] if not runs.empty else runs
        if not mine.empty:
            return str(mine["run_id"].iloc[0])
    return None


@lru_cache(maxsize=1)
def _demo_pair() -> TrainedPair:
    """The embedded demo models as the lesson's pair: package data, so one object per process (its models are
    used under their locks like any shared model, and its measurements are remembered on it)."""
    from ..weights.demo import demo_metrics, demo_test_accuracy, load_demo_model

    models = {label: load_demo_model(key) for label, key in _DEMO_KEYS.items()}
    size = int(demo_metrics().get("recipe", {}).get("image_size", 32))
    images = int(demo_metrics()["models"][_DEMO_KEYS["ResNet-20"]]["test_images"])
    return TrainedPair(DEMO_PAIR, models, {label: demo_test_accuracy(key) for label, key in _DEMO_KEYS.items()},
                       size, int(models["ResNet-20"].fc.out_features), images)


def load_pair(run_id: str, runs_dir: str | Path | None = None) -> TrainedPair:
    """The Plain-20 and ResNet-20 of run ``run_id`` (see :func:`find_pair_run`), or of the embedded demo models
    (``DEMO_PAIR``), with their held-out accuracy."""
    from ..runs import load_run
    from ..weights.checkpoints import load_checkpoint_file

    if run_id == DEMO_PAIR:
        return _demo_pair()
    record = load_run(run_id, runs_dir)
    paths = {c.get("label"): c["path"] for c in record.checkpoints}
    missing = [label for label in PAIR_LABELS if label not in paths]
    if missing:
        raise ValueError(f"The run '{run_id}' has no final checkpoint of {', '.join(missing)}; train the "
                         "lesson's race again.")
    summary = record.summary.drop_duplicates("racer").set_index("racer") if not record.summary.empty else None
    accuracy = {}
    for label in PAIR_LABELS:
        value = summary["test_acc"].get(label) if summary is not None and "test_acc" in summary else None
        accuracy[label] = float(value) if value is not None and value == value else float("nan")
    models = {label: load_checkpoint_file(paths[label]) for label in PAIR_LABELS}
    classes = int(models[PAIR_LABELS[1]].fc.out_features)
    config = record.config
    images = min(config.eval_samples, config.n_test) if config.n_test else config.eval_samples
    return TrainedPair(run_id, models, accuracy, config.image_size, classes, images)


def curves_race() -> Any:
    """The race step 1 trains from a cold start: the preset quartet (Plain/ResNet x 20/56)."""
    from ..train import PRESETS

    return PRESETS[CURVES_RACE_NAME]


def pair_race(**overrides: Any) -> Any:
    """The race steps 6-8 train from a cold start: Plain-20 vs ResNet-20 with PAIR_RECIPE (``overrides`` win)."""
    from ..train import RaceConfig, RacerSpec

    settings = {**PAIR_RECIPE, "name": PAIR_RACE_NAME, **overrides}
    return RaceConfig(racers=(RacerSpec("resnet20", residual=False), RacerSpec("resnet20")), **settings)


def estimate_race_seconds(config: Any, *, probe_steps: int = 2) -> float:
    """Seconds ``config`` will take to train here, from measured training steps of each racer (forward, backward,
    SGD step on a batch of random images, after one warm-up step), times the steps, plus the evaluations."""
    import time

    from ..train import pick_device

    device = pick_device(config.device)
    total = 0.0
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(config.batch_size, 3, config.image_size, config.image_size, generator=generator).to(device)
    y = torch.randint(0, 10, (config.batch_size,), generator=generator).to(device)
    for spec in config.racers:
        model = build(spec.arch, seed=0, **spec.build_options(config.width, 10)).to(device).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        times = []
        for _ in range(probe_steps + 1):
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        step = min(times[1:])
        evals = config.steps // config.eval_every
        # An evaluation is a no-grad pass over eval_samples images: about a third of a training step per batch.
        total += step * config.steps + evals * step / 3 * max(1, config.eval_samples // config.batch_size)
    return total


def train_race(config: Any, runs_dir: str | Path | None = None) -> Any:
    """Start ``config`` as an ordinary run (a run folder, listed on the Training page) through the runs folder's
    race registry, and return its :class:`~resnet_core.runs.Job` at once: the race trains on the job's thread, the
    Training page shows it (started by "the lesson") and can pause or stop it.

    Raises :class:`~resnet_core.runs.RaceBusy` (a ValueError, one sentence) while another race trains."""
    from ..runs import registry_for

    return registry_for(runs_dir).start(config, source="lesson")


def wait_for_race(job: Any, on_progress: Callable[[Any], None] | None = None) -> str:
    """Block until the race of ``job`` (from :func:`train_race`) ends; returns its run id when it finished.

    ``on_progress(snapshot)`` about once a second with the job's snapshot (step, steps, elapsed, ETA). Raises
    ValueError (one sentence) when it ended otherwise (stopped, failed)."""
    while not job.wait(timeout=1.0):
        if on_progress is not None:
            on_progress(job.snapshot())
    problem = race_problem(job)
    if problem:
        raise ValueError(problem)
    return str(job.run_id)


def race_problem(race: Any) -> str | None:
    """The sentence for a lesson race (a job, or a run's ``FolderRace``) that ended without finishing (stopped,
    failed, interrupted); None while it trains or once it finished."""
    from ..runs import LIVE_STATUSES

    status = race.status
    if status in LIVE_STATUSES or status == "finished":
        return None
    why = "; ".join(race.snapshot().messages) or "no message"
    return f"The lesson's race ended as '{status}' ({why}); start it again."


def shapes_batch(split: str, n: int, image_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` Shapes images of a split: (normalised images, labels, raw images in [0, 1], object masks)."""
    from ..data import shapes_split

    data = shapes_split(split, n, image_size)
    return data.normalized(), data.labels, data.images, data.masks


def forward_seconds(model: nn.Module, inputs: torch.Tensor) -> float:
    """Measured seconds of one no-grad eval forward of ``inputs`` (the faster of two, after a warm-up) on a
    private copy; what the page multiplies by the passes a computation needs to say how long it will take."""
    import copy
    import time

    from ..hooks import model_lock

    with model_lock(model):
        private = copy.deepcopy(model)
    private.eval()
    times = []
    with torch.no_grad():
        for _ in range(3):
            start = time.perf_counter()
            private(inputs)
            times.append(time.perf_counter() - start)
    return min(times[1:])


def landscape_passes(steps: int) -> int:
    """Forward passes the landscape step needs per net: the surface and its 1-D slice."""
    return steps * steps + steps


def landscape_pair(pair: TrainedPair, inputs: torch.Tensor, targets: torch.Tensor, *, steps: int = 11,
                   span: float = 1.0, seed: int = 0, on_progress: Callable[[int, int], None] | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Step 6: the 2-D surface and the 1-D slice of each net of ``pair`` on the same batch and seed.

    Returns (surfaces, lines), each with ``net`` and ``residual`` columns (``plots.landscape`` draws them)."""
    from ..landscape import line, surface

    total = len(pair.models) * landscape_passes(steps)
    done = [0]
    caller = threading.current_thread()
    counting = threading.Lock()

    def tick(_done: int, _total: int) -> None:
        with counting:
            done[0] += 1
        if on_progress is not None and threading.current_thread() is caller:  # a page's bar: its own thread
            on_progress(done[0], total)

    def one(label: str, model: nn.Module) -> Callable[[], tuple[pd.DataFrame, pd.DataFrame]]:
        def measure() -> tuple[pd.DataFrame, pd.DataFrame]:
            residual = label.startswith("ResNet")
            grid = surface(model, inputs, targets, steps=steps, span=span, seed=seed, on_progress=tick)
            cut = line(model, inputs, targets, steps=steps, span=span, seed=seed, on_progress=tick)
            return grid.assign(net=label, residual=residual), cut.assign(net=label, residual=residual)
        return measure

    def both() -> tuple[pd.DataFrame, pd.DataFrame]:
        # The two nets side by side, one thread each (job_queue.side_by_side): 11.3 -> 9.2 s for the 11 x 11 pair.
        measured = side_by_side([one(label, model) for label, model in pair.models.items()])
        return (pd.concat([grid for grid, _ in measured], ignore_index=True),
                pd.concat([cut for _, cut in measured], ignore_index=True))

    result = pair.remember("landscape", both, (inputs, targets), **_landscape_settings(steps, span, seed))
    if on_progress is not None:
        on_progress(total, total)
    return result


def _landscape_settings(steps: int, span: float, seed: int) -> dict[str, Any]:
    return {"steps": steps, "span": span, "seed": seed}  # the one place step 6's key is spelled


def landscape_kept(pair: TrainedPair, inputs: torch.Tensor, targets: torch.Tensor, *, steps: int = 11,
                   span: float = 1.0, seed: int = 0) -> bool:
    """Whether :func:`landscape_pair` with these arguments is already measured on this machine (remembered, or
    kept on disk: :mod:`.store`), so it shows at once instead of costing its forward passes."""
    return pair.kept("landscape", (inputs, targets), **_landscape_settings(steps, span, seed))


def lesion_passes_of(model: nn.Module, max_removed: int, samples: int) -> int:
    from ..lesion import block_table

    removable = int(block_table(model)["removable"].sum())
    curve = sum(min(samples, math.comb(removable, k)) for k in range(1, min(max_removed, removable) + 1))
    return 2 + removable + curve


def lesion_passes(pair: TrainedPair, max_removed: int, samples: int) -> int:
    """Forward passes the lesion step needs for both nets (studies and curves, each with a full-model pass)."""
    return sum(lesion_passes_of(model, max_removed, samples) for model in pair.models.values())


def lesion_seconds(pair: TrainedPair, max_removed: int, samples: int, *, batch: int, forward_ms: float,
                   timed_batch: int) -> float:
    """About how long the lesion step takes: its passes of ``batch`` images, from one forward pass of
    ``timed_batch`` images that took ``forward_ms`` here."""
    return lesion_passes(pair, max_removed, samples) * forward_ms * batch / timed_batch / 1000


def lesion_pair(pair: TrainedPair, inputs: torch.Tensor, targets: torch.Tensor, *, max_removed: int = 4,
                samples: int = 6, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Step 7: the lesion study and the k-blocks-removed curve of each net of ``pair`` on the same batch.

    Returns (studies, curves), each with ``net`` and ``residual`` columns (``plots.lesion`` draws them)."""
    from ..lesion import lesion_curve, lesion_study

    def one(label: str, model: nn.Module) -> Callable[[], tuple[pd.DataFrame, pd.DataFrame]]:
        def measure() -> tuple[pd.DataFrame, pd.DataFrame]:
            residual = label.startswith("ResNet")
            study = lesion_study(model, inputs, targets).assign(net=label, residual=residual)
            curve = lesion_curve(model, inputs, targets, max_removed=max_removed, samples=samples, seed=seed)
            return study, curve.assign(net=label, residual=residual)
        return measure

    def both() -> tuple[pd.DataFrame, pd.DataFrame]:
        measured = side_by_side([one(label, model) for label, model in pair.models.items()])  # one thread each
        return (pd.concat([study for study, _ in measured], ignore_index=True),
                pd.concat([curve for _, curve in measured], ignore_index=True))

    return pair.remember("lesion", both, (inputs, targets), max_removed=max_removed, samples=samples, seed=seed)


def gradcam_shapes(model: nn.Module, *, count: int = 6) -> tuple[list[Any], pd.DataFrame, list[str]]:
    """Step 8: Grad-CAM of ``model`` on the localisation check's sample (``cam.shapes_check_images``: the first
    200 held-out Shapes images, as on the Grad-CAM page): overlays of the first ``count`` (with the object's
    outline), the pointing-game summary, and a caption per overlay (true and predicted class)."""
    import numpy as np

    from ..cam import pointing_game, shapes_check_images, shapes_examples
    from ..data import SHAPES_CLASSES

    images, test = shapes_check_images(model)
    labels, raw, masks = test.labels, test.images, test.masks
    overlays = shapes_examples(model, images, raw, labels, count=count)
    pointing = pointing_game(model, images, labels, masks)
    outlined = []
    for i, picture in enumerate(overlays):
        mask = masks[i].numpy()
        # The outline: mask pixels with a non-mask neighbour, drawn white over the map.
        padded = np.pad(mask, 1)
        inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
        edge = mask & ~inner
        picture = np.array(picture, copy=True)
        scale_y, scale_x = picture.shape[0] // mask.shape[0], picture.shape[1] // mask.shape[1]
        if scale_y >= 1 and scale_x >= 1:
            big = np.kron(edge, np.ones((scale_y, scale_x), dtype=bool))
            picture[: big.shape[0], : big.shape[1]][big] = 255
        outlined.append(picture)
    table = pointing.table
    captions = [f"{SHAPES_CLASSES[int(table['label'].iloc[i])]} (predicted "
                f"{SHAPES_CLASSES[int(table['predicted'].iloc[i])]})" for i in range(len(outlined))]
    return outlined, pointing.summary(), captions
