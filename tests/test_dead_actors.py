"""Kill a generator, a reward actor and a trainer rank (SIGKILL by PID) in the middle of online
rounds: the run restarts them, redoes only the unfinished phase, completes, and records the events.

Slow (actor restarts of a few tens of seconds each): `make test-slow`."""

from __future__ import annotations

import json
import os
import signal

import pytest
import ray

from rlhf.config import load_config
from rlhf.pipeline import Pipeline
from tests.conftest import compose

pytestmark = pytest.mark.slow


def test_dead_actors_are_recovered_and_the_rounds_complete(tmp_path):
    run = load_config(compose([
        f"run_dir={tmp_path}", "online.rounds=2", "tracking.wandb=false", "data.max_sft_examples=96",
        "data.max_pairs=64", "reward_training.eval_pairs=8", "online.speeches_per_round=8",
        "online.min_reward_gap=0.0"]))
    pipe = Pipeline(run, {})
    victims = {(1, "generate"): lambda: pipe.ctx.generators.where()[0]["pid"],
               (1, "score"): lambda: pipe.ctx.scorer.group.where()[0]["pid"],
               (2, "train"): lambda: pipe.ctx.trainers.group.where()[1]["pid"]}
    killed = []

    def hook(round_number: int, phase: str) -> None:
        victim = victims.pop((round_number, phase), None)
        if victim:
            os.kill(victim(), signal.SIGKILL)
            killed.append((round_number, phase))

    pipe.phase_hook = hook
    try:
        pipe.start()
        for stage in run.stages:
            pipe.run_stage(stage)
    finally:
        pipe.shutdown()
        ray.shutdown()

    assert killed == [(1, "generate"), (1, "score"), (2, "train")]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in records] == [1, 2]
    assert [e["phase"] for e in records[0]["recoveries"]] == ["generate", "score"]
    assert [e["phase"] for e in records[1]["recoveries"]] == ["train"]
    assert records[1]["logp_margin_after"] > records[1]["logp_margin_before"]
    assert pipe.results["trainer_recoveries"] == 1
