"""The online rounds for real: Ray actors, a vLLM engine, DeepSpeed ZeRO-3 over 2 gloo ranks.
No mocks. Small data so the whole file takes a few minutes on 2 cores."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import ray
import torch

from rlhf.config import load_config
from rlhf.pipeline import Pipeline
from tests.conftest import REPO_ROOT, compose

SMALL = ["data.max_sft_examples=480", "data.max_pairs=96", "reward_training.eval_pairs=16",
         "online.speeches_per_round=16", "online.samples_per_speech=4", "online.min_reward_gap=0.0",
         "online.epochs=4"]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("e2e")
    run = load_config(compose([f"run_dir={run_dir}", "online.rounds=2", "tracking.wandb=false", *SMALL]))
    pipe = Pipeline(run, {})
    pipe.start()
    yield pipe
    pipe.shutdown()
    ray.shutdown()


def hf_greedy(model_dir: str, prompts: list[list[int]], max_tokens: int) -> list[list[int]]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    out = []
    for prompt in prompts:
        ids = model.generate(torch.tensor([prompt]), max_new_tokens=max_tokens, do_sample=False,
                             eos_token_id=model.config.eos_token_id, pad_token_id=model.config.pad_token_id)
        out.append(ids[0, len(prompt):].tolist())
    return out


def test_two_online_rounds_update_the_policy_and_the_generators(pipeline):
    pipeline.run_stage("sft")
    pipeline.run_stage("reward")
    controller = pipeline.prepare_online()
    generator = pipeline.ctx.generators.actors[0]
    prompts = [pipeline.ctx.encoder.prompt(q.speech.text) for q in pipeline.ctx.val_questions[:4]]

    before = ray.get(generator.greedy.remote(prompts, 24))
    for round_index in range(2):
        record = controller.run_round(round_index)
        assert record["pairs"] > 0, record
        # DPO on the round's own pairs raises the policy's log-prob margin of chosen over rejected
        assert record["logp_margin_after"] > record["logp_margin_before"], record
        assert record["implicit_reward_accuracy"] > 0.5, record
        assert set(record["seconds"]) >= {"generate", "score", "train", "weight_sync"}
    after = ray.get(generator.greedy.remote(prompts, 24))
    assert after != before, "greedy output did not change after the weight sync"

    # The generator now holds exactly the saved policy: its greedy tokens match transformers' on the checkpoint.
    checkpoint = record["checkpoint"]
    vllm_tokens = [s[0].token_ids for s in ray.get(generator.generate.remote(
        prompts[:2], n=1, temperature=0.0, top_p=1.0, max_tokens=12))]
    assert [t[:12] for t in vllm_tokens] == [t[:12] for t in hf_greedy(checkpoint, prompts[:2], 12)]


def run_launch(args: list[str], tmp: str | None = None) -> subprocess.CompletedProcess:
    # A short temp dir: Ray's unix socket paths must stay under 107 bytes.
    env = dict(os.environ, WANDB_MODE="offline", TMPDIR=tmp or tempfile.mkdtemp(prefix="rl", dir="/tmp"))
    env.pop("WANDB_API_KEY", None)
    return subprocess.run([sys.executable, "-m", "rlhf.launch", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


PII = ["jane.doe@example.com", "(555) 123-4567", "myblog.example.net", "@sadpanda99", "221 Baker Street"]


def data_with_pii(path: Path) -> Path:
    """The shipped counsel-chat file with personal details planted in every client question."""
    rows = list(csv.DictReader((REPO_ROOT / "data/counsel-chat/counsel_chat.csv").open(encoding="utf-8")))
    planted = (" You can e-mail me at jane.doe@example.com or call +1 (555) 123-4567, my blog is "
               "https://myblog.example.net/me and I am @sadpanda99, living at 221 Baker Street.")
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "questionText": planted + " " + row["questionText"]})
    return path


def files_outside_checkpoints(root: Path):
    for path in root.rglob("*"):
        if path.is_file() and "checkpoints" not in path.parts and "pairs" not in path.parts and "state" not in path.parts:
            yield path


def test_launch_runs_the_recipe_and_leaves_its_records(tmp_path):
    """The whole recipe through the CLI, on data with personal details planted in every speech:
    the records are complete, and no personal detail reaches W&B, logs or the console; the opt-in
    sample table carries only redacted text."""
    run_dir = tmp_path / "run"
    ray_tmp = tempfile.mkdtemp(prefix="rl", dir="/tmp")
    data = data_with_pii(tmp_path / "cc.csv")
    proc = run_launch([f"run_dir={run_dir}", f"data.path={data}", "online.rounds=1", "tracking.log_samples=4",
                       *SMALL], ray_tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "run summary" in proc.stdout

    leaks = [(str(path), secret) for path in [*files_outside_checkpoints(run_dir), *Path(ray_tmp).rglob("*")]
             if path.is_file() for secret in PII if secret.encode() in path.read_bytes()]
    leaks += [("console", secret) for secret in PII if secret in proc.stdout + proc.stderr]
    assert not leaks, leaks
    tables = list((run_dir / "wandb").rglob("*.table.json"))
    assert tables and "[EMAIL]" in tables[0].read_text() and "[ADDRESS]" in tables[0].read_text()
    assert "e-mail me at" in tables[0].read_text()  # the rest of the speech is there

    summary = json.loads((run_dir / "run_summary.json").read_text())
    assert summary["zero_stage"] == 3 and summary["trainer_ranks"] == 2
    assert summary["generation_engine"] == "vllm" and summary["generator_engines"] == 1
    assert summary["rounds_completed"] == 1 and summary["stages_completed"] == ["sft", "reward", "online_dpo"]
    for package in ("ray", "vllm", "deepspeed", "torch", "transformers"):
        assert summary["versions"][package]
    assert summary["config"]["online"]["rounds"] == 1

    (line,) = (run_dir / "metrics.jsonl").read_text().splitlines()
    record = json.loads(line)
    for key in ("reward_mean", "reward_std", "chosen_minus_rejected", "dpo_loss", "implicit_reward_accuracy",
                "kl_to_reference", "tokens_generated"):
        assert isinstance(record[key], (int, float)), key
    assert set(record["seconds"]) >= {"generate", "score", "train", "weight_sync"}

    # the dev-split evaluation ran inside the round, picked a best checkpoint and wrote its report
    assert 0.0 <= record["dev_win_rate_lo"] <= record["dev_win_rate"] <= record["dev_win_rate_hi"] <= 1.0
    assert record["dev_speeches"] > 0
    assert summary["online_dpo"]["best_checkpoint"].endswith("policy_round_001")
    report = (run_dir / "eval" / "report.md").read_text()
    assert "Judge: the reward model" in report and "best round 1" in report
    assert (run_dir / "eval" / "winrate_per_round.png").stat().st_size > 1000
    assert "dev eval      : best round 1" in proc.stdout

    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    for name in ("sft", "policy_round_001"):
        AutoModelForCausalLM.from_pretrained(run_dir / "checkpoints" / name)
        assert AutoTokenizer.from_pretrained(run_dir / "checkpoints" / name).chat_template
    reward = AutoModelForSequenceClassification.from_pretrained(run_dir / "checkpoints" / "reward_model")
    assert reward.config.num_labels == 1 and reward.config.value_head_prefix == "score"
    assert list((run_dir / "wandb").glob("offline-run-*")), "no offline W&B run"
    assert summary["wandb"] and "offline-run" in summary["wandb"]


def test_launch_reports_a_config_mistake_without_a_traceback(tmp_path):
    proc = run_launch([f"run_dir={tmp_path}/r", "online.batch_size=10"])
    assert proc.returncode == 2
    assert "online.batch_size=10 must be a multiple" in proc.stderr
    assert "Traceback" not in proc.stderr
