"""Best-vs-worst pair selection: ties, margins, identical texts."""

from rlhf.data.records import Speech
from rlhf.pairs.online import select_pairs

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


def test_reject_only_never_chooses_a_cut_response_but_may_reject_it():
    # the cut response y has the highest reward: x (finished) is chosen instead, z (lowest) rejected
    pairs, stats = select_pairs(S[:1], [["x", "y", "z"]], [[0.5, 2.0, -1.0]], min_gap=0.0,
                                finished=[[True, False, True]], truncated="reject_only")
    assert [(p.chosen, p.rejected) for p in pairs] == [("x", "z")]
    assert stats.truncated == 1
    # a cut response with the lowest reward is the rejected one
    pairs, _ = select_pairs(S[:1], [["x", "y", "z"]], [[0.5, -2.0, -1.0]], 0.0, [[True, False, True]])
    assert [(p.chosen, p.rejected) for p in pairs] == [("x", "y")]
    assert (pairs[0].chosen_index, pairs[0].rejected_index) == (0, 1)


def test_a_speech_whose_responses_were_all_cut_gives_no_pair():
    pairs, stats = select_pairs(S[:1], [["x", "y"]], [[0.5, 2.0]], min_gap=0.0,
                                finished=[[False, False]], truncated="reject_only")
    assert pairs == [] and stats.dropped_unfinished == 1 and stats.truncated == 2


def test_drop_leaves_cut_responses_out_and_keep_ranks_them_by_reward():
    done = [[True, False, True]]
    pairs, _ = select_pairs(S[:1], [["x", "y", "z"]], [[0.5, 2.0, -1.0]], 0.0, done, truncated="drop")
    assert [(p.chosen, p.rejected) for p in pairs] == [("x", "z")]
    pairs, _ = select_pairs(S[:1], [["x", "y", "z"]], [[0.5, 2.0, -1.0]], 0.0, done, truncated="keep")
    assert [(p.chosen, p.rejected) for p in pairs] == [("y", "z")]


def test_sample_indices_count_across_the_round():
    pairs, _ = select_pairs(S[:2], [["a", "b"], ["c", "d"]], [[0.0, 1.0], [2.0, 0.0]], min_gap=0.0)
    assert [(p.chosen_index, p.rejected_index) for p in pairs] == [(1, 0), (2, 3)]
