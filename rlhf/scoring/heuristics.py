"""A reward function for reward.source=python (conf/reward/python.yaml): a transparent heuristic,
not a learned preference. It rewards answers that invite the client to say more (a question) and
stay near a conversational length, and penalises empty ones. Useful to try the online rounds
without a reward model, and as the shape of a function of your own: it takes the items to score,
(client speech, response) pairs, and returns one float per item."""

from __future__ import annotations

TARGET_WORDS = 60  # a short spoken-style answer


def engaging_and_brief(items: list[tuple[str, str]]) -> list[float]:
    rewards = []
    for _, response in items:
        words = len(response.split())
        if not words:
            rewards.append(-2.0)
            continue
        asks = 1.0 if "?" in response else 0.0
        rewards.append(asks - abs(words - TARGET_WORDS) / TARGET_WORDS)
    return rewards
