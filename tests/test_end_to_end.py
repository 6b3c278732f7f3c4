"""The online rounds for real: Ray actors, a vLLM engine, DeepSpeed ZeRO-3 over 2 gloo ranks.
No mocks. Small data so the whole file takes a few minutes on 2 cores: the in-process rounds start
from the session's SFT policy and reward model (tests/conftest.py), and only the CLI test runs the
whole recipe."""

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
from rlhf.data.counsel_chat import read_questions
from rlhf.pipeline import Pipeline
from tests import text_leaks
from tests.conftest import REPO_ROOT, SMALL, compose

__all__ = ["SMALL", "run_launch"]  # other test modules import them from here
ROUNDS = 2


def hf_greedy(model_dir: str, prompts: list[list[int]], max_tokens: int) -> list[list[int]]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    out = []
    for prompt in prompts:
        ids = model.generate(torch.tensor([prompt]), max_new_tokens=max_tokens, do_sample=False,
                             eos_token_id=model.config.eos_token_id, pad_token_id=model.config.pad_token_id)
        out.append(ids[0, len(prompt):].tolist())
    return out


@pytest.fixture(scope="module")
def online(trained_models, tmp_path_factory) -> dict:
    """stage=online_dpo for two rounds, in this process, from the session's SFT policy and reward
    model. What the tests check of the live actors (ZeRO-3 partitions, the engine, its greedy
    tokens) is read while they are up; then Ray is torn down before any test runs, so nothing of
    this run holds memory while the CLI test starts its own."""
    run_dir = tmp_path_factory.mktemp("online")
    # the dev split, cut to 16 speeches, picks the best round; outcome and safety probes: the CLI test.
    # Weights sharded as on GPUs (a CPU's default keeps them whole on every rank): every gather runs.
    run = load_config(compose([f"run_dir={run_dir}", f"online.rounds={ROUNDS}", "tracking.wandb=false",
                               "device.zero.param_persistence_threshold=0",
                               "eval.outcome=false", "eval.safety.enabled=false", "eval.dev_max_speeches=16",
                               *trained_models.online_overrides()]))
    pipe = Pipeline(run, {})
    try:
        pipe.start()
        pipe.run_stage("online_dpo")
        generator = pipe.ctx.generators.actors[0]
        prompts = [pipe.ctx.encoder.prompt(q.speech.text) for q in pipe.ctx.val_questions[:4]]
        facts = {
            "run": run,
            "run_dir": run_dir,
            "results": json.loads(json.dumps(pipe.results, default=str)),
            "prompts": prompts,
            "partitions": ray.get([rank.partitions.remote() for rank in pipe.ctx.trainers.actors]),
            "engine": ray.get(generator.info.remote()),
            "requests_served": ray.get(generator.requests_served.remote()),
            "engine_greedy": [s[0].token_ids for s in ray.get(generator.generate.remote(
                prompts, n=1, temperature=0.0, top_p=1.0, max_tokens=12))],
        }
    finally:
        pipe.shutdown()
        ray.shutdown()
    return facts


def test_two_online_rounds_train_the_policy_and_the_engine_serves_it(online, trained_models):
    records = online["results"]["rounds"]
    assert [r["round"] for r in records] == list(range(1, ROUNDS + 1))
    for record in records:
        assert record["pairs"] > 0, record
        # DPO on the round's own pairs raises the policy's log-prob margin of chosen over rejected
        assert record["logp_margin_after"] > record["logp_margin_before"], record
        assert record["implicit_reward_accuracy"] > 0.5, record
        assert set(record["seconds"]) >= {"generate", "score", "train", "weight_sync"}

    # The engine now holds exactly the final policy: its greedy tokens match transformers' on the
    # last checkpoint, and the rounds moved that policy away from the SFT model it started from.
    prompts, final = online["prompts"], records[-1]["checkpoint"]
    assert [t[:12] for t in online["engine_greedy"][:2]] == hf_greedy(final, online["prompts"][:2], 12)
    assert hf_greedy(final, prompts, 24) != hf_greedy(str(trained_models.sft), prompts, 24), \
        "greedy output did not change over the rounds"


VLLM_LLM = "vllm.entrypoints.llm.LLM"  # vLLM's offline engine class (importing vllm here would take seconds)


def test_the_engine_that_generated_is_a_vllm_llm(online):
    assert online["engine"]["engine"] == VLLM_LLM
    assert online["results"]["generators"][0]["engine"] == online["engine"]["engine"]
    assert online["engine"]["pid"] == online["results"]["generators"][0]["pid"]  # the engine of the rounds
    # it took every round's prompts (and the dev split's answers): the rounds were generated there
    online_cfg = online["run"].online
    assert online["requests_served"] >= ROUNDS * online_cfg.speeches_per_round + 4


