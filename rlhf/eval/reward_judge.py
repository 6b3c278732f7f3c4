"""The reward model as judge (the default when no principle judge is configured): the policy wins a
pair when the reward model scores its response above the reference's, ties when the scores are
equal; plus the mean reward of each side, with bootstrap intervals. The reward model sees one
response at a time, so there is no position to swap."""

from __future__ import annotations

from rlhf.eval import stats


def compare(
    policy_rewards: list[float], reference_rewards: list[float], valid: list[bool] | None = None, **bootstrap
) -> dict:
    """Win rate of policy over reference by reward, and mean rewards; `valid` marks pairs that have
    both responses (others are counted as unscored)."""
    valid = valid or [True] * len(policy_rewards)
    pairs = [(p, r) for p, r, ok in zip(policy_rewards, reference_rewards, valid) if ok]
    outcomes = [stats.outcome_from_scores(p, r) for p, r in pairs]
    return {
        "judge": "reward_model",
        "win_rate": stats.win_rate(outcomes, **bootstrap).as_dict(),
        **stats.counts(outcomes),
        "unscored": len(policy_rewards) - len(pairs),
        "policy_reward": stats.mean_with_interval([p for p, _ in pairs], **bootstrap).as_dict(),
        "reference_reward": stats.mean_with_interval([r for _, r in pairs], **bootstrap).as_dict(),
        "reward_gain": stats.mean_with_interval([p - r for p, r in pairs], **bootstrap).as_dict(),
    }


def score(scorer, speeches: list[str], responses: list[str]) -> list[float]:
    """Rewards of (speech, response) items through the run's scorer (reward actors or a /get_reward server)."""
    return list(scorer.score(list(zip(speeches, responses)))) if speeches else []
