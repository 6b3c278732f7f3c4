"""Judging helpers of the evaluation: the principle judge's backend, absolute 1-5 ratings, and the
reward model's metrics on a preference test split."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlhf.eval import stats
from rlhf.eval.rm_metrics import reward_model_metrics
from rlhf.pairs.parquet import read_preference_parquet
from rlhf.pairs.splits import training_pairs
from rlhf.paths import resolve_path
from rlhf.prefs.judge import PRINCIPLES

if TYPE_CHECKING:
    from rlhf.stages.context import RunContext


def judge_backend(ctx: RunContext, local_models):
    """eval.judge's chat backend (None for the reward model)."""
    from rlhf.eval.safety import principle_judge_backend

    return principle_judge_backend(ctx.run, local_models, ctx.policy_dir)


def absolute_ratings(backend, prompt, judge_cfg, speeches, texts, valid, bootstrap) -> dict:
    """1-5 per principle for one model's answers (the preference builder's judge), mean and interval."""
    from rlhf.prefs.judge import Judge, Verdict

    judge = Judge(
        backend,
        prompt,
        max_attempts=judge_cfg.max_attempts,
        temperature=judge_cfg.temperature,
        max_tokens=96,
        json_mode=judge_cfg.json_mode,
    )
    items = [(s.text, t) for s, t, ok in zip(speeches, texts, valid) if ok]
    ratings = []
    for _, verdict in judge.judge_many(items):
        if isinstance(verdict, Verdict) and verdict.ratings is not None:
            ratings.append(verdict.ratings)
    out = {k: stats.mean_with_interval([r[k] for r in ratings], **bootstrap).as_dict() for k in PRINCIPLES}
    out["unscored"] = len(items) - len(ratings)
    return out


def rm_metrics(ctx: RunContext, scorer) -> dict | None:
    """Accuracy, AUC, ECE and Brier of the reward model on a preference test split."""
    run = ctx.run
    if run.eval.preference_path:
        pairs, source = read_preference_parquet(resolve_path(run.eval.preference_path)), f"`{run.eval.preference_path}`"
    else:
        pairs, _ = training_pairs(run, ctx.train_questions, ctx.val_questions, "val")
        source = (
            "the held-out slice of `data.preference_path`"
            if run.data.preference_path
            else "counsel-chat's held-out questions (answer with more upvotes = chosen; a weak, noisy label)"
        )
    if not pairs:
        return None
    items = [(p.speech.text, p.chosen) for p in pairs] + [(p.speech.text, p.rejected) for p in pairs]
    rewards = scorer.score(items)
    metrics = reward_model_metrics(rewards[: len(pairs)], rewards[len(pairs) :], run.eval.ece_bins)
    metrics["source"] = source
    return metrics
