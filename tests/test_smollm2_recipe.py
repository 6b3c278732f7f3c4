"""The real pretrained model through every stage, through the CLI: SFT, reward model, online DPO
with the dev evaluation and the outcome, offline DPO, stage=eval, and build_prefs with the local
judge under guided decoding. Reduced sizes; the full `make run ARGS="model=smollm2"` is the same
code with the preset's sizes."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.test_end_to_end import run_launch

pytestmark = pytest.mark.slow

SMALL = ["model=smollm2", "recipe=[sft,reward,online_dpo]", "data.max_sft_examples=16", "data.max_pairs=32",
         "reward_training.eval_pairs=16", "online.rounds=2", "online.speeches_per_round=8", "online.epochs=1",
         "online.batch_size=8", "eval.dev_max_speeches=8", "eval.outcome_limit=12", "tracking.wandb=false"]


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("smol") / "run"
    proc = run_launch([f"run_dir={run_dir}", *SMALL])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir, proc


def test_recipe_runs_every_stage_and_measures_the_outcome(recipe_run):
    run_dir, proc = recipe_run
    summary = json.loads((run_dir / "run_summary.json").read_text())
    assert summary["stages_completed"] == ["sft", "reward", "online_dpo"]
    assert summary["dtype"] == "bfloat16"
    outcome = summary["outcome"]
    for key in ("win_rate", "win_rate_lo", "win_rate_hi", "length_ratio", "distinct2_start", "distinct2_final",
                "truncated_share", "repetition_rate"):
        assert isinstance(outcome[key], float), key
    assert 0 <= outcome["win_rate_lo"] <= outcome["win_rate"] <= outcome["win_rate_hi"] <= 1
    assert outcome["speeches"] == 12 and isinstance(outcome["goals"]["all_met"], bool)
    rounds = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(r["kl_to_reference"] >= 0 and 0 <= r["truncated_share"] <= 1 for r in rounds)
    report = (run_dir / "eval" / "report.md").read_text()
    assert "## Outcome: final policy against the starting policy" in report and "*Final*" in report
    assert "outcome       : final vs starting policy" in proc.stdout


def test_offline_dpo_and_eval_on_the_trained_checkpoints(recipe_run, tmp_path):
    run_dir, _ = recipe_run
    prefs = tmp_path / "prefs.parquet"
    pairs = [json.loads(line) for line in (run_dir / "pairs" / "round_001.jsonl").read_text().splitlines()]
    assert pairs, "round 1 kept no pair"
    pd.DataFrame([{"ID": str(i), "prefID": i, "question": "I keep worrying about my exams.", "chosen": p["chosen"],
                   "rejected": p["rejected"], "chosen_model": "a", "rejected_model": "b",
                   **{f"{side}_{k}_rating": 3 for side in ("chosen", "rejected") for k in
                      ("empathy", "relevance", "clarity", "safety", "exploration", "autonomy", "staging")}}
                  for i, p in enumerate(pairs * 4)]).to_parquet(prefs)
    offline = run_launch([f"run_dir={tmp_path / 'off'}", "model=smollm2", "stage=offline_dpo",
                          f"model.path={run_dir}/checkpoints/sft", f"data.preference_path={prefs}",
                          "offline.batch_size=8", "tracking.wandb=false"])
    assert offline.returncode == 0, offline.stderr[-3000:]
    assert (tmp_path / "off" / "checkpoints" / "offline_dpo" / "config.json").is_file()
    ev = run_launch([f"run_dir={tmp_path / 'ev'}", "model=smollm2", "stage=eval", f"eval.run={run_dir}",
                     "eval.speeches.limit=6", "eval.length_constrained=false", "tracking.wandb=false"])
    assert ev.returncode == 0, ev.stderr[-3000:]
    result = json.loads((tmp_path / "ev" / "run_summary.json").read_text())["eval"]
    assert [p["round"] for p in result["policies"]] == [1, 2]


def test_build_prefs_with_the_local_judge_scores_under_guided_decoding(tmp_path):
    proc = run_launch([f"run_dir={tmp_path / 'p'}", "model=smollm2", "stage=build_prefs", "prefs.speeches.limit=4",
                       "prefs.judge_check=4", "tracking.wandb=false"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    provenance = json.loads((tmp_path / "p" / "prefs" / "provenance.json").read_text())
    counts = provenance["counts"]
    assert counts["scored"] >= 0.95 * (counts["scored"] + counts["unscored"]) and counts["scored"] > 0
    check = provenance["judge_check"]
    assert check["responses"] == 4 and 0 <= check["above_control_share"] <= 1
