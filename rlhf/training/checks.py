"""Checks of the training sections (sft, reward_training, offline, online) before any actor starts:
batches that split evenly across the ZeRO-3 ranks, schedules, and what a round needs to form pairs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlhf.choices import RoundSpeeches, Schedule, Stage, Truncated, not_one_of
from rlhf.training.losses import preference_losses

if TYPE_CHECKING:
    from rlhf.config import RunConfig

TRAINING_SECTIONS = ("sft", "reward_training", "offline", "online")


def validate_training(run: RunConfig) -> list[str]:
    errors = []
    world, layout = run.cluster.trainer.ranks, run.cluster.name
    for name in TRAINING_SECTIONS:
        optim = getattr(run, name)
        if world >= 1 and (optim.micro_batch < 1 or optim.batch_size % (optim.micro_batch * world)):
            errors.append(
                f"{name}.batch_size={optim.batch_size} must be a multiple of {name}.micro_batch "
                f"({optim.micro_batch}) x cluster.trainer.ranks ({world}, the ZeRO-3 world size of "
                f"cluster={layout}): change {name}.batch_size, {name}.micro_batch or the ranks"
            )
        if optim.lr <= 0 or optim.epochs < 1:
            errors.append(f"{name}.lr must be > 0 and {name}.epochs >= 1")
        errors += not_one_of(f"{name}.schedule", optim.schedule, Schedule)
        if optim.warmup_steps < 0:
            errors.append(f"{name}.warmup_steps must be >= 0")
    for name in ("offline", "online"):
        loss = getattr(run, name).loss
        if loss not in preference_losses():
            errors.append(
                f"{name}.loss={loss!r} must be one of {', '.join(preference_losses())} "
                "(the preference losses in rlhf/training/losses.py)"
            )
    online = run.online
    if online.samples_per_speech < 2:
        errors.append(f"online.samples_per_speech={online.samples_per_speech}: need at least 2 to form a pair")
    if online.metric_pairs < 0:
        errors.append(f"online.metric_pairs={online.metric_pairs} must be >= 0")
    errors += not_one_of("online.truncated", online.truncated, Truncated)
    if online.rounds < 1 or online.speeches_per_round < 1:
        errors.append("online.rounds and online.speeches_per_round must be >= 1")
    if online.save_state_every < 1:
        errors.append(f"online.save_state_every={online.save_state_every} must be >= 1 (rounds between state saves)")
    errors += not_one_of("online.speech_source", online.speech_source, RoundSpeeches)
    zero = run.device.zero
    if zero.offload_states and (zero.offload_optimizer or zero.offload_param):
        errors.append(
            "device.zero.offload_states=true moves states DeepSpeed already keeps in host memory with "
            "device.zero.offload_optimizer or offload_param: turn one of them off"
        )
    return errors


def start_errors(run: RunConfig) -> list[str]:
    """What the run's stages need of the data, checked when a run starts rather than whenever a
    config is composed (the layout and memory tools compose the paper-scale presets without data)."""
    errors, stages = [], set(run.stages)
    if Stage.reward in stages and run.model.require_preference_data and not run.data.preference_path:
        errors.append(
            f"model={run.model.name} trains its reward model at the paper's scale, where it learned "
            "PsychoCounsel-Preference pairs; without data.preference_path the reward stage would train on "
            "counsel-chat upvote pairs instead. Set data.preference_path to a Parquet file in the "
            "PsychoCounsel-Preference schema (stage=build_prefs writes one), or model.require_preference_data=false "
            "to train on counsel-chat upvote pairs knowingly"
        )
    if (
        Stage.online_dpo in stages
        and run.online.speech_source == RoundSpeeches.preference_data
        and not run.data.preference_path
    ):
        errors.append(
            "online.speech_source=preference_data draws the rounds' speeches from data.preference_path, which "
            "is not set: set it, or choose online.speech_source=counsel_chat or prefs"
        )
    return errors
