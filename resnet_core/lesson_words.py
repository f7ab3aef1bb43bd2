"""The lesson's words, built from its numbers: every comparative sentence of "Why residuals work" (who wins, by
how much) is made here from the measured values, so it follows them. Flip the numbers and the sentence flips
(tests/core/test_lesson_words.py); a sentence can never contradict the chart beside it. Percentages use one
rounding (``_pct``) and a difference is taken between the values as shown."""

from __future__ import annotations

import math

import pandas as pd

__all__ = ["accuracy_sentence", "depth_sentence", "landscape_sentence", "lesion_sentence",
           "paper_table2_sentence"]


def _pct(value: float) -> str:
    return f"{value:.1%}"  # the one rounding of an accuracy wherever it is shown


def _shown(value: float) -> float:
    return float(f"{value * 100:.1f}")  # the percentage as _pct shows it


def _factor(value: float) -> str:
    """A ratio for a sentence: 3 significant digits, whole numbers with thousands separators from 1,000 (11,200,
    not 1.12e+04), 2 significant digits below 10 (2.4, not 2)."""
    value = float(value)
    if abs(value) >= 999.5:
        return f"{value:,.0f}"
    return f"{value:.2g}" if abs(value) < 10 else f"{value:.3g}"


def _points(value: float, other: float = 0.0) -> str:
    """|value - other| in percentage points, from the two as shown, so the reader's own subtraction agrees."""
    return f"{abs(_shown(value) - _shown(other)):.1f} points"


def paper_table2_sentence(table: pd.DataFrame) -> str:
    """What Table 2 (``lesson.PAPER_TABLE2_TOP1``: top-1 error, ``depth``/``plain``/``resnet`` columns) says about
    its shallowest against its deepest nets."""
    rows = table.set_index("depth")
    shallow, deep = int(rows.index.min()), int(rows.index.max())
    plain_gap = float(rows.loc[deep, "plain"] - rows.loc[shallow, "plain"])
    residual_gap = float(rows.loc[deep, "resnet"] - rows.loc[shallow, "resnet"])

    def change(gap: float, kind: str) -> str:
        if gap > 0:
            return f"{kind}-{deep} had {gap:.2f} points *more* top-1 error than {kind}-{shallow}"
        if gap < 0:
            return f"{kind}-{deep} had {-gap:.2f} points less top-1 error than {kind}-{shallow}"
        return f"{kind}-{deep} had the same top-1 error as {kind}-{shallow}"

    return f"{change(plain_gap, 'Plain')}; with shortcuts (no extra parameters) {change(residual_gap, 'ResNet')}."


def depth_sentence(ratios: pd.DataFrame, *, batch: int, width: int) -> str:
    """Step 4: the first-block / last-block gradient ratio of plain and residual nets (``lesson.depth_ratios``)."""
    plain = ratios[~ratios["residual"]].set_index("depth")["ratio"]
    residual = ratios[ratios["residual"]].set_index("depth")["ratio"]
    low, deepest = int(plain.index.min()), int(plain.index.max())

    def way(ratio: float) -> str:
        return "grows toward the input (it explodes)" if ratio > 1 else "shrinks toward the input (it vanishes)"

    factor = float(plain[deepest] / residual[deepest])
    compare = (f"{_factor(factor)} times less than the plain net's at {deepest} layers" if factor >= 1.5 else
               f"{_factor(1 / factor)} times more than the plain net's at {deepest} layers" if factor <= 1 / 1.5 else
               f"about the plain net's at {deepest} layers")
    text = (f"Measured here at initialisation (train-mode batch norm, batch {batch}, width {width}, random labels): "
            "the norm of the gradient at the first block divided by the norm at the last block. In the plain nets "
            f"it {way(float(plain[deepest]))}: {_factor(plain[low])}x at {low} layers, **{_factor(plain[deepest])}x** "
            f"at {deepest}. The residual twins: {_factor(residual[low])}x and **{_factor(residual[deepest])}x**, "
            f"{compare}.")
    if plain[deepest] > 10 * residual[deepest] > 10:
        text += (" So not the folklore \"gradients vanish\": with batch norm, the plain nets' gradients explode "
                 "toward the input (as Yang et al. 2019 predict), and the identity paths keep the residual nets' "
                 "growth gentle.")
    return text


