"""What a run saves and resumes from: HF checkpoints of the policy and reward model
(run_dir/checkpoints/<name>), and the trainer group's ZeRO-3 training state
(run_dir/state/<key>/<progress>) with its progress record in state.json. Each is written under a
temporary name and renamed (rlhf.atomic), so a half-written one is never taken for complete."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from rlhf import atomic

log = logging.getLogger(__name__)


def save_model(trainers, tokenizer, checkpoints: Path, name: str, extra_config: dict | None = None) -> str:
    """The trainer group's model as an HF checkpoint (safetensors, tokenizer with its chat
    template) in checkpoints/<name>; `extra_config` goes into its config.json."""
    final = checkpoints / name
    with atomic.directory(final) as tmp:
        trainers.save(str(tmp), extra_config)
        tokenizer.save_pretrained(tmp)
    return str(final)


def state_root(run_dir: Path, key: str) -> Path:
    return run_dir / "state" / key


def save_state(trainers, state, run_dir: Path, key: str, progress: dict) -> None:
    """The group's ZeRO-3 shards of weights and optimizer state in a directory of their own
    (state/<key>/<progress>), then the progress record naming it, then the older ones removed. A
    kill at any moment leaves state.json naming a complete directory whose state matches the
    progress it records: replacing one directory in place would leave moments where the record
    names a state that is gone (DeepSpeed's loader then stops on a bare assertion) or a newer one."""
    name = "_".join(f"{field}-{value}" for field, value in progress.items())
    root = state_root(run_dir, key)
    with atomic.directory(root / name) as tmp:
        trainers.save_state(str(tmp))
    state.set_progress(key, {**progress, "state_dir": name})
    for old in root.iterdir():  # the previous save, and leftovers of saves a kill cut short
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)


def load_state(trainers, state, run_dir: Path, key: str) -> None:
    """Restore the training state state.json records for `key` (written by save_state)."""
    progress = state.progress(key)
    path = state_root(run_dir, key) / progress["state_dir"] if "state_dir" in progress else state_root(run_dir, key)
    if not path.is_dir() or not any(path.iterdir()):
        from rlhf.data.errors import DataError

        raise DataError(
            str(path),
            f"the training state state.json records for {key} ({progress}) is missing",
            hint="the run directory was changed by hand; rerun with a new run_dir",
        )
    trainers.load_state(str(path))


def resumable_steps(trainers, state, tracker, run_dir: Path, stage: str, save_every: int) -> dict:
    """train_steps arguments for a step-based stage: start after its last saved step (restoring
    the training state and forgetting the step records after it), save every `save_every` steps."""
    done = state.progress(stage).get("steps_done", 0)
    if done:
        load_state(trainers, state, run_dir, stage)
        tracker.drop_steps_from(stage, done)
        log.info("%s: resuming after step %d", stage, done)
    return {
        "start_step": done,
        "save_every": save_every,
        "save_progress": lambda steps: save_state(trainers, state, run_dir, stage, {"steps_done": steps}),
    }
