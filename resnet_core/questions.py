"""Predict, then reveal: the questions a page asks before it shows a measured answer (teacher mode).

Each question has 2-4 choices and derives its right answer from the result the page computed (``answer``),
never from a typed-in index. Where a paper states the answer, ``paper`` holds its choice and the source; the
reveal sentence says when the measurement here differs from it. ``QUESTIONS`` holds them by id: the lesson's
eight steps (``lesson.1`` ... ``lesson.8``), the Gradient flow page (``gradient_flow.largest``) and the training
race (``race.lower_loss``, whose choices are the race's own nets).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

DEGRADATION_MARGIN = 0.05  # final training losses closer than this are "level" (as the race's degradation note)
LEVEL = 1.05  # a ratio within 5% is "about the same"


@dataclass(frozen=True)
class Question:
    """One prediction: ``prompt``, ``choices``, ``answer(result) -> choice index`` from the page's result, and the
    paper's choice with its source where a paper states one."""

    id: str
    prompt: str
    choices: tuple[str, ...]
    answer: Callable[[Any], int]
    paper: int | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if not 2 <= len(self.choices) <= 4:
            raise ValueError(f"Question {self.id}: 2 to 4 choices, not {len(self.choices)}.")


def reveal_sentence(question: Question, measured: int, chosen: int | None = None) -> str:
    """The reveal: whether the prediction was right (when given), the measured answer, and where it differs from
    the paper's."""
    head = "" if chosen is None else "Right. " if chosen == measured else \
        f"You predicted \"{question.choices[chosen]}\". "
    said = f"{head}Measured here: **{question.choices[measured]}**."
    if question.paper is not None and question.paper != measured:
        said += (f" This differs from the paper ({question.source}: \"{question.choices[question.paper]}\"); the "
                 "text below says why.")
    elif question.paper is not None:
        said += f" As in the paper ({question.source})."
    return said


# ------------------------------------------------------------------------------------------ the answers
def _depth(label: str) -> int:
    digits = "".join(ch for ch in label.split("-")[-1] if ch.isdigit())
    return int(digits) if digits else 0


def degradation_answer(summary: pd.DataFrame) -> int:
    """Step 1: 0 when the shallow plain net ends with the higher training loss, 1 the deep one, 2 level."""
    plain = summary[summary["racer"].str.startswith("Plain")].drop_duplicates("racer")
    plain = plain.assign(depth=plain["racer"].map(_depth)).sort_values("depth")
    if len(plain) < 2:
        raise ValueError("The race has fewer than two plain nets to compare.")
    shallow, deep = float(plain["final_loss"].iloc[0]), float(plain["final_loss"].iloc[-1])
    if abs(deep - shallow) <= DEGRADATION_MARGIN:
        return 2
    return 1 if deep > shallow else 0


def identity_answer(identity: pd.DataFrame) -> int:
    """Step 2: the residual block with its branch zeroed outputs its input (0), zeros (1), or neither (2)."""
    row = identity.set_index(["residual", "zero_init"]).loc[(True, True)]
    if float(row["max_abs_diff"]) <= 1e-5 * max(1.0, float(row["max_abs_input"])):
        return 0
    return 1 if math.isclose(float(row["max_abs_diff"]), float(row["max_abs_input"]), rel_tol=1e-4) else 2


def split_answer(split: pd.DataFrame) -> int:
    """Step 3: the shortcut (0) or the branch (1) carries most of the gradient on average, or about half each (2)."""
    share = float(split["shortcut_share"].mean())
    return 0 if share > 0.6 else 1 if share < 0.4 else 2


def depth_answer(ratios: pd.DataFrame) -> int:
    """Step 4: in the deepest plain net the gradient shrinks toward the input (0), grows (1) or neither (2)."""
    plain = ratios[~ratios["residual"]].set_index("depth")["ratio"]
    ratio = float(plain[plain.index.max()])
    return 0 if ratio < 1 / 2 else 1 if ratio > 2 else 2


def paths_answer(summary: dict[str, Any]) -> int:
    """Step 5: a typical path takes few branches (0), about half (1) or nearly all (2)."""
    share = float(summary["mean_length"]) / max(1, int(summary["blocks"]))
    return 0 if share < 1 / 3 else 2 if share > 2 / 3 else 1


def landscape_answer(lines: pd.DataFrame) -> int:
    """Step 6: the plain net's loss rises more steeply (0), the residual net's (1), or about as steeply (2)."""
    rough = {net: float(rows["loss"].max() / rows["loss"].min()) for net, rows in lines.groupby("net", sort=False)}
    plain = next(v for k, v in rough.items() if k.startswith("Plain"))
    residual = next(v for k, v in rough.items() if not k.startswith("Plain"))
    return 0 if plain > LEVEL * residual else 1 if residual > LEVEL * plain else 2


