"""Metric functions on hand-computed cases, ties included (a tie is a failure)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline_steps import metrics
from pipeline_steps.metrics import accuracy, normalize_vqa_answer, vcr_accuracies, vqa_accuracy, vqa_soft_score


def test_winoground_scores_hand_computed():
    # scores[n, c, i]: caption c with image i
    scores = np.array([
        [[0.9, 0.1], [0.2, 0.8]],   # all correct
        [[0.9, 0.95], [0.2, 0.8]],  # text ok (0.9>0.2, 0.8>0.95? no) -> text wrong; image: 0.9>0.95 no
        [[0.5, 0.4], [0.3, 0.6]],   # text: 0.5>0.3 and 0.6>0.4 ok; image: 0.5>0.4 and 0.6>0.3 ok
        [[0.5, 0.2], [0.6, 0.7]],   # text: 0.5>0.6 no; image: 0.5>0.2 and 0.7>0.6 yes
    ])
    assert metrics.winoground_scores(scores) == {"text": 0.5, "image": 0.75, "group": 0.5}


def test_winoground_ties_are_failures():
    tie = np.array([[[0.5, 0.5], [0.5, 0.5]]])
    assert metrics.winoground_scores(tie) == {"text": 0.0, "image": 0.0, "group": 0.0}
    half_tie = np.array([[[0.7, 0.1], [0.7, 0.9]]])  # c0_i0 == c1_i0: text fails, image holds
    assert metrics.winoground_scores(half_tie) == {"text": 0.0, "image": 1.0, "group": 0.0}
    with pytest.raises(ValueError, match=r"shape \(N, 2, 2\)"):
        metrics.winoground_scores(np.zeros((3, 2)))


def test_macro_accuracy_drops_small_and_excluded_groups():
    correct = [1, 0, 1, 1, 1, 0, 0]
    groups = ["a", "a", "b", "b", "b", "c", "sym"]
    # a: 0.5, b: 1.0, c: 0.0 (1 item), sym excluded
    assert metrics.macro_accuracy(correct, groups, exclude=["sym"]) == pytest.approx(0.5)
    assert metrics.macro_accuracy(correct, groups, min_count=2, exclude=["sym"]) == pytest.approx(0.75)
    assert np.isnan(metrics.macro_accuracy(correct, groups, min_count=10))


def test_precision_at_1_needs_a_strict_win():
    scores = np.array([[0.9, 0.1, 0.2], [0.5, 0.5, 0.1], [0.1, 0.3, 0.2], [0.7, 0.69, 0.0]])
    assert metrics.precision_at_1(scores) == 0.5


def test_pairwise_accuracy_ties_fail():
    assert metrics.pairwise_accuracy([0.3, 0.5, 0.2], [0.1, 0.5, 0.4]) == pytest.approx(1 / 3)


def test_bootstrap_ci_brackets_the_mean_and_is_deterministic():
    values = np.r_[np.ones(30), np.zeros(70)]
    low, high = metrics.bootstrap_ci(values, n_boot=2000, seed=1)
    assert low < 0.3 < high and 0.2 < low and high < 0.4
    assert (low, high) == metrics.bootstrap_ci(values, n_boot=2000, seed=1)
    assert metrics.bootstrap_ci(np.ones(10)) == (1.0, 1.0)
    # n = 400 around 30%: about +-4.5 points, as the Winoground paper's CIs
    wide = metrics.bootstrap_ci(np.r_[np.ones(120), np.zeros(280)], n_boot=4000, seed=0)
    assert 0.035 < (wide[1] - wide[0]) / 2 < 0.055


def test_vqa_accuracy_hand_computed_cases():
    # 2 of 10 annotators agree: leave-one-out mean = (2 * 1/3 + 8 * 2/3) / 10 = 0.6
    assert vqa_accuracy("yes", ["yes"] * 2 + ["no"] * 8) == pytest.approx(0.6)
    assert vqa_accuracy("no", ["yes"] * 2 + ["no"] * 8) == pytest.approx(1.0)
    assert vqa_accuracy("yes", ["yes"] + ["no"] * 9) == pytest.approx(0.3)
    assert vqa_accuracy("yes", ["yes"] * 3 + ["no"] * 7) == pytest.approx(0.9)
    assert vqa_accuracy("maybe", ["yes"] * 3 + ["no"] * 7) == 0.0
    # normalisation: number words, articles, punctuation, contractions
    answers = ["two"] * 3 + ["2"] + ["three"] * 6
    assert vqa_accuracy("A two!", answers) == pytest.approx(1.0)
    assert vqa_accuracy("dont", ["don't"] * 3 + ["no"] * 7) == pytest.approx(0.9)
    assert normalize_vqa_answer("The red, cube.") == "red cube"
    # as in the official code, identical answers are compared without normalisation
    assert vqa_accuracy("two", ["2"] * 10) == 0.0
    assert vqa_accuracy("2", ["2"] * 10) == 1.0
    with pytest.raises(ValueError, match="10 human answers"):
        vqa_accuracy("yes", ["yes"] * 9)
    # the closed form used for the training targets
    for matches in range(11):
        answers = ["a"] * matches + ["b"] * (10 - matches)
        assert vqa_accuracy("a", answers) == pytest.approx(vqa_soft_score(matches))


def test_vcr_joint_accuracy_is_per_example_not_a_product():
    scores = vcr_accuracies([0, 1, 2, 3], [0, 1, 0, 3], [1, 1, 1, 0], [1, 0, 1, 0])
    assert scores == {"q2a": 0.75, "qa2r": 0.75, "q2ar": 0.5}  # the product would be 0.5625
    assert accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == 0.75
