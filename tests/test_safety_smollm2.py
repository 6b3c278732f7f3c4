"""The whole safety evaluation on a real model: stage=eval through the CLI with SmolLM2-135M-Instruct
(model=smollm2, the converted checkpoint in .cache/models) as policy and as reference, answering all
probes on vLLM, judged by the rules (the default: eval.judge is the reward model, which cannot read
criteria). What a user gets must be complete and honest: every category, rates in [0, 1] with their
intervals, the probes nothing could decide counted as not judged (never as passes), the same model
against itself not flagged, and the answers in the run directory only."""

from __future__ import annotations

import json
import math

import pytest

from rlhf.config import load_config
from rlhf.safety.probes import CATEGORIES, load_probes
from tests.conftest import compose
from tests.test_end_to_end import run_launch

pytestmark = pytest.mark.slow

PROBES = load_probes()


@pytest.fixture(scope="module")
def smollm2_dir():
    from rlhf.models.gguf import convert
    from rlhf.paths import resolve_path

    run = load_config(compose(["model=smollm2"]))
    return convert(run.model.gguf, resolve_path(run.model.cache_dir) / run.model.name)


def sane(rate: dict, judged: int) -> None:
    assert rate["n"] == judged, rate
    if judged == 0:  # nothing to average: no rate, and never a default one
        assert math.isnan(rate["mean"]), rate
    else:
        assert 0 <= rate["lo"] <= rate["mean"] <= rate["hi"] <= 1, rate


def test_stage_eval_runs_the_probes_on_smollm2_with_the_rules(smollm2_dir, tmp_path):
    run_dir = tmp_path / "ev"
    proc = run_launch(
        [
            f"run_dir={run_dir}",
            "model=smollm2",
            "stage=eval",
            f"eval.policies=[{smollm2_dir}]",
            f"eval.reference.path={smollm2_dir}",
            "reward=python",  # the reward-model judge of the speeches without training one
            "eval.speeches.limit=4",
            "eval.length_constrained=false",
            "tracking.wandb=false",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    safety = json.loads((run_dir / "run_summary.json").read_text())["eval"]["safety"]
    assert safety["probes"] == len(PROBES) and safety["categories"] == sorted(CATEGORIES)
    assert safety["judge"] == "rules only" and safety["max_tokens"] is None
    reference, (policy,) = safety["reference"], safety["policies"]
    for entry in (reference, policy):
        assert entry["probes"] == len(PROBES) and entry["judged"] + entry["not_judged"] == len(PROBES)
        # the rules decide a probe only when one fails: the others wait for a judge, counted with the reason
        assert entry["not_judged"] > 0 and entry["not_judged_reasons"] == {"no judge configured": entry["not_judged"]}
        assert entry["failed"] == entry["judged"] and entry["passed"] == 0
        assert sum(entry["failed_checks"].values()) >= entry["failed"]
        sane(entry["pass_rate"], entry["judged"])
        assert set(entry["categories"]) == set(CATEGORIES)
        for rate in entry["categories"].values():
            sane(rate, rate["n"])
        assert sum(rate["n"] for rate in entry["categories"].values()) == entry["judged"]
    # greedy answers of one model, twice: the same verdicts, no regression
    assert policy["judged"] == reference["judged"] and policy["failed_checks"] == reference["failed_checks"]
    assert not policy["regressed"] and policy["regressed_categories"] == []

    answers = {
        name: [json.loads(line) for line in (run_dir / "eval" / "safety" / f"{name}.jsonl").read_text().splitlines()]
        for name in ("reference", smollm2_dir.name)
    }
    for records in answers.values():
        assert [r["id"] for r in records] == [p.id for p in PROBES]
        assert sum(1 for r in records if r["answer"].strip()) >= 0.9 * len(PROBES)  # the model did answer
    report = (run_dir / "eval" / "report.md").read_text()
    assert "## Safety probes" in report and f"| judged / probes | {reference['judged']} / {len(PROBES)}" in report
    assert "Not judged at the start" not in report or "no judge configured" in report
    # the answers stay in the run directory: not at the console, not in the log or the run summary
    texts = {r["answer"].strip()[:40] for records in answers.values() for r in records if len(r["answer"]) >= 40}
    assert texts
    for where, blob in (
        ("console", proc.stdout + proc.stderr),
        ("launch.log", (run_dir / "launch.log").read_text()),
        ("run_summary.json", (run_dir / "run_summary.json").read_text()),
        ("report.md", report),
    ):
        assert not [t for t in texts if t in blob or json.dumps(t)[1:-1] in blob], where
    assert "safety        : " in proc.stdout
