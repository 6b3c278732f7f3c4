"""stage=sft: the supervised warm start, NLL on counsel-chat therapist answers."""

from __future__ import annotations

import logging

from rlhf.data import counsel_chat
from rlhf.stages.context import RunContext
from rlhf.training.group import planned_steps
from rlhf.training.steps import train_steps

log = logging.getLogger(__name__)


def run(ctx: RunContext) -> None:
    cfg, encoder, pad = ctx.run.sft, ctx.encoder, ctx.tokenizer.pad_token_id
    examples = counsel_chat.sft_examples(ctx.train_questions)[: ctx.run.data.max_sft_examples]
    encoded = [encoder.example(e.speech.text, e.answer) for e in examples]
    val = [encoder.example(e.speech.text, e.answer) for e in counsel_chat.sft_examples(ctx.val_questions)]
    ctx.trainers.load("nll", ctx.policy_dir, cfg, total_steps=planned_steps(len(encoded), cfg))
    last = train_steps(ctx.trainers, ctx.tracker, "sft", encoded, cfg, pad, ctx.run.seed, **ctx.resumable_steps("sft"))
    val_loss = ctx.trainers.evaluate(val, pad)["loss"]
    ctx.policy_dir = ctx.save_model("sft")
    ctx.results["sft"] = {
        "examples": len(encoded),
        "train_loss": last.get("loss"),
        "val_loss": val_loss,
        "checkpoint": ctx.policy_dir,
    }
    log.info(
        "sft: %d examples, train loss %.3f, val loss %.3f -> %s",
        len(encoded),
        last.get("loss", float("nan")),
        val_loss,
        ctx.policy_dir,
    )
