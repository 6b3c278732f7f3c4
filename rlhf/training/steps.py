"""The optimizer-step loop of the step-based stages (sft, reward, offline_dpo in rlhf.stages): the
planned steps with a progress bar, each logged, with training state saved every N steps so a killed
run resumes after the last save."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlhf.logs import progress

if TYPE_CHECKING:
    from rlhf.config import OptimConfig


def train_steps(
    trainers,
    tracker,
    stage: str,
    items: list,
    optim: OptimConfig,
    pad_id: int,
    seed: int,
    *,
    start_step: int = 0,
    save_every: int = 0,
    save_progress=None,
) -> dict:
    """Run the optimizer steps of a stage from `start_step`; every `save_every` steps call
    `save_progress(steps_done)` so a killed run resumes there. Returns the last step's metrics."""
    steps = trainers.plan(items, optim.epochs, seed)  # same order on every (re)run: seeded
    metrics: dict = {}
    with progress(len(steps), f"{stage:<10}", "step", initial=start_step) as bar:
        for index in range(start_step, len(steps)):
            metrics = trainers.train_step(steps[index], pad_id)
            tracker.log_step(stage, index, metrics)
            bar.update(1)
            bar.set_postfix({k: f"{metrics[k]:.3f}" for k in ("loss", "accuracy", "implicit_accuracy") if k in metrics})
            done = index + 1
            if save_progress and save_every and done % save_every == 0 and done < len(steps):
                save_progress(done)
    return metrics
