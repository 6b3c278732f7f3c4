"""The reward and offline DPO stages trained on a PsychoCounsel-Preference Parquet file
(data.preference_path) on the trainer group for real: Ray, DeepSpeed ZeRO-3 over 2 gloo ranks, from
the tiny model. The file's first 5% is held out; the rest is trained on, every pair of it."""

from __future__ import annotations

import json
import statistics

import pytest
import torch

from tests.conftest import compose
from tests.test_preference_parquet import write_preference_file

PAIRS, HELD_OUT = 48, 2  # 5% of 48, at least one
BATCH = 8


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory) -> dict:
    """stage=offline_dpo on the file, with the reward stage run first on the same file in the same
    trainer group (one Ray start for both; each stage is the code `stage=reward` and
    `stage=offline_dpo` run). Ray is down again before any test runs."""
    import ray

    from rlhf.config import load_config
    from rlhf.pipeline import Pipeline

    tmp = tmp_path_factory.mktemp("pref-stages")
    pairs = write_preference_file(tmp / "train.parquet", PAIRS)
    run_dir = tmp / "run"
    run = load_config(compose([f"run_dir={run_dir}", "stage=offline_dpo", f"model.path={tiny_model_dir}",
                               f"data.preference_path={tmp / 'train.parquet'}", f"reward_training.batch_size={BATCH}",
                               "reward_training.micro_batch=4", f"offline.batch_size={BATCH}", "offline.epochs=2",
                               "tracking.wandb=false"]))
    pipe = Pipeline(run, {})
    try:
        ctx = pipe.start()
        pipe.run_stage("reward")
        pipe.run_stage("offline_dpo")
        encoder = ctx.encoder
    finally:
        pipe.shutdown()
        ray.shutdown()
    steps = [json.loads(line) for line in (run_dir / "train_steps.jsonl").read_text().splitlines()]
    return {"results": pipe.results, "pairs": pairs, "encoder": encoder, "steps": steps, "start": tiny_model_dir}


def test_the_reward_stage_trains_on_every_pair_of_the_file(trained):
    result = trained["results"]["reward_model"]
    assert result["pairs"] == "data.preference_path" and result["pair_derivation"] is None
    assert (result["train_pairs"], result["val_pairs"]) == (PAIRS - HELD_OUT, HELD_OUT)
    assert [s["step"] for s in trained["steps"] if s["stage"] == "reward"] == list(range(-(-(PAIRS - HELD_OUT) // BATCH)))


def test_the_reward_models_scores_are_normalised_by_what_it_stored(trained):
    """The checkpoint's mean/std are its training rewards' (scored by the trainer group), so the
    scorer that serves it gives those answers z-scores: the same tokens, the same model."""
    from rlhf.scoring.reward_actor import RewardScorer

    result, encoder = trained["results"]["reward_model"], trained["encoder"]
    scorer = RewardScorer(result["checkpoint"], device_type="cpu", threads=1, dtype="float32", batch_size=8,
                          system_prompt=encoder.system_prompt, max_prompt_len=encoder.max_prompt_len,
                          max_response_len=encoder.max_response_len)
    assert (scorer.mean, scorer.std) == (result["mean"], result["std"])
    train = trained["pairs"][HELD_OUT:]
    scores = scorer.score([(p.speech.text, p.chosen) for p in train] + [(p.speech.text, p.rejected) for p in train])
    assert statistics.fmean(scores) == pytest.approx(0.0, abs=1e-3)
    assert statistics.pstdev(scores) == pytest.approx(1.0, abs=1e-3)
    held_out = trained["pairs"][:HELD_OUT]
    chosen = scorer.score([(p.speech.text, p.chosen) for p in held_out])
    rejected = scorer.score([(p.speech.text, p.rejected) for p in held_out])
    assert statistics.fmean(float(c > r) for c, r in zip(chosen, rejected)) == result["val_accuracy"]


def response_logp(model, prompt: list[int], response: list[int]) -> float:
    ids = torch.tensor([prompt + response])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt) - 1 : -1]
    return logits.log_softmax(-1).gather(1, torch.tensor(response)[:, None]).sum().item()


def test_offline_dpo_moves_the_policy_towards_the_files_chosen_answers(trained):
    from transformers import AutoModelForCausalLM

    result = trained["results"]["offline_dpo"]
    assert result["pairs"] == PAIRS - HELD_OUT
    steps = [s for s in trained["steps"] if s["stage"] == "offline_dpo"]
    assert [s["step"] for s in steps] == list(range(2 * -(-(PAIRS - HELD_OUT) // BATCH)))
    start = AutoModelForCausalLM.from_pretrained(trained["start"], dtype=torch.float32).eval()
    tuned = AutoModelForCausalLM.from_pretrained(result["checkpoint"], dtype=torch.float32).eval()
    encoder, rises = trained["encoder"], []
    for pair in trained["pairs"][HELD_OUT:]:
        encoded = encoder.pair(pair.speech.text, pair.chosen, pair.rejected)
        margin = [response_logp(m, encoded.prompt, encoded.chosen) - response_logp(m, encoded.prompt, encoded.rejected)
                  for m in (start, tuned)]
        rises.append(margin[1] - margin[0])
    # DPO's implicit reward: the log-ratio of chosen over rejected rose, on most training pairs
    assert statistics.fmean(rises) > 0 and sum(r > 0 for r in rises) > len(rises) / 2, rises
