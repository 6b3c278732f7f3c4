"""Reward-model metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest

from rlhf.eval.rm_metrics import accuracy, brier, ece, oriented, reward_model_metrics, roc_auc, sigmoid


def test_accuracy_counts_equal_rewards_half():
    assert accuracy([2, 1, 0, 5], [1, 2, 0, 4]) == pytest.approx((1 + 0 + 0.5 + 1) / 4)


def test_auc_by_hand():
    # positives 0.9, 0.4; negatives 0.5, 0.1, 0.4: pairs won 3 + (1 + 0.5 tie) = 4.5 of 6
    assert roc_auc([0.9, 0.4, 0.5, 0.1, 0.4], [1, 1, 0, 0, 0]) == pytest.approx(4.5 / 6)
    assert roc_auc([0.9, 0.8, 0.1], [1, 1, 0]) == 1.0
    assert math.isnan(roc_auc([0.3], [1]))


def test_auc_matches_all_pairs_and_scales_to_large_sets():
    import numpy as np

    rng = np.random.default_rng(0)
    scores, labels = rng.integers(0, 6, 300).astype(float), rng.integers(0, 2, 300)  # many ties
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairwise = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg))
    assert roc_auc(scores, labels) == pytest.approx(pairwise, abs=1e-12)
    big = rng.normal(size=400_000)  # an n x n matrix of these would need 160 GB
    assert roc_auc(big, (big > 0).astype(int)) == 1.0


def test_ece_by_hand():
    # bins of width 0.5: [0.2, 0.4] labels [0, 1] -> |0.5 - 0.3| = 0.2; [0.8, 1.0] labels [1, 1] -> |1 - 0.9| = 0.1
    assert ece([0.2, 0.4, 0.8, 1.0], [0, 1, 1, 1], bins=2) == pytest.approx(0.5 * 0.2 + 0.5 * 0.1)
    assert ece([0.25, 0.75], [0, 1], bins=1) == pytest.approx(abs(0.5 - 0.5))
    assert ece([1.0, 0.0], [1, 0], bins=10) == 0.0  # perfectly confident and right


def test_brier_by_hand():
    assert brier([0.8, 0.3], [1, 0]) == pytest.approx((0.04 + 0.09) / 2)


def test_pairs_enter_in_both_orders():
    probs, labels = oriented([1.0, 0.0], [0.0, 0.0])
    assert list(labels) == [1, 1, 0, 0]
    assert probs[0] == pytest.approx(sigmoid(1.0)) and probs[2] == pytest.approx(sigmoid(-1.0))
    assert probs[1] == probs[3] == 0.5


def test_reward_model_metrics_on_a_small_split():
    chosen, rejected = [2.0, 1.0, 0.0], [0.0, 2.0, -1.0]  # margins 2, -1, 1
    m = reward_model_metrics(chosen, rejected, bins=10)
    assert m["pairs"] == 3 and m["accuracy"] == pytest.approx(2 / 3)
    # d = (2, -1, 1): AUC = P(d_i + d_j > 0) over all 9 (i, j) = 7/9 (only (-1,-1) < 0; (2,-1)... counted)
    d = [2, -1, 1]
    expected = sum((a + b > 0) + 0.5 * (a + b == 0) for a in d for b in d) / 9
    assert m["auc"] == pytest.approx(expected)
    probs = [sigmoid(x) for x in d]
    assert m["brier"] == pytest.approx(sum((1 - p) ** 2 for p in probs) / 3)
    perfect = reward_model_metrics([10.0] * 4, [-10.0] * 4)
    assert perfect["accuracy"] == 1.0 and perfect["auc"] == 1.0 and perfect["brier"] < 1e-6 and perfect["ece"] < 1e-4
