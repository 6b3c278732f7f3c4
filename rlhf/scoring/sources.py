"""Where rewards come from (`reward.source`): one protocol, a registry of sources.

A source checks its part of the config before anything starts, says how many reward actors the
layout must place and whether it can score in this run (a local source needs a checkpoint), starts
a scorer, and names what it scores with. A scorer has
`score([(speech, response), ...]) -> [reward, ...]`, `recover(error) -> bool` (after an actor died:
restore and say True, or False when the error is not one it can recover from) and `shutdown()`.

    local   reward-model checkpoints in Ray actors (ours or OpenRLHF's format)
    remote  a server speaking OpenRLHF's /get_reward API
    python  a function given by dotted path, 'package.module:function', called in this process

A new source is a class with these methods, added to SOURCES (CONTRIBUTING.md walks through it).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rlhf.choices import JudgeBackend, Stage

if TYPE_CHECKING:
    from rlhf.config import RunConfig
    from rlhf.stages.context import RunContext


class Scorer(Protocol):
    def score(self, items: list[tuple[str, str]]) -> list[float]: ...

    def recover(self, error: Exception) -> bool: ...

    def shutdown(self) -> None: ...


class RewardSource(Protocol):
    def check(self, run: RunConfig) -> list[str]: ...

    def actors(self, run: RunConfig) -> int: ...

    def available(self, ctx: RunContext) -> bool: ...

    def start(self, ctx: RunContext) -> Scorer: ...

    def describe(self, ctx: RunContext) -> str: ...


def needs_stored_model(run: RunConfig) -> bool:
    """Rewards are needed from a model this run does not train: online rounds without the reward
    stage, or stage=eval judged by the reward model without eval.run (whose reward_model it uses)."""
    online = Stage.online_dpo in run.stages and Stage.reward not in run.stages
    evaluating = run.stage == Stage.eval and run.eval.judge.backend == JudgeBackend.reward and not run.eval.run
    return online or evaluating


class LocalSource:
    """Reward-model checkpoints loaded into cluster.reward.actors Ray actors."""

    def check(self, run: RunConfig) -> list[str]:
        if not run.reward.path and needs_stored_model(run):
            if run.stage == Stage.eval:
                return [
                    "stage=eval with the reward model as judge needs reward.path, eval.run (its reward_model) "
                    "or another reward.source"
                ]
            return [
                "stage=online_dpo without the reward stage needs reward.path (a reward-model checkpoint) or "
                "another reward.source (e.g. reward=remote)"
            ]
        return []

    def actors(self, run: RunConfig) -> int:
        return run.cluster.reward.actors

    def available(self, ctx: RunContext) -> bool:
        return bool(self.model(ctx))

    def start(self, ctx: RunContext) -> Scorer:
        from rlhf.data.errors import DataError
        from rlhf.paths import resolve_path
        from rlhf.scoring.scorers import ActorScorer
        from rlhf.workers.factory import reward_group, started

        reward_dir = str(resolve_path(self.model(ctx)))
        if not Path(reward_dir, "config.json").exists():
            raise DataError(
                reward_dir,
                "not a reward-model checkpoint (no config.json)",
                hint="set reward.path to a directory written by the reward stage or OpenRLHF",
            )
        group = reward_group(ctx.run, reward_dir, placement=ctx.shared_placement)
        started(group, "reward actors", method="__ray_ready__")
        ctx.placement("reward", group.where())
        return ActorScorer(group)

    def model(self, ctx: RunContext) -> str:
        return ctx.run.reward.path or ctx.reward_dir

    def describe(self, ctx: RunContext) -> str:
        return str(self.model(ctx))


class RemoteSource:
    """A /get_reward server (OpenRLHF's HTTP API); texts are built with the policy's chat template."""

    def check(self, run: RunConfig) -> list[str]:
        return (
            [] if run.reward.url else ["reward.source=remote needs reward.url (e.g. http://127.0.0.1:5000/get_reward)"]
        )

    def actors(self, run: RunConfig) -> int:
        return 0

    def available(self, ctx: RunContext) -> bool:
        return True

    def start(self, ctx: RunContext) -> Scorer:
        from rlhf.errors import ConfigError
        from rlhf.scoring.remote import RemoteRewardClient
        from rlhf.scoring.scorers import RemoteScorer

        reward = ctx.run.reward
        api_key = None
        if reward.api_key_env:
            api_key = os.environ.get(reward.api_key_env)
            if not api_key:
                raise ConfigError(f"reward.api_key_env: environment variable {reward.api_key_env} is not set")
        client = RemoteRewardClient(
            reward.url,
            batch_size=reward.batch_size,
            timeout_s=reward.timeout_s,
            retries=reward.retries,
            api_key=api_key,
        )
        return RemoteScorer(client, ctx.encoder)

    def describe(self, ctx: RunContext) -> str:
        return str(ctx.run.reward.url)


class PythonSource:
    """A function named by reward.function ('package.module:function'), called in this process with
    the items to score; it returns one float per item (a rule, a heuristic, a client of your own)."""

    def check(self, run: RunConfig) -> list[str]:
        if not run.reward.function:
            return ["reward.source=python needs reward.function ('package.module:function')"]
        try:
            function = load_function(run.reward.function)
        except (ImportError, AttributeError, ValueError) as err:
            return [f"reward.function={run.reward.function!r} cannot be imported ({type(err).__name__}: {err})"]
        return [] if callable(function) else [f"reward.function={run.reward.function!r} is not callable"]

    def actors(self, run: RunConfig) -> int:
        return 0

    def available(self, ctx: RunContext) -> bool:
        return True

    def start(self, ctx: RunContext) -> Scorer:
        return FunctionScorer(ctx.run.reward.function)

    def describe(self, ctx: RunContext) -> str:
        return str(ctx.run.reward.function)


class FunctionScorer:
    def __init__(self, path: str):
        self.path, self.function = path, load_function(path)

    def score(self, items: list[tuple[str, str]]) -> list[float]:
        rewards = [float(r) for r in self.function(list(items))]
        if len(rewards) != len(items):
            raise ValueError(f"reward.function {self.path} returned {len(rewards)} rewards for {len(items)} items")
        return rewards

    def recover(self, error: Exception) -> bool:
        return False  # nothing to restart: the error is the function's

    def shutdown(self) -> None:
        pass


SOURCES: dict[str, RewardSource] = {"local": LocalSource(), "remote": RemoteSource(), "python": PythonSource()}


def source_of(run: RunConfig) -> RewardSource:
    return SOURCES[run.reward.source]


def validate_reward(run: RunConfig) -> list[str]:
    """Checks of the reward section: a known source, and what that source needs."""
    if run.reward.source not in SOURCES:
        return [f"reward.source={run.reward.source!r} must be one of {', '.join(SOURCES)}"]
    return source_of(run).check(run)


def load_function(path: str):
    """'package.module:function' (or 'package.module.function') -> the function."""
    module, _, name = path.rpartition(":") if ":" in path else path.rpartition(".")
    if not module or not name:
        raise ValueError("expected 'package.module:function'")
    return getattr(importlib.import_module(module), name)
