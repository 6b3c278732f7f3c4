"""The evaluation statistics on hand-made cases: ties count half, a pair judged in both orders wins
or loses only when the orders agree, per-principle rates, bootstrap intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlhf.eval import stats
from rlhf.eval.pairwise import PairVerdict, summarise
from rlhf.prefs.judge import PRINCIPLES


def test_ties_count_half():
    outcomes = [stats.WIN, stats.WIN, stats.TIE, stats.LOSS]  # (1 + 1 + 0.5 + 0) / 4
    assert stats.win_rate(outcomes).mean == pytest.approx(0.625)
    assert stats.counts(outcomes) == {"wins": 2, "ties": 1, "losses": 1}
    assert stats.win_rate([stats.TIE] * 5).mean == 0.5


def test_scores_to_outcomes():
    assert stats.outcome_from_scores(1.0, 0.5) == stats.WIN
    assert stats.outcome_from_scores(0.5, 1.0) == stats.LOSS
    assert stats.outcome_from_scores(0.7, 0.7) == stats.TIE
    assert stats.outcome_from_scores(0.70, 0.71, tol=0.05) == stats.TIE


@pytest.mark.parametrize("policy_as_a, policy_as_b, expected", [
    ("A", "B", stats.WIN),    # both orders prefer the policy
    ("B", "A", stats.LOSS),   # both orders prefer the reference
    ("A", "A", stats.TIE),    # the judge always picks position A: position bias -> tie
    ("B", "B", stats.TIE),    # always position B -> tie
    ("A", "tie", stats.TIE),  # one order undecided -> tie
    ("tie", "tie", stats.TIE),
])
def test_position_swap(policy_as_a, policy_as_b, expected):
    assert stats.swap_outcome(policy_as_a, policy_as_b) == expected


def test_a_judge_that_always_picks_position_a_gives_fifty_percent():
    pairs = [(PairVerdict({k: "A" for k in PRINCIPLES + ("overall",)}),
              PairVerdict({k: "A" for k in PRINCIPLES + ("overall",)})) for _ in range(10)]
    result = summarise(pairs, samples=200)
    assert result["win_rate"]["mean"] == 0.5 and result["ties"] == 10 and result["position_consistent"] == 0


def test_per_principle_rates_and_unscored_pairs():
    def verdict(overall, empathy, rest="tie"):
        return PairVerdict({**{k: rest for k in PRINCIPLES}, "empathy": empathy, "overall": overall})

    pairs = [
        (verdict("A", "A"), verdict("B", "B")),        # win overall, win on empathy
        (verdict("A", "B"), verdict("B", "A")),        # win overall, loss on empathy
        (verdict("B", "A"), verdict("B", "B")),        # orders disagree overall -> tie; empathy win
        (verdict("A", "A"), PairVerdict(None, "no JSON object in the answer (after 3 attempt(s))", 3)),
        (None, verdict("A", "A")),
    ]
    result = summarise(pairs, samples=200)
    assert (result["wins"], result["ties"], result["losses"]) == (2, 1, 0)
    assert result["win_rate"]["mean"] == pytest.approx(2.5 / 3) and result["win_rate"]["n"] == 3
    assert result["per_principle"]["empathy"]["mean"] == pytest.approx(2 / 3)  # win, loss, win
    assert result["per_principle"]["safety"]["mean"] == 0.5  # ties throughout
    assert result["unscored"] == 2  # never counted as anything
    assert result["unscored_reasons"] == {"no JSON object in the answer": 1, "not judged": 1}
    assert result["position_consistent"] == 2


def test_bootstrap_interval_properties():
    rng = np.random.default_rng(1)
    values = rng.integers(0, 2, size=200).astype(float)
    est = stats.bootstrap_ci(values, samples=2000, seed=3)
    assert est.lo < est.mean < est.hi and est.n == 200
    # close to the normal approximation for a proportion
    half = 1.96 * math.sqrt(est.mean * (1 - est.mean) / 200)
    assert est.hi - est.lo == pytest.approx(2 * half, rel=0.2)
    assert stats.bootstrap_ci(values, samples=2000, seed=3) == est  # deterministic for a seed
    continuous = rng.normal(size=50)
    assert stats.bootstrap_ci(continuous, seed=4) != stats.bootstrap_ci(continuous, seed=5)  # the seed matters
    narrow = stats.bootstrap_ci(values, samples=2000, confidence=0.5, seed=3)
    assert est.lo < narrow.lo <= narrow.hi < est.hi
    more = stats.bootstrap_ci(np.tile(values, 16), samples=2000, seed=3)  # 16x the data: about 1/4 the width
    assert (more.hi - more.lo) == pytest.approx((est.hi - est.lo) / 4, rel=0.25)


def test_bootstrap_edge_cases():
    empty = stats.bootstrap_ci([])
    assert empty.n == 0 and math.isnan(empty.mean)
    assert stats.bootstrap_ci([1.0]) == stats.Estimate(1.0, 1.0, 1.0, 1)
    same = stats.bootstrap_ci([0.5] * 7)
    assert (same.lo, same.mean, same.hi) == (0.5, 0.5, 0.5)
    assert stats.mean_with_interval([1, 2, 3, 4, 5], samples=500).mean == 3.0
