"""The supervised stages on the trainer group: SFT, reward model, offline DPO. Each is
`load -> steps with a progress bar -> evaluate -> save`, with the same machinery as online DPO."""

from __future__ import annotations

from tqdm import tqdm

from rlhf.config import OptimConfig


def train_steps(trainers, tracker, stage: str, items: list, optim: OptimConfig, pad_id: int, seed: int) -> dict:
    """Run every optimizer step of a stage; returns the last step's metrics."""
    steps = trainers.plan(items, optim.epochs, seed)
    metrics: dict = {}
    with tqdm(steps, desc=f"{stage:<10}", unit="step", dynamic_ncols=True) as bar:
        for index, step in enumerate(bar):
            metrics = trainers.train_step(step, pad_id)
            tracker.log_step(stage, index, metrics)
            bar.set_postfix({k: f"{metrics[k]:.3f}" for k in ("loss", "accuracy", "implicit_accuracy") if k in metrics})
    return metrics
