"""The online rounds with sync.method=collective and a tensor-parallel-2 engine, killing the engine
and a trainer rank (SIGKILL by PID) mid-round: each recovery rebuilds the broadcast group (the
restarted engine's two workers, the rebuilt trainer group's rank 0), the rounds complete, and the
engine ends with the saved policy's weights (greedy tokens equal transformers' on the checkpoint).

Slow (an engine restart and a trainer rebuild): `make test-slow`."""

from __future__ import annotations

import json
import os
import signal

import pytest
import ray

from rlhf.config import load_config
from rlhf.pipeline import Pipeline
from tests.conftest import compose
from tests.test_sync_collective import engine_greedy, hf_greedy

pytestmark = pytest.mark.slow


def test_collective_sync_recovers_a_dead_engine_and_a_dead_trainer_rank(tmp_path):
    run = load_config(compose([
        f"run_dir={tmp_path}", "online.rounds=2", "tracking.wandb=false", "data.max_sft_examples=96",
        "data.max_pairs=64", "reward_training.eval_pairs=8", "online.speeches_per_round=8",
        "online.min_reward_gap=0.0", "online.truncated=keep", "eval.every_rounds=0", "eval.outcome=false",
        "sync.method=collective", "cluster.generator.tensor_parallel=2"]))
    pipe = Pipeline(run, {})
    victims = {(1, "generate"): lambda: pipe.ctx.generators.where()[0]["pid"],
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
        prompts = [pipe.ctx.encoder.prompt(q.speech.text) for q in pipe.ctx.val_questions[:2]]
        synced = engine_greedy(pipe, prompts)
        sync = pipe.ctx.generators.sync
    finally:
        pipe.shutdown()
        ray.shutdown()

    assert killed == [(1, "generate"), (2, "train")]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [[e["phase"] for e in r["recoveries"]] for r in records] == [["generate"], ["train"]]
    assert pipe.results["trainer_recoveries"] == 1
    assert sync.groups_built == 3  # at start, after the engine restart, after the trainer rebuild
    assert pipe.results["weight_sync"]["workers_per_engine"] == [2]
    assert synced == hf_greedy(records[-1]["checkpoint"], prompts)
