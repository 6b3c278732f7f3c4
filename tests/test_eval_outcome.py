"""The outcome's guards, by hand: distinct-2, repetition, truncation, length, and the goals."""

from __future__ import annotations

import pytest

from rlhf.data.records import Speech
from rlhf.eval.outcome import check_goals, distinct_n, guards, held_out, repetition_rate
from rlhf.generation.vllm_generator import Sample


def test_distinct_two_counts_unique_bigrams_over_all_answers():
    assert distinct_n([[1, 2, 3], [1, 2, 4]]) == pytest.approx(3 / 4)  # (1,2) twice, (2,3), (2,4)
    assert distinct_n([[5]]) == 0.0


def test_repetition_rate_is_the_share_of_repeated_four_grams():
    assert repetition_rate([1, 2, 3, 4, 5, 6]) == 0.0
    assert repetition_rate([1, 2, 3, 4] * 3) == pytest.approx(1 - 4 / 9)  # 9 four-grams, 4 distinct


def test_guards_of_a_policy_s_answers():
    answers = [Sample("a", [1, 2, 3, 4], True), Sample("b", [1, 2, 1, 2, 1, 2], False)]
    g = guards(answers)
    assert g["mean_tokens"] == 5 and g["truncated_share"] == 0.5
    assert g["repetition_rate"] == pytest.approx((0 + (1 - 2 / 3)) / 2)


def test_goals_say_which_were_missed():
    out = {"win_rate": 0.72, "length_ratio": 1.3, "distinct2_start": 0.5, "distinct2_final": 0.48}
    goals = check_goals(out)
    assert goals["win_rate_met"] and not goals["length_ratio_met"] and goals["distinct2_met"]
    assert not goals["all_met"] and goals["distinct2_drop"] == pytest.approx(0.04)
    assert not check_goals({**out, "length_ratio": 1.0, "distinct2_final": 0.4})["distinct2_met"]  # a 20% drop


def test_held_out_speeches_are_the_dev_split_then_val_each_once():
    a, b, c = Speech("1", "x"), Speech("2", "y"), Speech("3", "z")
    assert [s.id for s in held_out([a, b], [b, c])] == ["1", "2", "3"]
