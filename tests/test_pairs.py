"""Best-vs-worst pair selection: ties, margins, identical texts."""

from rlhf.data.records import Speech
from rlhf.pairs import select_pairs

S = [Speech("a", "speech a"), Speech("b", "speech b"), Speech("c", "speech c")]


def test_highest_is_chosen_lowest_is_rejected():
    pairs, stats = select_pairs(S[:1], [["x", "y", "z"]], [[0.5, 2.0, -1.0]], min_gap=0.0)
    assert [(p.chosen, p.rejected) for p in pairs] == [("y", "z")]
    assert (pairs[0].chosen_score, pairs[0].rejected_score) == (2.0, -1.0)
    assert stats.pairs == 1 and stats.dropped == 0


def test_all_tied_rewards_give_no_pair_even_with_zero_margin():
    pairs, stats = select_pairs(S[:1], [["x", "y"]], [[1.0, 1.0]], min_gap=0.0)
    assert pairs == [] and stats.dropped_small_gap == 1


def test_ties_at_the_top_pick_the_earliest_sample():
    pairs, _ = select_pairs(S[:1], [["x", "y", "z"]], [[3.0, 3.0, 0.0]], min_gap=0.0)
    assert pairs[0].chosen == "x" and pairs[0].rejected == "z"


def test_gap_below_margin_is_dropped_and_counted():
    pairs, stats = select_pairs(S, [["x", "y"], ["x", "y"], ["x", "y"]],
                                [[1.0, 0.9], [1.0, 0.0], [0.0, 0.5]], min_gap=0.5)
    assert [(p.speech.id, p.chosen) for p in pairs] == [("b", "x"), ("c", "y")]
    assert stats.dropped_small_gap == 1 and stats.pairs == 2 and stats.speeches == 3


def test_identical_texts_are_dropped_and_counted():
    pairs, stats = select_pairs(S[:1], [["same", "same "]], [[1.0, 0.0]], min_gap=0.0)
    assert pairs == [] and stats.dropped_identical == 1
