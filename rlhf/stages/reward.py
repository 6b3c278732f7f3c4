"""stage=reward: a Bradley-Terry reward model on preference pairs (counsel-chat upvote pairs, or
data.preference_path), initialised from the policy with a fresh value head; then its held-out
accuracy and the mean and std of its training rewards (stored for normalised scores)."""

from __future__ import annotations

import logging
import statistics

from rlhf.choices import RewardPairs
from rlhf.logs import progress
from rlhf.models.reward_model import reward_config_fields
from rlhf.pairs.demonstrations import demonstration_pairs
from rlhf.pairs.splits import training_pairs, whole_answers
from rlhf.stages.context import RunContext
from rlhf.training.batching import Encoded
from rlhf.training.group import planned_steps
from rlhf.training.steps import train_steps

log = logging.getLogger(__name__)
NORMALISATION_SAMPLE = 256  # training pairs whose rewards give the stored mean and std


def run(ctx: RunContext) -> None:
    cfg, run_cfg, pad = ctx.run.reward_training, ctx.run, ctx.tokenizer.pad_token_id
    if cfg.pairs == RewardPairs.demonstrations and not run_cfg.data.preference_path:
        train_pairs = demonstration_pairs(ctx, ctx.train_questions, run_cfg.data.max_pairs, "train")
        val_pairs = demonstration_pairs(ctx, ctx.val_questions, cfg.eval_pairs, "val")
        counts = None
    else:
        train_pairs, counts = training_pairs(run_cfg, ctx.train_questions, ctx.val_questions, "train")
        val_pairs, _ = training_pairs(run_cfg, ctx.train_questions, ctx.val_questions, "val")
    if cfg.whole_answers:  # pairs whose answers both end within the token budget (see the config)
        train_pairs, val_pairs = whole_answers(train_pairs, ctx.encoder), whole_answers(val_pairs, ctx.encoder)
    train_pairs, val_pairs = train_pairs[: run_cfg.data.max_pairs], val_pairs[: cfg.eval_pairs]
    encoded = [ctx.encoder.judged_pair(p.speech.text, p.chosen, p.rejected) for p in train_pairs]
    ctx.trainers.load("bradley_terry", ctx.policy_dir, cfg, total_steps=planned_steps(len(encoded), cfg))
    last = train_steps(
        ctx.trainers, ctx.tracker, "reward", encoded, cfg, pad, run_cfg.seed, **ctx.resumable_steps("reward")
    )

    val_encoded = [ctx.encoder.judged_pair(p.speech.text, p.chosen, p.rejected) for p in val_pairs]
    sample = encoded[:NORMALISATION_SAMPLE]
    batches = [(val_encoded, "chosen"), (val_encoded, "rejected"), (sample, "chosen"), (sample, "rejected")]
    scores = []
    with progress(
        sum(len(pairs) for pairs, _ in batches), "scoring with the reward model", "answer", leave=False
    ) as bar:
        for pairs, side in batches:
            scores.append(ctx.trainers.score([Encoded(p.prompt, getattr(p, side)) for p in pairs], pad))
            bar.update(len(pairs))
    chosen, rejected, train_chosen, train_rejected = scores
    accuracy = statistics.fmean(float(c > r) for c, r in zip(chosen, rejected)) if val_encoded else float("nan")
    train_scores = train_chosen + train_rejected
    mean, std = statistics.fmean(train_scores), statistics.pstdev(train_scores) or 1.0
    ctx.reward_dir = ctx.save_model("reward_model", reward_config_fields(mean, std, cfg.normalize))
    ctx.results["reward_model"] = {
        "train_pairs": len(encoded),
        "val_pairs": len(val_encoded),
        "train_loss": last.get("loss"),
        "val_accuracy": accuracy,
        "normalize": cfg.normalize,
        "mean": mean,
        "std": std,
        "whole_answers_only": cfg.whole_answers,
        "checkpoint": ctx.reward_dir,
        "pairs": str(cfg.pairs) if not run_cfg.data.preference_path else "data.preference_path",
        "pair_derivation": vars(counts) if counts else None,
    }
    log.info(
        "reward model: %d pairs, train loss %.3f, val accuracy %.3f on %d pairs -> %s",
        len(encoded),
        last.get("loss", float("nan")),
        accuracy,
        len(val_encoded),
        ctx.reward_dir,
    )