def accuracy_sentence(accuracy: dict[str, float], chance: float, *, sample: str,
                      degradation: str | None = None, step1_measured: bool = False) -> str:
    """Step 6: which of the pair (a ``Plain-N`` and a ``ResNet-N`` label, held-out accuracy on ``sample``) is
    more accurate, by how much, decided on the values as shown; where the plain net wins, that this contradicts the
    paper, why, and where the paper's effect does show: ``degradation`` is step 1's sentence when its race showed
    it; ``step1_measured`` says step 1 drew a race that did not."""
    plain_label = next(k for k in accuracy if k.startswith("Plain"))
    residual_label = next(k for k in accuracy if k.startswith("ResNet"))
    plain, residual = accuracy[plain_label], accuracy[residual_label]
    if not (math.isfinite(plain) and math.isfinite(residual)):
        missing = " and ".join(k for k, v in ((plain_label, plain), (residual_label, residual))
                               if not math.isfinite(v))
        return f"{missing} was not evaluated on held-out images, so the two cannot be compared here."
    head = f"Accuracy on {sample}: {plain_label} {_pct(plain)}, {residual_label} {_pct(residual)} (chance {chance:.0%})."
    if _shown(residual) > _shown(plain):
        return f"{head} The residual net is ahead by {_points(residual, plain)}, as in the paper."
    if _shown(residual) == _shown(plain):
        return f"{head} The two are level."
    if degradation:
        where = f"Step 1 shows where it does: {degradation}"
    elif step1_measured:
        where = ("Step 1's race did not show it either: the paper's effect is a deeper plain net (Plain-56) "
                 "training worse than a shallower one (Plain-20), which the quartet races.")
    else:
        where = ("Step 1's quartet is where to look for it: the paper's effect is a deeper plain net (Plain-56) "
                 "training worse than a shallower one (Plain-20).")
    depth = int(plain_label.split("-")[1]) if plain_label.split("-")[-1].isdigit() else 0
    why = (f"at {depth} layers a plain net is still easy to optimise (the paper's CIFAR Plain-20 trained well too; "
           "degradation grows with depth), Shapes is an easy task, and one seed of a short training decides a few "
           "points either way" if 0 < depth <= 20 else
           "one seed of a short training on an easy task decides a few points either way")
    return f"{head} Here the plain net is ahead by {_points(plain, residual)}, unlike the paper: {why}. {where}"


def landscape_sentence(lines: pd.DataFrame) -> str:
    """Step 6: along the same normalised distance, how much each net's loss grows, and whose grows more."""
    rough = {net: float(rows["loss"].max() / rows["loss"].min()) for net, rows in lines.groupby("net", sort=False)}
    text = ("Along the same normalised distance the loss of "
            + " and ".join(f"{net} grows {_factor(value)}x" for net, value in rough.items()) + ".")
    if len(rough) == 2:
        (a, ra), (b, rb) = sorted(rough.items(), key=lambda kv: -kv[1])
        text += (f" {a}'s surface is the steeper around its minimum ({ra / rb:.2g} times {b}'s growth)."
                 if ra > 1.05 * rb else " Their surfaces are about as steep.")
    return text


def lesion_sentence(studies: pd.DataFrame, chance: float, *, sample: str, paper_blocks: int = 54) -> str:
    """Step 7: each net's accuracy with every block and on average with one removable block removed, who loses
    less, and, where the residual net loses much more than Veit et al.'s ResNet-110, why (its number of blocks,
    its data and training: ``paper_blocks`` is ResNet-110's 54)."""
    rows = []
    drops = {}
    for net, group in studies.groupby("net", sort=False):
        removable = group[group["removable"]]
        full, after = float(group["full_accuracy"].iloc[0]), float(removable["accuracy"].mean())
        drops[net] = ((_shown(full) - _shown(after)) / 100, bool(group["residual"].iloc[0]), len(group))
        rows.append(f"{net} {_pct(full)} with every block, {_pct(after)} on average with one removed")
    text = f"On {sample}: " + "; ".join(rows) + f" (chance {chance:.0%})."
    residual = [(net, d, n) for net, (d, is_res, n) in drops.items() if is_res]
    plain = [(net, d) for net, (d, is_res, _n) in drops.items() if not is_res]
    if residual and plain:
        (rnet, rdrop, blocks), (pnet, pdrop) = residual[0], plain[0]
        if rdrop < pdrop:
            text += (f" {rnet} loses {_points(pdrop - rdrop)} less than {pnet}: its shortcuts carry the signal "
                     "past the gap.")
        elif rdrop > pdrop:
            text += f" {rnet} loses {_points(rdrop - pdrop)} more than {pnet}."
        else:
            text += " Both lose the same."
        if rdrop > 0.1:
            text += (f" Veit et al. saw the error barely move; their ResNet-110 had {paper_blocks} blocks on "
                     f"CIFAR-10, this {rnet} has {blocks}, trained briefly on Shapes, so each block carries a larger "
                     f"share of its paths and one removed costs it {_points(rdrop)}.")
    return text
