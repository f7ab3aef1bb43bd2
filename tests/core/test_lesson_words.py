"""The lesson's comparative sentences are built from its measured values: flip the numbers and the sentence
flips (who wins, by how much), so a sentence can never contradict the chart beside it."""

from __future__ import annotations

import pandas as pd
import pytest

from resnet_core import lesson


def test_table2_sentence_follows_the_table():
    said = lesson.paper_table2_sentence(lesson.PAPER_TABLE2_TOP1)
    assert said == ("Plain-34 had 0.60 points *more* top-1 error than Plain-18; with shortcuts (no extra "
                    "parameters) ResNet-34 had 2.85 points less top-1 error than ResNet-18.")
    flipped = lesson.PAPER_TABLE2_TOP1.assign(plain=[28.54, 27.94], resnet=[25.03, 27.88])
    assert lesson.paper_table2_sentence(flipped) == (
        "Plain-34 had 0.60 points less top-1 error than Plain-18; with shortcuts (no extra parameters) ResNet-34 "
        "had 2.85 points *more* top-1 error than ResNet-18.")


def _ratios(plain: tuple[float, float], residual: tuple[float, float]) -> pd.DataFrame:
    rows = [{"depth": d, "residual": False, "ratio": r} for d, r in zip((20, 56), plain, strict=True)]
    rows += [{"depth": d, "residual": True, "ratio": r} for d, r in zip((20, 56), residual, strict=True)]
    return pd.DataFrame(rows)


def test_depth_sentence_says_which_grows_and_by_how_much():
    said = lesson.depth_sentence(_ratios((30.0, 2000.0), (2.0, 4.0)), batch=16, width=8)
    assert "In the plain nets it grows toward the input (it explodes): 30x at 20 layers, **2,000x** at 56" in said
    assert "**4x**, 500 times less than the plain net's at 56 layers." in said and "folklore" in said
    flipped = lesson.depth_sentence(_ratios((0.5, 0.01), (2.0, 4.0)), batch=16, width=8)
    assert "shrinks toward the input (it vanishes)" in flipped
    assert "400 times more than the plain net's at 56 layers." in flipped and "folklore" not in flipped
    level = lesson.depth_sentence(_ratios((2.0, 4.1), (2.0, 4.0)), batch=16, width=8)
    assert "about the plain net's at 56 layers" in level


def test_accuracy_sentence_names_the_winner_and_explains_a_contradiction_of_the_paper():
    demo = {"Plain-20": 0.934, "ResNet-20": 0.8905}
    said = lesson.accuracy_sentence(demo, 0.1, sample="2,000 held-out Shapes images")
    assert said.startswith("Accuracy on 2,000 held-out Shapes images: Plain-20 93.4%, ResNet-20 89.0% "
                           "(chance 10%). Here the plain net is ahead by 4.4 points, unlike the paper: at 20 layers")
    assert said.endswith("Step 1's quartet is where to look for it: the paper's effect is a deeper plain net "
                         "(Plain-56) training worse than a shallower one (Plain-20).")
    with_race = lesson.accuracy_sentence(demo, 0.1, sample="x", degradation="Plain-56 ends above Plain-20.")
    assert with_race.endswith("Step 1 shows where it does: Plain-56 ends above Plain-20.")
    # Step 1 drew a race that did not show degradation: the sentence does not send the reader back to it.
    without = lesson.accuracy_sentence(demo, 0.1, sample="x", step1_measured=True)
    assert "Step 1's race did not show it either" in without and "is where to look" not in without
    flipped = lesson.accuracy_sentence({"Plain-20": 0.8905, "ResNet-20": 0.934}, 0.1, sample="x")
    assert flipped.endswith("The residual net is ahead by 4.4 points, as in the paper.")
    assert "unlike the paper" not in flipped


def _lines(steep: str) -> pd.DataFrame:
    rows = []
    for net in ("Plain-20", "ResNet-20"):
        top = 8.0 if net == steep else 2.0
        rows += [{"net": net, "alpha": a, "loss": loss} for a, loss in ((-1, top), (0, 1.0), (1, top / 2))]
    return pd.DataFrame(rows)


def test_landscape_sentence_names_the_steeper_net():
    said = lesson.landscape_sentence(_lines("Plain-20"))
    assert said == ("Along the same normalised distance the loss of Plain-20 grows 8x and ResNet-20 grows 2x. "
                    "Plain-20's surface is the steeper around its minimum (4 times ResNet-20's growth).")
    assert "ResNet-20's surface is the steeper" in lesson.landscape_sentence(_lines("ResNet-20"))


def _studies(residual_after: float, plain_after: float) -> pd.DataFrame:
    rows = []
    for net, residual, full, after in (("Plain-20", False, 0.95, plain_after), ("ResNet-20", True, 0.89,
                                                                               residual_after)):
        for i in range(9):
            removable = residual or i not in (3, 6)
            rows.append({"net": net, "residual": residual, "block": f"b{i}", "removable": removable,
                         "full_accuracy": full, "accuracy": after if removable else float("nan")})
    return pd.DataFrame(rows)


def test_lesion_sentence_says_who_loses_less_and_why_a_small_net_loses_a_lot():
    said = lesson.lesion_sentence(_studies(0.48, 0.20), 0.1, sample="128 held-out Shapes images")
    assert said.startswith("On 128 held-out Shapes images: Plain-20 95.0% with every block, 20.0% on average with "
                           "one removed; ResNet-20 89.0% with every block, 48.0% on average with one removed")
    assert "ResNet-20 loses 34.0 points less than Plain-20" in said
    assert "their ResNet-110 had 54 blocks on CIFAR-10, this ResNet-20 has 9" in said
    assert "one removed costs it 41.0 points." in said
    flipped = lesson.lesion_sentence(_studies(0.20, 0.48), 0.1, sample="x")
    assert "ResNet-20 loses 22.0 points more than Plain-20." in flipped
    small = lesson.lesion_sentence(_studies(0.86, 0.20), 0.1, sample="x")
    assert "loses 72.0 points less" in small and "Veit et al." not in small  # a 3-point drop needs no excuse


