"""online.save_state_every: the full ZeRO-3 training state is written every N rounds and after the
last, and a resumed run picks the latest one. A run of three rounds with N=2 stops in round 3 (an
error raised as its training starts); rerunning the same config resumes after round 2 (the saved
state), redoes round 3 only, and every round is recorded once. The trainers move their states to
host memory between rounds (device.zero.offload_states, as colocated GPU layouts do), so a round's
training reloads them, and the state is saved and loaded while they are offloaded."""

from __future__ import annotations

import json
import logging

import pytest
import ray

from rlhf.config import load_config
from rlhf.pipeline import Pipeline
from tests.conftest import compose


class Stop(RuntimeError):
    pass


def test_state_every_two_rounds_and_resume_from_the_latest(tiny_model_dir, tmp_path, caplog):
    run_dir = tmp_path / "run"
    overrides = [
        f"run_dir={run_dir}",
        "stage=online_dpo",
        f"model.path={tiny_model_dir}",
        "reward=python",
        "online.rounds=3",
        "online.save_state_every=2",
        "online.speeches_per_round=4",
        "online.samples_per_speech=2",
        "online.batch_size=4",
        "online.micro_batch=2",
        "online.min_reward_gap=0.0",
        "online.metric_pairs=0",
        "online.save_every_round=false",
        "model.max_response_len=16",
        "eval.every_rounds=0",
        "eval.outcome=false",
        "tracking.wandb=false",
        "device.zero.offload_states=true",
    ]

    def stop_in_round_3(round_number: int, phase: str) -> None:
        if round_number == 3 and phase == "train":
            raise Stop("stopped in round 3")

    first = Pipeline(load_config(compose(overrides)), {})
    first.phase_hook = stop_in_round_3
    try:
        with pytest.raises(Stop):
            first.execute()
        state = json.loads((run_dir / "state.json").read_text())
        assert state["progress"]["online_dpo"]["rounds_completed"] == 2  # round 1's state was never written
        assert [r["state_saved"] for r in state["results"]["rounds"]] == [False, True]
        saved = list((run_dir / "state" / "online_dpo").iterdir())
        assert [p.name for p in saved] == [state["progress"]["online_dpo"]["state_dir"]]

        with caplog.at_level(logging.INFO, logger="rlhf.stages.online_dpo"):
            results = Pipeline(load_config(compose(overrides)), {}).execute()
    finally:
        ray.shutdown()
    assert "online_dpo: resuming after round 2" in caplog.text
    assert results["trainer_offload"]["states"] and results["trainer_offload"]["bytes_per_rank"] > 0
    assert [(r["round"], r["state_saved"]) for r in results["rounds"]] == [(1, False), (2, True), (3, True)]
    state = json.loads((run_dir / "state.json").read_text())
    assert state["progress"]["online_dpo"]["rounds_completed"] == 3
    metrics = [json.loads(line)["round"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert metrics == [1, 2, 3]
