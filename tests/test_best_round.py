"""The best online round by the dev metric (rlhf.eval.online.best_round), on crafted round records:
the best is not the last, ties break on the dev reward then the earlier round, rounds without a
dev evaluation do not count, and the safety gate keeps a regressed round out."""

from __future__ import annotations

import pytest

from rlhf.eval.online import best_round


def rounds(*dev: tuple[float, float] | None, regressed: tuple[int, ...] = ()) -> list[dict]:
    """Round records numbered from 1: (dev win rate, dev reward mean), or None for a round whose dev
    evaluation did not run (eval.every_rounds > 1)."""
    out = []
    for number, values in enumerate(dev, start=1):
        record = {"round": number, "checkpoint": f"policy_round_{number:03d}", "reward_mean": 0.1 * number}
        if values is not None:
            record.update(dev_win_rate=values[0], dev_reward_mean=values[1], safety_regressed=number in regressed)
        out.append(record)
    return out


def test_the_best_round_need_not_be_the_last():
    history = rounds((0.52, 0.1), (0.71, 0.3), (0.64, 0.4), (0.55, 0.5))
    assert best_round(history, "win_rate")["round"] == 2
    assert best_round(history, "reward")["round"] == 4  # the other metric picks another round
    assert best_round(list(reversed(history)), "win_rate")["round"] == 2  # by value, not by position


def test_a_later_round_wins_when_it_is_better():
    assert best_round(rounds((0.5, 0.1), (0.6, 0.2), (0.7, 0.3)), "win_rate")["round"] == 3


def test_ties_break_on_dev_reward_then_on_the_earlier_round():
    assert best_round(rounds((0.6, 0.1), (0.6, 0.4), (0.6, 0.2)), "win_rate")["round"] == 2
    assert best_round(rounds((0.5, 0.1), (0.6, 0.2), (0.6, 0.2)), "win_rate")["round"] == 2
    assert best_round(rounds((0.4, 0.3), (0.6, 0.3), (0.5, 0.3)), "reward")["round"] == 1


def test_rounds_without_a_dev_evaluation_do_not_count():
    # every_rounds=2: rounds 1 and 3 were not evaluated (their round reward is the highest: ignored)
    history = rounds(None, (0.55, 0.2), None, (0.53, 0.3))
    history[0]["reward_mean"] = history[2]["reward_mean"] = 9.0
    assert best_round(history, "win_rate")["round"] == 2
    assert best_round(rounds(None, None), "win_rate") is None
    assert best_round([], "reward") is None


def test_the_safety_gate_keeps_a_regressed_round_out():
    history = rounds((0.5, 0.1), (0.8, 0.5), (0.6, 0.2), regressed=(2,))
    assert best_round(history, "win_rate", safety_gate=True)["round"] == 3
    assert best_round(history, "win_rate", safety_gate=False)["round"] == 2  # gate off: regressions count
    assert best_round(rounds((0.5, 0.1), regressed=(1,)), "win_rate", safety_gate=True) is None


@pytest.mark.parametrize("metric", ["win_rate", "reward"])
def test_the_record_returned_is_the_round_s_own(metric):
    history = rounds((0.3, 0.2), (0.9, 0.9), (0.1, 0.1))
    best = best_round(history, metric)
    assert best is history[1] and best["checkpoint"] == "policy_round_002"
