"""Predict-then-reveal questions: every right answer is derived from the result, and flips when the numbers flip;
the reveal says where the measurement differs from the paper."""

from __future__ import annotations

import pandas as pd
import pytest

from resnet_core import lesson
from resnet_core.questions import QUESTIONS, Question, race_question, reveal_sentence


def test_ten_questions_with_two_to_four_choices():
    assert [q for q in QUESTIONS] == [f"lesson.{i}" for i in range(1, 9)] + ["gradient_flow.largest"]
    assert all(2 <= len(q.choices) <= 4 for q in QUESTIONS.values())
    with pytest.raises(ValueError, match="2 to 4 choices"):
        Question("x", "?", ("only one",), lambda _: 0)


def test_degradation_follows_the_final_losses():
    question = QUESTIONS["lesson.1"]
    summary = pd.DataFrame({"racer": ["Plain-20", "Plain-56", "ResNet-20", "ResNet-56"],
                            "final_loss": [0.40, 0.90, 0.30, 0.20]})
    assert question.answer(summary) == 1  # the deeper plain net is worse: as in the paper
    assert question.answer(summary.assign(final_loss=[0.90, 0.40, 0.3, 0.2])) == 0
    assert question.answer(summary.assign(final_loss=[0.40, 0.42, 0.3, 0.2])) == 2
    assert reveal_sentence(question, 1, 1) == "Right. Measured here: **Plain-56, the deeper**. As in the paper " \
                                              "(He et al. 2016, Fig. 6)."
    differs = reveal_sentence(question, 2, 1)
    assert differs.startswith('You predicted "Plain-56, the deeper". Measured here: **Neither: they end level**.')
    assert "This differs from the paper (He et al. 2016, Fig. 6" in differs


def test_the_lessons_own_results_give_the_answers_its_sentences_state():
    identity = lesson.identity_check("resnet20", "layer2.1", width=8)
    assert QUESTIONS["lesson.2"].answer(identity) == 0  # y = x exactly, as identity_sentence shows
    split = lesson.gradient_split("resnet20", width=8, zero_init_residual=True)
    assert QUESTIONS["lesson.3"].answer(split) == 0  # every branch at zero: the shortcut carries it all
    summary = lesson.path_summary(54)
    assert QUESTIONS["lesson.5"].answer(summary) == 1  # Binomial(54, 1/2): half the blocks, as in Veit et al.


def test_depth_landscape_and_lesion_answers_flip_with_their_numbers():
    ratios = pd.DataFrame({"depth": [20, 56, 20, 56], "residual": [False, False, True, True],
                           "ratio": [3.0, 400.0, 1.2, 1.5]})
    assert QUESTIONS["lesson.4"].answer(ratios) == 1
    assert QUESTIONS["lesson.4"].answer(ratios.assign(ratio=[0.5, 0.01, 1.0, 1.0])) == 0
    lines = pd.DataFrame({"net": ["Plain-20"] * 3 + ["ResNet-20"] * 3, "loss": [1.0, 5.0, 1.0, 1.0, 2.0, 1.0]})
    assert QUESTIONS["lesson.6"].answer(lines) == 0
    assert QUESTIONS["lesson.6"].answer(lines.assign(loss=[1.0, 2.0, 1.0, 1.0, 5.0, 1.0])) == 1
    studies = pd.DataFrame({"net": ["Plain-20"] * 2 + ["ResNet-20"] * 2, "residual": [False, False, True, True],
                            "removable": [True] * 4, "full_accuracy": [0.9, 0.9, 0.95, 0.95],
                            "accuracy": [0.2, 0.3, 0.9, 0.94]})
    assert QUESTIONS["lesson.7"].answer(studies) == 0
    assert QUESTIONS["lesson.7"].answer(studies.assign(accuracy=[0.89, 0.9, 0.3, 0.2])) == 1


def test_the_race_asks_about_its_own_nets():
    question = race_question(["Plain-20", "ResNet-20", "ResNet-56"])
    assert question.choices == ("Plain-20", "ResNet-20", "ResNet-56") and question.paper is None  # two residual
    summary = pd.DataFrame({"racer": ["Plain-20", "ResNet-20", "ResNet-56"], "final_loss": [0.5, 0.2, float("nan")]})
    assert question.answer(summary) == 1  # a diverged net (NaN) never wins
    pair = race_question(["Plain-20", "ResNet-20"])
    assert pair.paper == 1 and pair.answer(summary.iloc[:2].assign(final_loss=[0.1, 0.2])) == 0
