"""Reward sources behind one protocol (rlhf.scoring.sources): each checks its own config, says how
many reward actors the layout places, starts a scorer and names what it scores with."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rlhf.config import ConfigError, load_config
from rlhf.layout import reward_actors
from rlhf.scoring.sources import SOURCES, load_function, source_of
from tests.conftest import compose

ITEMS = [("I can't sleep.", "That sounds hard. What keeps you up at night?"), ("I feel alone.", "")]


def test_every_source_is_a_config_option():
    run = load_config(compose(["reward=python"]))
    assert run.reward.source == "python" and set(SOURCES) == {"local", "remote", "python"}
    assert load_config(compose(["reward=remote"])).reward.url


@pytest.mark.parametrize("overrides, message", [
    (["reward.source=python", "reward.function=null"], "reward.source=python needs reward.function"),
    (["reward=python", "reward.function=no_such_module:f"], "cannot be imported (ModuleNotFoundError"),
    (["reward=python", "reward.function=rlhf.scoring.heuristics:missing"], "cannot be imported (AttributeError"),
    (["reward.source=carrier_pigeon"], "reward.source='carrier_pigeon' must be one of local, remote, python"),
])
def test_each_source_checks_its_own_config(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(compose(overrides))


def test_only_the_local_source_places_reward_actors():
    assert reward_actors(load_config(compose([]))) == 1
    assert reward_actors(load_config(compose(["reward=python"]))) == 0
    assert reward_actors(load_config(compose(["reward=remote"]))) == 0


def test_a_python_function_scores_in_process():
    run = load_config(compose(["reward=python"]))
    ctx = SimpleNamespace(run=run)
    source = source_of(run)
    scorer = source.start(ctx)
    rewards = scorer.score(ITEMS)
    assert rewards == load_function(run.reward.function)(ITEMS) and rewards[0] > rewards[1] == -2.0
    assert source.describe(ctx) == "rlhf.scoring.heuristics:engaging_and_brief" and source.available(ctx)
    assert scorer.recover(RuntimeError("boom")) is False


def test_a_function_returning_the_wrong_number_of_rewards_is_an_error(monkeypatch):
    import rlhf.scoring.heuristics as heuristics

    monkeypatch.setattr(heuristics, "engaging_and_brief", lambda items: [0.0])
    scorer = source_of(load_config(compose(["reward=python"]))).start(
        SimpleNamespace(run=load_config(compose(["reward=python"]))))
    with pytest.raises(ValueError, match="returned 1 rewards for 2 items"):
        scorer.score(ITEMS)
