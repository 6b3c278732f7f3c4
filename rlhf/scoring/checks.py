"""Checks of the reward-source section (reward) before any actor starts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlhf.choices import Stage

if TYPE_CHECKING:
    from rlhf.config import RunConfig

SOURCES = ("local", "remote")


def validate_reward(run: RunConfig) -> list[str]:
    errors = []
    reward = run.reward
    if reward.source not in SOURCES:
        errors.append(f"reward.source={reward.source!r} must be local or remote")
    if reward.source == "remote" and not reward.url:
        errors.append("reward.source=remote needs reward.url (e.g. http://127.0.0.1:5000/get_reward)")
    needs_model = Stage.online_dpo in run.stages and Stage.reward not in run.stages
    if needs_model and reward.source == "local" and not reward.path:
        errors.append("stage=online_dpo without the reward stage needs reward.path (a reward-model checkpoint) "
                      "or reward=remote")
    return errors