@pytest.mark.parametrize("plain, residual", [(0.9, 0.9)])
def test_a_tie_is_called_a_tie(plain, residual):
    said = lesson.accuracy_sentence({"Plain-20": plain, "ResNet-20": residual}, 0.1, sample="x")
    assert said.endswith("The two are level.")


def test_a_tie_as_shown_is_a_tie_and_a_missing_accuracy_is_said():
    # 89.05% against 89.00%: both show as 89.0% (and 89.1%/89.0% would not be "0.0 points ahead").
    said = lesson.accuracy_sentence({"Plain-20": 0.8900, "ResNet-20": 0.89004}, 0.1, sample="x")
    assert said.endswith("The two are level.")
    missing = lesson.accuracy_sentence({"Plain-20": 0.9, "ResNet-20": float("nan")}, 0.1, sample="x")
    assert missing == "ResNet-20 was not evaluated on held-out images, so the two cannot be compared here."


def test_ratios_read_as_numbers():
    said = lesson.depth_sentence(_ratios((2.4, 11_200.0), (1.2, 4.8)), batch=16, width=8)
    assert "2.4x at 20 layers, **11,200x** at 56" in said and "2,333 times less" in said


def test_step_sentences_quote_the_measured_values():
    identity = pd.DataFrame([
        {"residual": True, "zero_init": True, "max_abs_diff": 0.0, "max_abs_input": 3.25},
        {"residual": True, "zero_init": False, "max_abs_diff": 1.5, "max_abs_input": 3.25},
        {"residual": False, "zero_init": True, "max_abs_diff": 3.25, "max_abs_input": 3.25},
        {"residual": False, "zero_init": False, "max_abs_diff": 2.0, "max_abs_input": 3.25},
    ])
    said = lesson.identity_sentence(identity, block="layer2.1", net="ResNet-20")
    assert "**max |y - x| = 0**" in said and "max |y - x| = 3.25, which is max |x| (3.25)" in said
    split = pd.DataFrame({"shortcut_share": [0.5, 0.9], "sum_error": [1e-7, 2e-7], "branch_norm": [0.0, 0.0],
                          "total_norm": [1.0, 0.5]})
    assert "runs from 50% to 90% across the 2 blocks" in lesson.split_sentence(split, zero_init=False)
    assert "dF/dx = 0" not in lesson.split_sentence(split, zero_init=False)
    assert "(norm 1 at the first block, 0.5 at the last)" in lesson.split_sentence(split, zero_init=True)
    same = split.assign(shortcut_share=[0.7, 0.7])
    assert "is 70% in all 2 blocks" in lesson.split_sentence(same, zero_init=False)
    paths = lesson.paths_sentence(3, lesson.path_summary(3))
    assert "**2^3 = 8 paths**" in paths and "1 of 8 (0.12 of the total)" in paths  # 1/8, 2 significant digits


def test_durations_and_missing_accuracies_read_as_words():
    assert [lesson.duration(s) for s in (0.2, 45, 89.4, 365)] == ["1 s", "45 s", "89 s", "6 min 05 s"]
    assert lesson.accuracy_text(0.8905) == "89.0%" and lesson.accuracy_text(float("nan")) == "not evaluated"
    cost = lesson.landscape_cost_sentence(242, 12.0, batch=64, seed=0, span=1.0)
    assert cost.startswith("Costs 242 forward passes of 64 images (12 ms each, measured): about 3 s.")
    kept = lesson.landscape_cost_sentence(242, 12.0, batch=64, seed=0, span=1.0, kept=True)
    assert kept.startswith("Measured earlier on this machine and kept") and "shown at once" in kept
    assert "would cost 242 forward passes of 64 images (12 ms each, measured): about 3 s." in kept
    assert kept.endswith(cost.split(". ", 1)[1])  # the same fixed batch, seed and span


def test_the_demo_pairs_measurements_are_made_once_per_process_and_handed_out_as_copies():
    import pandas as pd
    import torch

    from resnet_core import lesson

    if not lesson.demo_pair_ready():
        pytest.skip("the embedded demo models are not installed (make demo-models)")
    pair = lesson.load_pair(lesson.DEMO_PAIR)
    assert lesson.load_pair(lesson.DEMO_PAIR) is pair  # package data: one object per process
    calls: list[int] = []

    def measure() -> pd.DataFrame:
        calls.append(1)
        return pd.DataFrame({"loss": [1.0]})

    x, y = torch.zeros(2, 3, 4, 4), torch.tensor([0, 1])
    try:
        first = pair.remember("a test's step", measure, (x, y), grid=3)
        first.loc[0, "loss"] = 99.0  # the caller's copy
        again = pair.remember("a test's step", measure, (x, y), grid=3)
        assert calls == [1] and again.loc[0, "loss"] == 1.0
        pair.remember("a test's step", measure, (x + 1, y), grid=3)  # another batch: measured again
        pair.remember("a test's step", measure, (x, y), grid=5)  # other settings: measured again
        assert calls == [1, 1, 1]
    finally:
        for key in [k for k in pair.measured if k[0] == "a test's step"]:
            del pair.measured[key]