def test_each_trainer_rank_holds_a_zero3_partition_of_every_parameter(online, trained_models):
    from transformers import AutoModelForCausalLM

    reports = online["partitions"]
    world = len(reports)
    assert world == 2 and all(r["world_size"] == world and r["zero_stage"] == 3 for r in reports)
    names = [name for name, *_ in reports[0]["params"]]
    assert names == [name for name, *_ in reports[1]["params"]]
    # the reports cover the whole model: their full sizes add up to the checkpoint's parameter count
    total = AutoModelForCausalLM.from_pretrained(trained_models.sft).num_parameters()
    assert sum(full for _, full, _, _ in reports[0]["params"]) == total
    persistent = online["run"].device.zero.param_persistence_threshold  # 0 here: none kept whole
    for rank, report in enumerate(reports):
        for name, full, held, materialised in report["params"]:
            # DeepSpeed pads a parameter to a multiple of the world size and gives each rank one part
            assert held == -(-full // world), (rank, name, full, held)
            if full >= persistent:  # the full tensor exists only inside a gather
                assert materialised == 0, (rank, name, materialised)
    held_per_rank = [sum(held for _, _, held, _ in r["params"]) for r in reports]
    assert all(abs(h - total / world) <= len(names) for h in held_per_rank), (held_per_rank, total)


def test_the_best_checkpoint_is_the_round_with_the_best_dev_metric(online):
    run_dir, results = online["run_dir"], online["results"]
    recorded = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in recorded] == list(range(1, ROUNDS + 1))
    assert online["run"].eval.dev_metric == "win_rate" and all("dev_win_rate" in r for r in recorded)
    # the highest recorded win rate; on a tie the higher dev reward, then the earlier round
    expected = max(recorded, key=lambda r: (r["dev_win_rate"], r["dev_reward_mean"], -r["round"]))
    assert results["online_dpo"]["best_round"] == expected["round"]
    assert results["online_dpo"]["best_checkpoint"] == expected["checkpoint"]
    assert Path(expected["checkpoint"]).name == f"policy_round_{expected['round']:03d}"
    summary = json.loads((run_dir / "run_summary.json").read_text())
    assert summary["online_dpo"]["best_round"] == expected["round"]
    assert f"best round {expected['round']}" in (run_dir / "eval" / "report.md").read_text()


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


def assert_no_text_outside_local_data(run_dir: Path, data: Path, table: Path, proc, ray_tmp: Path) -> None:
    """No client speech and no generated response (their first 40 characters, raw or JSON-escaped)
    at the console, in launch.log and the run's records, in Ray's session directory or in W&B's
    files: only the run's local data files (pairs, evaluation answers, checkpoints, state) hold
    them, and W&B only the opt-in sample table's rows."""
    originals = csv.DictReader((REPO_ROOT / "data/counsel-chat/counsel_chat.csv").open(encoding="utf-8"))
    speeches = [q.speech.text for split in ("train", "val") for q in read_questions(data, split)]
    secrets = (text_leaks.snippets(speeches)  # as the run saw them: title, planted details, question
               | text_leaks.snippets(" ".join(row["questionText"].split()) for row in originals))  # the question alone
    generated = text_leaks.snippets(text_leaks.generated_texts(run_dir))
    assert len(generated) >= 16, "the run's pairs and evaluation answers hold its responses"
    secrets |= generated

    rows = json.loads(table.read_text())["data"]
    assert len(rows) == 4  # tracking.log_samples=4: the opt-in table has those rows and no more
    shown = {secret for secret in secrets if any(secret in str(cell) for row in rows for cell in row)}
    assert shown and len(shown) <= 2 * len(rows), shown  # a response and its speech per row
    records = text_leaks.files(run_dir, skip=lambda p: text_leaks.is_local_data(p, run_dir) or p == table)
    leaks = text_leaks.find(secrets, [("console", (proc.stdout + proc.stderr).encode()), *records,
                                      *text_leaks.files(ray_tmp, skip=text_leaks.compile_cache)])
    leaks += text_leaks.find(secrets - shown, [(str(table), table.read_bytes())])
    assert not leaks, leaks[:10]


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
    (table,) = [p for p in (run_dir / "wandb").rglob("*.table.json") if "samples" in p.name]
    assert "[EMAIL]" in table.read_text() and "[ADDRESS]" in table.read_text()
    assert "e-mail me at" in table.read_text()  # the rest of the speech is there
    assert_no_text_outside_local_data(run_dir, data, table, proc, Path(ray_tmp))

    summary = json.loads((run_dir / "run_summary.json").read_text())
    # what ran, as the live actors reported it (ZeRO-3 partitions: the in-process test above)
    assert summary["trainer_ranks"] == len(summary["placement"]["trainer"]) == 2
    assert summary["generator_engines"] == len(summary["generators"]) == 1
    assert summary["generators"][0]["engine"] == VLLM_LLM
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

    # the dev-split evaluation ran inside the round and wrote its report (the choice of the best
    # round among several: tests/test_best_round.py and the in-process rounds above)
    assert 0.0 <= record["dev_win_rate_lo"] <= record["dev_win_rate"] <= record["dev_win_rate_hi"] <= 1.0
    assert record["dev_speeches"] > 0
    assert summary["online_dpo"]["best_round"] == 1
    assert summary["online_dpo"]["best_checkpoint"] == record["checkpoint"]
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
