"""The answers stage=eval compares: every policy's (on a generator actor) and the reference's (a
local model, an OpenAI-compatible endpoint, or a stored file), per job (each variant of the speeches,
and the safety probes)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rlhf.choices import ReferenceSource
from rlhf.data.errors import DataError
from rlhf.eval.generate import LocalModel, Responses, Variant, endpoint_responses, stored_responses
from rlhf.models.base import load_tokenizer
from rlhf.paths import resolve_path

if TYPE_CHECKING:
    from rlhf.stages.context import RunContext


def local_answers(run, model_dir: str, jobs: dict[str, tuple[list, Variant]]) -> dict[str, Responses]:
    """One model's answers on one generator actor: {name: Responses} for {name: (speeches, variant)}."""
    _, encoder = load_tokenizer(model_dir, run)
    longest = max(v.max_tokens for _, v in jobs.values())
    model = LocalModel(run, model_dir, run.model.max_prompt_len + longest + 64)
    try:
        return {
            name: model.respond(encoder, speeches, v, run.eval.temperature, run.seed)
            for name, (speeches, v) in jobs.items()
        }
    finally:
        model.shutdown()


def reference_answers(ctx: RunContext, jobs: dict[str, tuple[list, Variant]]) -> tuple[dict, dict[str, list[str]], str]:
    """({job: Responses}, {job: per-speech error or ""}, description); a stored reference has no
    answers to jobs other than the variants of the evaluation speeches (e.g. the safety probes)."""
    run, ref = ctx.run, ctx.run.eval.reference
    none = {name: [""] * len(speeches) for name, (speeches, _) in jobs.items()}
    if ref.source == ReferenceSource.stored:
        path = resolve_path(ref.path)
        variants_ = {name: job for name, job in jobs.items() if name != SAFETY}
        speeches = next(iter(variants_.values()))[0]
        responses, errors = stored_responses(path, speeches, ref.columns, ref.response_column, ref.format)
        return (
            {name: responses for name in variants_},
            {name: errors for name in variants_},
            f"stored responses from `{ref.path}` (the same for both variants)",
        )
    if ref.source == ReferenceSource.endpoint:
        from rlhf.chat.backends import openai_chat

        chat = openai_chat(ref, "eval.reference")
        answers, errors = {}, {}
        for name, (speeches, v) in jobs.items():
            cap = Variant(v.name, ref.max_tokens if not v.instruction else v.max_tokens, v.instruction)
            answers[name], errors[name] = endpoint_responses(chat, run.system_prompt, speeches, cap, ref.temperature)
        return answers, errors, f"`{ref.model}` at an OpenAI-compatible endpoint"
    model_dir = reference_model(ctx)
    return local_answers(run, model_dir, jobs), none, f"the local model `{model_dir}`"


SAFETY = "safety"  # the job name of the safety probes' answers beside the variants'


def safety_results(check, ref_answers: dict, answers: dict, policies, ref_errors: dict | None = None) -> dict:
    """eval.safety of stage=eval: every policy's and the reference's pass rates, policy vs reference
    (a probe the reference endpoint gave no answer to is not judged for it)."""
    from rlhf.eval.safety import brief

    reference = (
        check.evaluate("reference", ref_answers[SAFETY].texts, (ref_errors or {}).get(SAFETY))
        if SAFETY in ref_answers
        else None
    )
    out = {
        **check.describe(),
        "gate": check.cfg.gate,
        "reference": brief("reference", reference) if reference else None,
        "policies": [],
    }
    for name, _, _ in policies:
        result = check.evaluate(name, answers[name][SAFETY].texts)
        out["policies"].append(brief(name, result, check.compare(result, reference) if reference else None))
    return out


def reference_model(ctx: RunContext) -> str:
    """The reference checkpoint: eval.reference.path, eval.run's SFT, or this run's SFT."""
    run = ctx.run
    ref = run.eval.reference
    candidates = [ref.path] if ref.path else []
    if run.eval.run:
        candidates.append(str(Path(resolve_path(run.eval.run)) / "checkpoints" / "sft"))
    candidates += [(ctx.results.get("sft") or {}).get("checkpoint"), str(ctx.checkpoints / "sft")]
    for path in filter(None, candidates):
        if (Path(resolve_path(path)) / "config.json").is_file():
            return str(resolve_path(path))
    raise DataError(
        str(ref.path or ctx.checkpoints / "sft"),
        "no reference model",
        hint="set eval.reference.path (a checkpoint), eval.run (its sft), or another eval.reference.source",
    )
