"""stage=eval for real, on a real online run: Ray, vLLM engines for the round's policy and the SFT
reference, the reward model in a reward actor as judge, offline W&B. And the dev split of that
run checked against its own files: the speeches it held out are never among those its round trained on.

The run is small on purpose: 20 training questions (4 held out as the dev split, so the round's 16
speeches are every one that is left) and 8 held-out questions for stage=eval, from the session's SFT
policy and reward model. The answers and the prompts they were asked with are read as they pass
(the real functions run; the test only keeps what they return)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import ray

from rlhf.config import load_config
from rlhf.data.counsel_chat import read_questions
from rlhf.pipeline import Pipeline
from tests import text_leaks
from tests.conftest import REPO_ROOT, compose

TRAIN_QUESTIONS, VAL_QUESTIONS, DEV_FRACTION = 20, 8, 0.2
LENGTH_TOKENS, UNCONSTRAINED_TOKENS = 8, 48


def small_data(path: Path) -> Path:
    """The first TRAIN_QUESTIONS training and VAL_QUESTIONS held-out questions of the shipped file,
    with all their answers."""
    with (REPO_ROOT / "data/counsel-chat/counsel_chat.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    keep = {"train": [], "val": []}
    for row in rows:
        chosen = keep[row["split"]]
        if row["questionID"] not in chosen:
            chosen.append(row["questionID"])
    wanted = set(keep["train"][:TRAIN_QUESTIONS]) | set(keep["val"][:VAL_QUESTIONS])
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(row for row in rows if row["questionID"] in wanted)
    return path


def run_stage(overrides: list[str], stage: str) -> dict:
    pipe = Pipeline(load_config(compose(overrides)), {})
    try:
        pipe.start()
        pipe.run_stage(stage)
    finally:
        pipe.shutdown()
    return pipe.results


@pytest.fixture(scope="module")
def evaluated(trained_models, tmp_path_factory) -> dict:
    """One online round from the session's models, then stage=eval on that run directory."""
    import rlhf.eval.answers as eval_answers
    import rlhf.eval.generate as generate
    import rlhf.eval.run as eval_run

    root = tmp_path_factory.mktemp("evalrun")
    data = small_data(root / "counsel_chat_small.csv")
    online_dir, eval_dir = root / "online", root / "eval"
    prompts, answers = [], {}
    real_prompts, real_answers = generate.local_prompts, eval_run.local_answers

    def recording_prompts(encoder, speeches, variant):
        out = real_prompts(encoder, speeches, variant)
        prompts.extend((variant.name, encoder.tokenizer.decode(ids)) for ids in out)
        return out

    def recording_answers(run, model_dir, jobs):
        answers[Path(model_dir).name] = out = real_answers(run, model_dir, jobs)
        return out

    try:
        online = run_stage([f"run_dir={online_dir}", f"data.path={data}", "online.rounds=1", "tracking.wandb=true",
                            f"eval.dev_fraction={DEV_FRACTION}", "eval.dev_max_speeches=null", "eval.outcome=false",
                            "eval.safety.enabled=false", *trained_models.online_overrides()], "online_dpo")
        # the layout of a recipe run: its SFT policy and reward model beside the rounds' checkpoints
        for name, target in (("sft", trained_models.sft), ("reward_model", trained_models.reward_model)):
            (online_dir / "checkpoints" / name).symlink_to(target)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(generate, "local_prompts", recording_prompts)
            patch.setattr(eval_run, "local_answers", recording_answers)  # the policies'
            patch.setattr(eval_answers, "local_answers", recording_answers)  # the reference's
            results = run_stage([f"run_dir={eval_dir}", "stage=eval", f"eval.run={online_dir}", f"data.path={data}",
                                 "eval.safety.enabled=false", "eval.bootstrap_samples=200",
                                 f"eval.max_tokens={UNCONSTRAINED_TOKENS}", f"eval.length_max_tokens={LENGTH_TOKENS}",
                                 "tracking.wandb=true"], "eval")
    finally:
        ray.shutdown()
    return {"data": data, "online_dir": online_dir, "online": online, "eval_dir": eval_dir,
            "eval": json.loads(json.dumps(results["eval"], default=str)), "prompts": prompts, "answers": answers}


