"""What every stage works with: the run's config and directory, its records (state, tracker,
results), the tokenizer and encoder, and the worker groups that are up. A stage reads and updates
these fields; rlhf.pipeline builds the context once per run and tears its groups down at the end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlhf import checkpoints

if TYPE_CHECKING:
    from rlhf.chat.local import LocalModels
    from rlhf.config import RunConfig
    from rlhf.state import RunState
    from rlhf.tracking import Tracker
    from rlhf.training.batching import Encoder
    from rlhf.training.group import TrainerGroup
    from rlhf.workers.group import Group


@dataclass
class RunContext:
    run: RunConfig
    run_dir: Path
    state: RunState
    tracker: Tracker
    tokenizer: Any
    encoder: Encoder
    train_questions: list
    val_questions: list
    results: dict  # what run_summary.json reports (and state.json keeps for a resume)
    config_record: dict  # the resolved config, as run_summary.json and W&B record it
    started: float  # wall-clock start of the run (time.time())
    policy_dir: str  # the policy the next stage starts from
    reward_dir: str | None = None  # the reward model this run trained (or eval.run's)
    trainers: TrainerGroup | None = None  # one group for every training stage
    generators: Group | None = None  # the online rounds' vLLM engines
    scorer: Any = None  # the online rounds' reward source (rlhf.scoring.sources)
    local_models: LocalModels | None = None  # judges on generator actors, started on first use
    shared_placement: Any = None  # colocated layouts: one bundle per GPU shared by all groups
    online_init: str | None = None  # the online rounds' starting policy, also their DPO reference
    phase_hook: Callable[[int, str], None] | None = None  # tests: called as a round's phase starts
    extras: dict = field(default_factory=dict)  # stage-local objects another stage reads (dev eval, outcome)

    @property
    def checkpoints(self) -> Path:
        return self.run_dir / "checkpoints"

    def save_model(self, name: str, extra_config: dict | None = None) -> str:
        """The trainer group's model as checkpoints/<name> (HF format, with the tokenizer)."""
        return checkpoints.save_model(self.trainers, self.tokenizer, self.checkpoints, name, extra_config)

    def save_state(self, key: str, progress: dict) -> None:
        checkpoints.save_state(self.trainers, self.state, self.run_dir, key, progress)

    def load_state(self, key: str) -> None:
        """Restore the trainer group's training state that state.json records for `key`."""
        checkpoints.load_state(self.trainers, self.state, self.run_dir, key)

    def resumable_steps(self, stage: str) -> dict:
        return checkpoints.resumable_steps(
            self.trainers, self.state, self.tracker, self.run_dir, stage, self.run.save_every_steps
        )

    def placement(self, group: str, where: list) -> None:
        """Record where a group's actors run (the summary's `placement`)."""
        self.results.setdefault("placement", {})[group] = where

    def shutdown_workers(self) -> list[str]:
        """Stop every group that is up; returns the errors of those that failed to stop."""
        errors = []
        for part in (self.generators, self.scorer, self.trainers, self.local_models):
            if part is not None:
                try:
                    part.shutdown()
                except Exception as err:  # noqa: BLE001 - keep tearing down the rest
                    errors.append(str(err))
        self.generators = self.scorer = self.trainers = self.local_models = None
        from rlhf.workers.group import release_placement

        release_placement(self.shared_placement)
        self.shared_placement = None
        return errors
