"""What a race is: its racers, its settings, the presets, the learning-rate schedule, and when a
summary shows degradation."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from ..data import DATASETS
from ..models import display_name, get_spec

SCHEDULES = ("step", "cosine", "constant")
RACER_STATUSES = ("running", "diverged", "finished", "stopped")


# ------------------------------------------------------------------------------------------------ config
@dataclass(frozen=True)
class RacerSpec:
    """One racer: an architecture name and its build options (``residual=False`` is the plain twin)."""

    arch: str
    residual: bool = True
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        return display_name(self.arch, self.residual)

    def build_options(self, width: int | None, num_classes: int) -> dict[str, Any]:
        opts: dict[str, Any] = {"residual": self.residual, "num_classes": num_classes}
        if width is not None:
            opts["width"] = width
        opts.update(dict(self.options))
        return opts

    @classmethod
    def parse(cls, text: str) -> RacerSpec:
        """``"resnet56"`` or ``"resnet56:plain"`` (the CLI's spelling)."""
        arch, _, flag = text.partition(":")
        if flag not in ("", "plain", "residual"):
            raise ValueError(f"Racer {text!r}: write an architecture name, optionally followed by ':plain'.")
        get_spec(arch)
        return cls(arch, residual=flag != "plain")


@dataclass(frozen=True)
class RaceConfig:
    """Everything a race needs; ``to_dict``/``from_dict`` round-trip through the run's config.json."""

    racers: tuple[RacerSpec, ...]
    dataset: str = "shapes"
    image_size: int = 16
    steps: int = 1000
    batch_size: int = 64
    lr: float = 0.01
    warmup_steps: int = 20
    schedule: str = "constant"
    width: int | None = 8
    momentum: float = 0.9
    weight_decay: float = 1e-4
    eval_every: int = 50
    eval_samples: int = 1000
    n_train: int | None = None
    n_test: int | None = None
    seed: int = 0
    device: str = "auto"
    name: str = "custom race"
    # A checkpoint of every racer (weights, optimizer, scaler, step, data order) every k steps, so a killed
    # run loses at most k steps; 0: only the final one. It changes nothing in the curves.
    checkpoint_every: int = 200

    def __post_init__(self) -> None:
        if not 1 <= len(self.racers) <= 8:
            raise ValueError(f"A race needs 1 to 8 racers, got {len(self.racers)}.")
        labels = [r.label for r in self.racers]
        if len(set(labels)) != len(labels):
            raise ValueError(f"Each racer must be a different net; got {', '.join(labels)}.")
        for racer in self.racers:
            get_spec(racer.arch)
        if self.dataset not in DATASETS and not self.dataset.startswith("folder:"):
            raise ValueError(f"Unknown data set {self.dataset!r}; choose one of {', '.join(DATASETS)}.")
        checks = [(self.steps >= 1, "steps must be at least 1"),
                  (self.batch_size >= 2, "the batch size must be at least 2 (batch norm needs two images)"),
                  (math.isfinite(self.lr) and self.lr > 0, "the learning rate must be a positive number"),
                  (self.warmup_steps >= 0, "warm-up steps must be zero or more"),
                  (self.schedule in SCHEDULES, f"the schedule must be one of {', '.join(SCHEDULES)}"),
                  (self.width is None or 1 <= self.width <= 256, "the width must be 1 to 256 channels"),
                  (8 <= self.image_size <= 256, "the image size must be 8 to 256 pixels"),
                  (self.eval_every >= 1, "eval_every must be at least 1"),
                  (self.eval_samples >= 1, "eval_samples must be at least 1"),
                  (self.checkpoint_every >= 0,
                   "the checkpoint interval (checkpoint_every) must be 0 (final checkpoint only) or more")]
        for ok, message in checks:
            if not ok:
                raise ValueError(message[0].upper() + message[1:] + ".")

    @property
    def labels(self) -> list[str]:
        return [r.label for r in self.racers]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["racers"] = [{"arch": r.arch, "residual": r.residual, "options": dict(r.options)} for r in self.racers]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RaceConfig:
        data = dict(data)
        racers = tuple(RacerSpec(r["arch"], bool(r.get("residual", True)), tuple(sorted(r.get("options", {}).items())))
                       for r in data.pop("racers"))
        known = {f for f in cls.__dataclass_fields__ if f != "racers"}
        return cls(racers=racers, **{k: v for k, v in data.items() if k in known})


def _pair(depth_arch: str, name: str, **overrides: Any) -> RaceConfig:
    return RaceConfig(racers=(RacerSpec(depth_arch, residual=False), RacerSpec(depth_arch)), name=name, **overrides)


# The defaults (above) and so the presets are chosen, and measured (README "Training race"), so that on a
# 2-core laptop CPU the 56-layer pair finishes within 3 minutes and shows the paper's degradation: plain-56
# ends far above ResNet-56. Width 8 and 16 px images keep the nets fast. For a run of a thousand steps
# at batch 64, lr 0.01 held constant after a short warm-up trains ResNet-56 fastest on Shapes (measured:
# 0.05 and 0.1, even with 50-100 warm-up steps, and 0.02 with the paper's step decay all ended higher);
# the paper's 0.1 with decays at 50%/75% is made for 64k steps at batch 128. 1000 steps rather than 500:
# at 500 the gap depended on the thread count (1.9x with 2 threads, 3.3x with 1); at 1000 it is over 4x
# with either. The quartet's story is Plain-56 against Plain-20, and at lr 0.01 Plain-20 starts to learn only
# after about 400 steps (Plain-56 reached 2x Plain-20's loss at step 986 of 1000, 152 s); at 0.05 it learns
# from step 200 while Plain-56 stays at chance: 2x at step ~510 (76 s), 3.2x at 700 (benchmarks/bench_race_gap.py).
PRESETS: dict[str, RaceConfig] = {
    "Plain-20 vs ResNet-20": _pair("resnet20", "Plain-20 vs ResNet-20"),
    "Plain-56 vs ResNet-56": _pair("resnet56", "Plain-56 vs ResNet-56"),
    "The degradation quartet": RaceConfig(
        racers=(RacerSpec("resnet20", False), RacerSpec("resnet56", False), RacerSpec("resnet20"),
                RacerSpec("resnet56")),
        name="The degradation quartet", lr=0.05),
}

# What each preset can show. Degradation (He et al. 2015, Fig. 6) is a deeper *plain* net ending with a higher
# training loss than a shallower plain one; only a race with two plain depths can show it, and the page claims
# it only when :func:`degradation_note` finds it in the race's measured summary.
PRESET_NOTES: dict[str, str] = {
    "Plain-20 vs ResNet-20": (
        "One depth, 20 layers, with and without shortcuts: the quick baseline. At this depth both nets train "
        "(in the paper plain-20 and ResNet-20 end close); it cannot show degradation, which needs two plain depths."),
    "Plain-56 vs ResNet-56": (
        "One depth, 56 layers, with and without shortcuts: the plain net is hard to optimise and, with these "
        "settings, ends far above its residual twin. Degradation itself needs a shallower plain net to compare "
        "with: race the quartet."),
    "The degradation quartet": (
        "Two depths, each with and without shortcuts. Degradation shows if Plain-56 ends with a higher training "
        "loss than Plain-20; the page says so under the results once this race has measured it."),
}

# A deeper plain net must end at least this much higher (mean training loss of the last steps) to count.
# Final training loss and accuracy are averaged over the last steps: one batch is noisy, a window is not.
FINAL_WINDOW = 20
DEGRADATION_MARGIN = 0.05


def degradation_note(config: RaceConfig, summary: pd.DataFrame) -> str | None:
    """One sentence when ``summary`` (see :func:`summarize`) shows the degradation problem, else None.

    Shown means: two plain racers of different depth, each with at least ``FINAL_WINDOW`` finite steps, where
    the deeper one's final training loss is above the shallower one's by more than ``DEGRADATION_MARGIN``.
    A diverged racer (non-finite loss) proves nothing about depth and is left out."""
    if summary.empty or not {"racer", "status", "steps", "final_loss"} <= set(summary.columns):
        return None  # e.g. a past run's summary.json from an older version

    def number(value: Any) -> float:
        try:
            return float(value)
        except (TypeError, ValueError):  # null in a summary.json read back
            return float("nan")

    table = summary.drop_duplicates("racer").set_index("racer")
    plain = []
    for spec in config.racers:
        if spec.residual or spec.label not in table.index:
            continue
        row = table.loc[spec.label]
        loss, steps = number(row["final_loss"]), number(row["steps"])
        if math.isfinite(loss) and steps >= FINAL_WINDOW and row["status"] != "diverged":
            plain.append((get_spec(spec.arch).depth, spec.label, loss))
    plain.sort()
    found = None
    for i, (depth, label, loss) in enumerate(plain):
        for deep_depth, deep_label, deep_loss in plain[i + 1:]:
            if deep_depth > depth and deep_loss - loss > DEGRADATION_MARGIN:
                found = (label, loss, deep_label, deep_loss)
    if found is None:
        return None
    label, loss, deep_label, deep_loss = found
    return (f"Degradation, measured in this race: the deeper {deep_label} ends with a higher training loss "
            f"({deep_loss:.3f}) than the shallower {label} ({loss:.3f}), as in He et al. 2015, Fig. 6 (left).")


def lr_at(step: int, config: RaceConfig) -> float:
    """Learning rate for 0-based ``step``: linear warm-up from lr/warmup to lr, then the schedule."""
    base = config.lr
    if step < config.warmup_steps:
        return base * (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return base
    span = max(1, config.steps - config.warmup_steps)
    progress = (step - config.warmup_steps) / span
    if config.schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return base * (0.1 ** ((progress >= 0.5) + (progress >= 0.75)))
