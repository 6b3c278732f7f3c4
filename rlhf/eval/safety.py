"""Safety probes on every evaluated policy (the probe set, rules and criteria judge live in
rlhf.safety): the policy answers each probe as it answers a client, the rules and then the LLM
judge decide each probe, and pass rates per category come with 95% bootstrap intervals; a policy is
compared with its reference (the starting policy in the rounds, eval.reference in stage=eval) and
flagged when it regressed beyond the interval.

Answers and the judge's reasons stay in run_dir/eval/safety/ (local files); what this module returns
holds numbers, ids and our own words only, for run_summary.json, logs and W&B."""

from __future__ import annotations

import logging
from pathlib import Path

from rlhf import atomic
from rlhf.paths import resolve_path
from rlhf.safety import score
from rlhf.safety.probes import load_probes

log = logging.getLogger(__name__)


def principle_judge_backend(run, local_models, default_model: str):
    """The chat backend of eval.judge: an OpenAI-compatible endpoint, or a local model on a generator
    actor (started on first use); None when the judge is the reward model (it cannot read criteria)."""
    if run.eval.judge.backend == "reward":
        return None
    from rlhf.chat.backends import chat_backend

    return chat_backend(run.eval.judge, "eval.judge", local_models, default_model)


def judge_for(safety_cfg, judge_cfg, backend):
    """The criteria judge on `backend` (the evaluation's principle-judge backend, or None: rules only)."""
    if backend is None or safety_cfg.judge == "rules":
        return None
    from rlhf.safety.judge import SafetyJudge

    return SafetyJudge(
        backend,
        max_attempts=judge_cfg.max_attempts,
        temperature=judge_cfg.temperature,
        max_tokens=safety_cfg.judge_max_tokens,
        json_mode=judge_cfg.json_mode,
        json_schema=True,
    )


class SafetyCheck:
    def __init__(self, cfg, out_dir: Path, judge=None, bootstrap: dict | None = None):
        self.cfg, self.judge = cfg, judge
        self.probes = load_probes(resolve_path(cfg.probes) if cfg.probes else None)
        self.messages = [p.message for p in self.probes]
        self.out_dir = Path(out_dir) / "safety"
        self.bootstrap = bootstrap or {}

    def prompts(self, encoder) -> list[list[int]]:
        """The probes as a policy sees a client: its chat template and the run's system prompt."""
        return [encoder.prompt(m) for m in self.messages]

    def describe(self) -> dict:
        return {
            "probes": len(self.probes),
            "categories": sorted({p.category for p in self.probes}),
            "judge": self.judge.describe() if self.judge is not None else "rules only",
            "max_tokens": self.cfg.max_tokens,
        }

    def evaluate(self, name: str, answers: list[str], errors: list[str] | None = None) -> dict:
        """Pass rates of one model's answers; answers and per-probe decisions go to the run directory.
        `errors[i]` non-empty: no answer was had for probe i (a failed endpoint call), so it is not
        judged rather than failed."""
        from rlhf.safety.decide import decide

        answers = [None if errors and errors[i] else a for i, a in enumerate(answers)]
        decisions = decide(self.probes, answers, self.judge)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"{name}.jsonl"
        atomic.write_jsonl(
            path,
            (
                {
                    **d.record(),
                    "answer": a,
                    "checks": {k: {"passed": c.passed, "by": c.by, "reason": c.reason} for k, c in d.checks.items()},
                }
                for d, a in zip(decisions, answers)
            ),
        )
        result = score.summarise(decisions, self.bootstrap)
        result["judge"] = self.judge.describe() if self.judge is not None else None
        return result

    def compare(self, policy: dict, reference: dict) -> dict:
        return score.compare(policy, reference, self.bootstrap)


def brief(name: str, result: dict, comparison: dict | None = None) -> dict:
    """One evaluated model's numbers without per-probe records (for summaries and the report):
    overall and per-category pass rates, and against the reference, whether it regressed."""
    out = {
        "name": name,
        "probes": result["probes"],
        "judged": result["judged"],
        "not_judged": result["not_judged"],
        "passed": result["passed"],
        "failed": result["failed"],
        "pass_rate": result["pass_rate"],
        "categories": {c: v["pass_rate"] for c, v in result["categories"].items()},
        "failed_checks": result.get("failed_checks", {}),
        "not_judged_reasons": result.get("not_judged_reasons", {}),
    }
    if comparison is not None:
        out.update(
            regressed=comparison["regressed"],
            regressed_categories=comparison["regressed_categories"],
            difference=comparison["overall"]["difference"],
        )
    return out
