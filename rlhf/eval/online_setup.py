"""The evaluations that run beside the online rounds, set up before round 1: a held-out dev split
of the training speeches (evaluated every eval.every_rounds rounds, with the safety probes), and the
outcome of the whole run on speeches no round trains on."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rlhf.stages.context import RunContext


def evaluations(ctx: RunContext):
    """(the speeches the rounds sample, the dev evaluation or None, the outcome or None)."""
    run, ev, encoder = ctx.run, ctx.run.eval, ctx.encoder
    bootstrap = {"samples": ev.bootstrap_samples, "confidence": ev.confidence}
    from rlhf.data.round_speeches import round_speeches

    speeches, dev, dev_eval = round_speeches(run, ctx.train_questions), [], None
    if ev.every_rounds > 0 and ev.dev_fraction > 0:  # a held-out dev split the rounds never sample
        from rlhf.eval.online import DevEvaluator, split_dev

        speeches, dev = split_dev(speeches, ev.dev_fraction, run.seed, ev.dev_max_speeches)
        if dev:
            dev_eval = DevEvaluator(
                speeches=dev,
                encoder=encoder,
                out_dir=ctx.run_dir / "eval",
                every_rounds=ev.every_rounds,
                rounds=run.online.rounds,
                metric=ev.dev_metric,
                max_tokens=encoder.max_response_len,
                seed=run.seed,
                bootstrap=bootstrap,
                safety=safety_check(ctx) if ev.safety.enabled else None,
            )
    outcome = None
    if ev.outcome:  # held out of every round: the dev split and counsel-chat's val questions
        from rlhf.eval.outcome import Outcome, held_out

        outcome = Outcome(
            speeches=held_out(dev, [q.speech for q in ctx.val_questions])[: ev.outcome_limit],
            encoder=encoder,
            out_dir=ctx.run_dir / "eval",
            max_tokens=encoder.max_response_len,
            temperature=ev.temperature,
            seed=run.seed,
            bootstrap=bootstrap,
        )
    return speeches, dev_eval, outcome


def safety_check(ctx: RunContext):
    """The safety probes for the dev evaluations, judged by rules and, when eval.judge is an LLM,
    by it on the probes' criteria."""
    from rlhf.chat.local import LocalModels
    from rlhf.eval.safety import SafetyCheck, judge_for, principle_judge_backend

    run = ctx.run
    if ctx.local_models is None:
        ctx.local_models = LocalModels(run, run.prefs.local_max_model_len, run.prefs.local_batch_size)
    backend = principle_judge_backend(run, ctx.local_models, ctx.policy_dir)
    return SafetyCheck(
        run.eval.safety,
        ctx.run_dir / "eval",
        judge_for(run.eval.safety, run.eval.judge, backend),
        {"samples": run.eval.bootstrap_samples, "confidence": run.eval.confidence},
    )
