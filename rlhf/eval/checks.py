"""Checks of the evaluation's config section (eval), before any actor starts."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from rlhf.choices import DevMetric, JudgeBackend, ReferenceSource, SafetyJudgeChoice, Stage, not_one_of

if TYPE_CHECKING:
    from rlhf.config import RunConfig


def validate_eval(run: RunConfig) -> list[str]:
    """Checks of the eval section (endpoints' key variables only when stage=eval)."""
    ev, errors = run.eval, []
    if ev.every_rounds < 0 or not 0 <= ev.dev_fraction < 1:
        errors.append("eval.every_rounds must be >= 0 (0 = off) and eval.dev_fraction in [0, 1)")
    errors += not_one_of("eval.dev_metric", ev.dev_metric, DevMetric)
    if ev.bootstrap_samples < 1 or not 0 < ev.confidence < 1 or ev.ece_bins < 1:
        errors.append("eval.bootstrap_samples and eval.ece_bins must be >= 1, eval.confidence in (0, 1)")
    if ev.length_max_tokens < 1 or ev.length_words < 1 or (ev.max_tokens is not None and ev.max_tokens < 1):
        errors.append("eval.max_tokens, eval.length_max_tokens and eval.length_words must be >= 1")
    ref, judge = ev.reference, ev.judge
    errors += not_one_of("eval.reference.source", ref.source, ReferenceSource)
    if ref.source == ReferenceSource.endpoint and not (ref.base_url and ref.model):
        errors.append("eval.reference: source=endpoint needs base_url and model (e.g. gpt-4o)")
    elif ref.source == ReferenceSource.stored and not ref.path:
        errors.append("eval.reference: source=stored needs path (a CSV/JSONL/Parquet file of reference responses)")
    errors += not_one_of("eval.judge.backend", judge.backend, JudgeBackend)
    if judge.backend == JudgeBackend.openai and not (judge.base_url and judge.model):
        errors.append("eval.judge: backend=openai needs base_url and model")
    if judge.max_attempts < 1:
        errors.append("eval.judge.max_attempts must be >= 1")
    errors += not_one_of("eval.safety.judge", ev.safety.judge, SafetyJudgeChoice)
    rules_only = ev.safety.judge == SafetyJudgeChoice.rules or judge.backend == JudgeBackend.reward
    if ev.safety.enabled and ev.safety.gate and rules_only:
        # the rules decide a probe only by failing it, so the reference's side of a pair is never
        # decided and no regression can be found: a gate that can never close would mislead
        errors.append(
            "eval.safety.gate=true needs an LLM judge for the probes' criteria (eval.judge.backend=openai or "
            "local, e.g. eval=gpt4o, with eval.safety.judge=auto): with the rules alone no regression can be found"
        )
    if run.stage == Stage.eval:
        if not (run.model.path or ev.policies or ev.run):
            errors.append(
                "stage=eval needs a policy: eval.run (a run directory: every round's policy), "
                "eval.policies (checkpoint directories) or model.path"
            )
        for label, section, remote in (
            ("eval.reference", ref, ref.source == ReferenceSource.endpoint),
            ("eval.judge", judge, judge.backend == JudgeBackend.openai),
        ):
            if remote and section.api_key_env and not os.environ.get(section.api_key_env):
                errors.append(f"{label}.api_key_env: environment variable {section.api_key_env} is not set")
    return errors