def test_the_dev_split_is_never_trained_on(evaluated):
    """The run's own files: the dev speeches it answered before round 1 (eval/dev_reference.json) are
    training questions, and none is among the speeches of the round's preference pairs."""
    online_dir = evaluated["online_dir"]
    train_ids = {q.speech.id for q in read_questions(evaluated["data"], "train")}
    val_ids = {q.speech.id for q in read_questions(evaluated["data"], "val")}
    dev = json.loads((online_dir / "eval" / "dev_reference.json").read_text())["speech_ids"]
    trained = {json.loads(line)["speech_id"] for line in (online_dir / "pairs" / "round_001.jsonl").read_text().splitlines()}
    assert len(dev) == len(set(dev)) == round(DEV_FRACTION * TRAIN_QUESTIONS)
    assert set(dev) <= train_ids and not set(dev) & val_ids
    assert not set(dev) & trained, "dev speeches were trained on"
    # the round drew every speech left for training (16 of 16): most gave a pair
    assert trained <= train_ids - set(dev) and len(trained) >= 12, sorted(trained)
    record = json.loads((online_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert record["dev_speeches"] == len(dev)


def test_stage_eval_judges_each_round_against_the_runs_sft_with_its_reward_model(evaluated, trained_models):
    ev, online_dir = evaluated["eval"], evaluated["online_dir"]
    (policy,) = ev["policies"]
    assert policy["name"] == "policy_round_001" and policy["round"] == 1
    assert ev["reference"]["source"] == "model"
    assert str(online_dir / "checkpoints" / "sft") in ev["reference"]["description"]
    assert ev["judge"]["backend"] == "reward" and ev["judge"]["model"].endswith("checkpoints/reward_model")
    assert ev["speeches"]["count"] == VAL_QUESTIONS
    # both models answered every speech in both variants, on their own vLLM engines
    assert set(evaluated["answers"]) == {"policy_round_001", "sft"}
    for name in ("policy_round_001", "sft"):
        assert set(evaluated["answers"][name]) == {"unconstrained", "length_constrained"}
    for variant, r in policy["results"].items():
        n = r["wins"] + r["ties"] + r["losses"]
        assert n == r["win_rate"]["n"] == VAL_QUESTIONS and r["unscored"] == 0, variant
        assert r["win_rate"]["mean"] == pytest.approx((r["wins"] + 0.5 * r["ties"]) / n)
        assert r["win_rate"]["lo"] <= r["win_rate"]["mean"] <= r["win_rate"]["hi"]
    rm = ev["rm_metrics"]
    assert rm["pairs"] > 0 and 0 <= rm["accuracy"] <= 1 and 0 <= rm["auc"] <= 1


def test_the_length_constrained_variant_asks_with_the_instruction_and_caps_the_answer(evaluated):
    ev = evaluated["eval"]
    instruction = "Please answer in at most 25 words."
    assert ev["variants"]["length_constrained"] == {
        "max_tokens": LENGTH_TOKENS, "instruction": instruction,
        "description": f'instruction "{instruction}" added after the speech, answers capped at {LENGTH_TOKENS} tokens'}
    by_variant = {}
    for variant, prompt in evaluated["prompts"]:
        by_variant.setdefault(variant, []).append(prompt)
    assert len(by_variant["length_constrained"]) == len(by_variant["unconstrained"]) == 2 * VAL_QUESTIONS
    assert all(instruction in p for p in by_variant["length_constrained"])
    assert not any(instruction in p for p in by_variant["unconstrained"])
    for name, jobs in evaluated["answers"].items():  # the cap holds, and it is what cut the answers
        assert max(jobs["length_constrained"].tokens) <= LENGTH_TOKENS, name
        assert max(jobs["unconstrained"].tokens) > LENGTH_TOKENS, name
        assert max(jobs["unconstrained"].tokens) <= UNCONSTRAINED_TOKENS, name
    lengths = ev["policies"][0]["results"]
    assert lengths["length_constrained"]["length"]["mean"] < lengths["unconstrained"]["length"]["mean"]


def wandb_images(run_dir: Path, name: str) -> list[Path]:
    """The PNGs W&B's offline run under run_dir holds for eval/<name>."""
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    return [p for p in (offline / "files" / "media" / "images" / "eval").glob(f"{name}_*.png") if p.stat().st_size > 1000]


def test_the_online_runs_report_plots_each_round_and_logs_the_figures(evaluated):
    """The dev evaluation's report: win rate, reward and response length per round, as PNG files
    beside report.md and as images in W&B."""
    online_dir = evaluated["online_dir"]
    report = (online_dir / "eval" / "report.md").read_text()
    assert "**Result: best round 1**" in report
    for figure in ("winrate_per_round", "reward_per_round", "length_per_round"):
        assert (online_dir / "eval" / f"{figure}.png").stat().st_size > 1000, figure
        assert f"![{figure}]({figure}.png)" in report
        assert wandb_images(online_dir, figure), figure


def test_the_report_its_plots_and_the_wandb_figures(evaluated):
    eval_dir = evaluated["eval_dir"]
    report = (eval_dir / "eval" / "report.md").read_text()
    assert "**Judge: the reward model**" in report and "| policy_round_001 |" in report
    assert (eval_dir / "eval" / "winrate_per_policy.png").stat().st_size > 1000
    assert "![winrate_per_policy](winrate_per_policy.png)" in report
    assert wandb_images(eval_dir, "winrate_per_policy")
    (records,) = (eval_dir / "wandb").glob("offline-run-*/*.wandb")
    assert b"eval/win_rates" in records.read_bytes() and b"eval/rm_metrics" in records.read_bytes()
    # numbers only: neither a speech nor an answer in the report or W&B
    speeches = [q.speech.text for q in read_questions(evaluated["data"], "val")]
    texts = [t for jobs in evaluated["answers"].values() for r in jobs.values() for t in r.texts]
    secrets = text_leaks.snippets(speeches) | text_leaks.snippets(texts)
    assert secrets
    leaks = text_leaks.find(secrets, [("report", report.encode()), *text_leaks.files(eval_dir / "wandb")])
    assert not leaks, leaks[:5]
