"""The stages a run can execute, each a module with `run(ctx: RunContext)`, in one table: the
pipeline looks a stage up here by name, so this table is every stage's one caller.

    stage        module                          needs the trainer group
    sft          rlhf/stages/sft.py              yes   NLL on therapist answers
    reward       rlhf/stages/reward.py           yes   Bradley-Terry reward model
    online_dpo   rlhf/stages/online_dpo.py       yes   the online preference rounds
    offline_dpo  rlhf/stages/offline_dpo.py      yes   preference optimisation on a fixed set
    build_prefs  rlhf/stages/build_prefs.py      no    preference data from responders and a judge
    eval         rlhf/stages/eval.py             no    win rates, reward-model metrics, report
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rlhf.stages import build_prefs, offline_dpo, online_dpo, reward, sft
from rlhf.stages import eval as evaluation
from rlhf.stages.context import RunContext


@dataclass(frozen=True)
class StageSpec:
    name: str
    run: Callable[[RunContext], None]
    needs_trainers: bool  # False: the stage starts no ZeRO-3 group (and the run starts none for it)


STAGES: dict[str, StageSpec] = {
    spec.name: spec
    for spec in (
        StageSpec("sft", sft.run, needs_trainers=True),
        StageSpec("reward", reward.run, needs_trainers=True),
        StageSpec("online_dpo", online_dpo.run, needs_trainers=True),
        StageSpec("offline_dpo", offline_dpo.run, needs_trainers=True),
        StageSpec("build_prefs", build_prefs.run, needs_trainers=False),
        StageSpec("eval", evaluation.run, needs_trainers=False),
    )
}