def lesion_answer(studies: pd.DataFrame) -> int:
    """Step 7: removing one block costs the plain net more accuracy (0), the residual net (1), or the same (2)."""
    drops = {}
    for residual, group in studies.groupby("residual"):
        removable = group[group["removable"]]
        drops[bool(residual)] = round(100 * (float(group["full_accuracy"].iloc[0])
                                             - float(removable["accuracy"].mean())), 1)
    return 0 if drops[False] > drops[True] else 1 if drops[True] > drops[False] else 2


def pointing_answer(pointing: Any) -> int:
    """Step 8: the map's peak hits the object less often than a random point (0), more but under 80% (1), or at
    least 80% of the time (2). ``pointing``: a ``PointingResult`` or its ``summary()`` table (measure, value)."""
    if isinstance(pointing, pd.DataFrame):
        values = dict(zip(pointing["measure"], pointing["value"], strict=True))
        hit = next(float(v) for k, v in values.items() if k.startswith("pointing-game hit rate"))
        chance = next(float(v) for k, v in values.items() if k.startswith("chance"))
    else:
        hit, chance = float(pointing.hit_rate), float(pointing.chance)
    return 0 if hit <= chance else 2 if hit >= 0.8 else 1


def largest_gradient_answer(frame: pd.DataFrame) -> int:
    """Gradient flow: the first net's gradient norm is largest at its first (0), a middle (1) or its last block (2)."""
    net = frame["net"].iloc[0] if "net" in frame.columns else None
    rows = (frame[frame["net"] == net] if net is not None else frame).sort_values("block_index")
    position = int(rows["grad_norm"].to_numpy().argmax())
    return 0 if position == 0 else 2 if position == len(rows) - 1 else 1


def race_question(labels: Sequence[str]) -> Question:
    """The training race's question for its own nets (2-4 of them): which ends with the lower loss (the mean over
    the last steps, as the race's summary gives it). The paper's answer is a residual net, when one races."""
    labels = tuple(labels)[:4]
    residual = [i for i, name in enumerate(labels) if not name.startswith("Plain")]
    plain = [i for i, name in enumerate(labels) if name.startswith("Plain")]

    def answer(summary: pd.DataFrame) -> int:
        table = summary.drop_duplicates("racer").set_index("racer")
        losses = [float(table.loc[name, "final_loss"]) if name in table.index else math.inf for name in labels]
        losses = [v if math.isfinite(v) else math.inf for v in losses]
        return int(min(range(len(labels)), key=lambda i: losses[i]))

    paper = residual[0] if len(residual) == 1 and plain else None
    return Question("race.lower_loss", "Which net ends with the lower training loss?", labels, answer, paper,
                    "He et al. 2016, Fig. 4 and 6" if paper is not None else "")


QUESTIONS: dict[str, Question] = {q.id: q for q in (
    Question("lesson.1", "Trained on the same batches, which plain net ends with the higher training loss?",
             ("Plain-20, the shallower", "Plain-56, the deeper", "Neither: they end level"), degradation_answer,
             1, "He et al. 2016, Fig. 6"),
    Question("lesson.2", "Set the last batch-norm scale of a residual block's branch to zero. What does the block "
                         "output?", ("Its input, unchanged", "Zeros", "Something else"), identity_answer),
    Question("lesson.3", "In a freshly built ResNet, which path carries most of the gradient back to a block's "
                         "input?", ("The shortcut", "The residual branch", "About half each"), split_answer),
    Question("lesson.4", "In the deepest plain net at initialisation, how does the gradient change from the last "
                         "block to the first?", ("It shrinks (vanishes)", "It grows (explodes)",
                                                 "It stays about the same"), depth_answer),
    Question("lesson.5", "Unroll the residual blocks into paths. How many branches does a typical path take?",
             ("Few: under a third of the blocks", "About half of the blocks", "Nearly all of the blocks"),
             paths_answer, 1, "Veit et al. 2016"),
    Question("lesson.6", "Around its trained weights, whose loss rises more steeply?",
             ("The plain net's", "The residual net's", "About as steeply"), landscape_answer, 0,
             "Li et al. 2018"),
    Question("lesson.7", "Remove one block at test time. Which net loses more accuracy?",
             ("The plain net", "The residual net", "Both the same"), lesion_answer, 0, "Veit et al. 2016"),
    Question("lesson.8", "How often does the trained ResNet's Grad-CAM peak fall on the object?",
             ("No more often than a random point", "More often than chance, under 80% of the time",
              "80% of the time or more"), pointing_answer),
    Question("gradient_flow.largest", "Where is the gradient norm largest: the first, middle or last block?",
             ("The first block", "A middle block", "The last block"), largest_gradient_answer),
)}

__all__ = ["DEGRADATION_MARGIN", "QUESTIONS", "Question", "degradation_answer", "depth_answer", "identity_answer",
           "landscape_answer", "largest_gradient_answer", "lesion_answer", "paths_answer", "pointing_answer",
           "race_question", "reveal_sentence", "split_answer"]
