"""stage=offline_dpo: preference optimisation on a fixed preference set (data.preference_path),
the paper's offline baseline; the reference is the starting policy."""

from __future__ import annotations

from rlhf.pairs.splits import training_pairs
from rlhf.stages.context import RunContext
from rlhf.training.group import planned_steps
from rlhf.training.steps import train_steps


def run(ctx: RunContext) -> None:
    cfg, pad = ctx.run.offline, ctx.tokenizer.pad_token_id
    pairs, _ = training_pairs(ctx.run, ctx.train_questions, ctx.val_questions, "train")
    encoded = [ctx.encoder.pair(p.speech.text, p.chosen, p.rejected) for p in pairs[: ctx.run.data.max_pairs]]
    ctx.trainers.load(
        cfg.loss, ctx.policy_dir, cfg, reference_dir=ctx.policy_dir, total_steps=planned_steps(len(encoded), cfg)
    )
    encoded, _ = ctx.trainers.with_reference(encoded, pad)
    last = train_steps(
        ctx.trainers, ctx.tracker, "offline_dpo", encoded, cfg, pad, ctx.run.seed, **ctx.resumable_steps("offline_dpo")
    )
    ctx.policy_dir = ctx.save_model("offline_dpo")
    ctx.results["offline_dpo"] = {
        "pairs": len(encoded),
        "train_loss": last.get("loss"),
        "implicit_accuracy": last.get("implicit_accuracy"),
        "checkpoint": ctx.policy_dir,
    }
