"""The lesson's words, built from its numbers: every comparative sentence of "Why residuals work" (who wins, by
how much) is made here from the measured values, so it follows them. Flip the numbers and the sentence flips
(tests/core/test_lesson_words.py); a sentence can never contradict the chart beside it. Percentages use one
rounding (``_pct``) and a difference is taken between the values as shown."""

from __future__ import annotations

import math

import pandas as pd

__all__ = ["accuracy_sentence", "accuracy_text", "depth_sentence", "duration", "identity_sentence",
           "landscape_cost_sentence", "landscape_sentence", "lesion_sentence", "paper_table2_sentence",
           "paths_sentence", "split_sentence"]


def _pct(value: float) -> str:
    return f"{value:.1%}"  # the one rounding of an accuracy wherever it is shown


def accuracy_text(value: float) -> str:
    """An accuracy as every view shows it ("89.0%"), or "not evaluated" for a missing one (NaN)."""
    return _pct(value) if value == value else "not evaluated"


def duration(seconds: float) -> str:
    """A wait as the lesson says it: "45 s", "6 min 05 s" (at least 1 s)."""
    whole = max(1, int(round(seconds)))
    return f"{whole} s" if whole < 90 else f"{whole // 60} min {whole % 60:02d} s"


def identity_sentence(identity: pd.DataFrame, *, block: str, net: str) -> str:
    """Step 2: what four versions of ``block`` did to its real input (``lesson.identity_check``)."""
    rows = identity.set_index(["residual", "zero_init"])
    res_zero, plain_zero = rows.loc[(True, True)], rows.loc[(False, True)]
    return (f"Take block `{block}` of {net} and feed it the input x it really receives in the net (a seeded "
            "batch). A residual block computes y = ReLU(x + F(x)). With the last batch-norm scale of F at zero "
            f"(`zero_init_residual=True`), F(x) = 0 and y = x: measured **max |y - x| = "
            f"{res_zero['max_abs_diff']:.3g}**. The plain block with the same zeroed layer outputs zeros: "
            f"max |y - x| = {plain_zero['max_abs_diff']:.3g}, which is max |x| ({plain_zero['max_abs_input']:.3g}). "
            "To be the identity, a plain block must *learn* it through two convolutions and ReLUs; a residual "
            "block only has to push F towards zero.")


def split_sentence(split: pd.DataFrame, *, zero_init: bool) -> str:
    """Step 3: the shortcut's share of the gradient at each block input (``lesson.gradient_split``)."""
    shares = split["shortcut_share"]
    low, high = f"{shares.min():.0%}", f"{shares.max():.0%}"
    spread = (f"runs from {low} to {high} across the {len(split)} blocks" if low != high
              else f"is {low} in all {len(split)} blocks")
    said = (f"Measured here: the shortcut's share of the gradient (its component along the total) {spread}; "
            f"shortcut + branch equals the total (largest relative difference {split['sum_error'].max():.1e}).")
    if zero_init:
        said += (f" With every branch at zero, dF/dx = 0: the branch part is exactly "
                 f"{split['branch_norm'].abs().max():.3g} and the gradient crosses every block untouched (norm "
                 f"{split['total_norm'].iloc[0]:.4g} at the first block, {split['total_norm'].iloc[-1]:.4g} at "
                 "the last).")
    return said


def paths_sentence(n_blocks: int, summary: dict) -> str:
    """Step 5: the unrolled view of ``n_blocks`` blocks (``lesson.path_summary``)."""
    return (f"Each block offers two ways through: the shortcut or the branch. Unrolled (Veit et al. 2016), "
            f"{n_blocks} blocks are **2^{n_blocks} = {summary['paths']:,} paths**, and the number of branches a "
            f"path takes is Binomial({n_blocks}, 1/2): mean {summary['mean_length']:.1f}, "
            f"{summary['share_within_1std']:.0%} of paths within {summary['std_length']:.1f} of it. The one path "
            f"through every branch, the plain net's only path, is 1 of {summary['paths']:,} "
            f"({summary['longest_share']:.2g} of the total).")


def landscape_cost_sentence(passes: int, forward_ms: float, *, batch: int, seed: int, span: float,
                            kept: bool = False) -> str:
    """Step 6's cost, from the passes it takes and one forward pass timed on this machine; ``kept``: already
    measured here (``landscape_kept``), so it is shown at once and the cost is what measuring again would take."""
    cost = (f"{passes} forward passes of {batch} images ({forward_ms:.0f} ms each, measured): about "
            f"{duration(passes * forward_ms / 1000)}")
    head = (f"Measured earlier on this machine and kept (the same nets, batch, settings and code), so shown at "
            f"once; measuring again would cost {cost}." if kept else f"Costs {cost}.")
    return (f"{head} Fixed: the batch (the first {batch} training images), the seed of the two directions ({seed}) "
            f"and the span (±{span}), so the same run always gives the same picture.")


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
