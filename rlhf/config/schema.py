"""The run configuration: one typed dataclass per section (rlhf.config.hardware, training, prefs,
evaluation), with every default and its help text.

This is the schema Hydra composes against (registered in its ConfigStore by rlhf.config.store):
conf/config.yaml holds only the defaults list, and the options of each group (conf/<group>/*.yaml)
hold what differs from these defaults. `python -m rlhf.launch --help` lists every field with its
type, default and help; `--cfg job` prints the composed values.

OmegaConf resolves the annotations at runtime, so they use `Optional`/`List`/`Dict`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional  # noqa: UP035 - OmegaConf reads these annotations at runtime

from rlhf.choices import Stage, WandbMode
from rlhf.config.evaluation import EvalConfig
from rlhf.config.fields import opt
from rlhf.config.hardware import ClusterConfig, DeviceConfig, ModelConfig
from rlhf.config.prefs import PrefsConfig
from rlhf.config.training import (
    DataConfig,
    DPOConfig,
    OnlineConfig,
    OptimConfig,
    RewardSourceConfig,
    RewardTrainingConfig,
    SyncConfig,
)

RECIPE = (Stage.sft, Stage.reward, Stage.online_dpo)
SYSTEM_PROMPT = (
    "You are a licensed psychotherapist. Respond to the client with empathy, relevance and clarity; "
    "avoid harmful language; help them explore their feelings and support their autonomy."
)


# -- tracking and the run -----------------------------------------------------------------------------
@dataclass
class TrackingConfig:
    wandb: bool = opt(True, "log metrics to W&B (numbers only; no client text unless log_samples)")
    project: str = opt("psychocounsel-rlhf", "W&B project")
    entity: Optional[str] = opt(None, "W&B entity (team or user); null = your default")
    group: Optional[str] = opt(
        None, "W&B group; null = the sweep directory's name in a Hydra multirun (--multirun), else none"
    )
    mode: WandbMode = opt(
        WandbMode.auto,
        "auto = WANDB_MODE if set, else online when logged in (wandb login or "
        "WANDB_API_KEY), else offline (files in the run dir) | online | offline | "
        "disabled; an explicit WANDB_MODE always wins",
    )
    verbose_actors: bool = opt(
        False, "stream every actor's log and third-party loggers (vLLM, Ray, httpx) to the console"
    )
    log_samples: int = opt(
        0, "samples per round logged to W&B as a table, redacted (0 = none: no client text leaves the machine)"
    )


@dataclass
class RunConfig:
    stage: Stage = opt(
        Stage.recipe, "recipe (the stages of `recipe`) | sft | reward | online_dpo | offline_dpo | build_prefs | eval"
    )
    recipe: List[Stage] = opt(
        help="the stages stage=recipe runs, in order (a subset of sft, reward, online_dpo)",
        factory=lambda: list(RECIPE),
    )
    run_dir: str = opt(
        "runs/${now:%Y%m%d-%H%M%S}",
        "everything a run writes: checkpoints, metrics, summary, W&B files; rerun with the same to resume",
    )
    seed: int = opt(0, "seeds data order, model init, sampling")
    save_every_steps: int = opt(
        50,
        "training state is saved every this many optimizer steps (SFT, reward, offline "
        "DPO) and after every online round",
    )
    system_prompt: str = opt(SYSTEM_PROMPT, "the role-play instruction every client speech is sent with")
    model: ModelConfig = opt(help="the policy model (conf/model)", factory=ModelConfig)
    device: DeviceConfig = opt(help="cpu or gpu (conf/device)", factory=DeviceConfig)
    cluster: ClusterConfig = opt(help="the worker groups' layout (conf/cluster)", factory=ClusterConfig)
    data: DataConfig = opt(help="training data", factory=DataConfig)
    sft: OptimConfig = opt(
        help="supervised warm start on therapist answers (NLL on answer tokens)", factory=OptimConfig
    )
    reward_training: RewardTrainingConfig = opt(help="the reward stage", factory=RewardTrainingConfig)
    offline: DPOConfig = opt(
        help="offline DPO on a fixed preference set (needs data.preference_path)", factory=DPOConfig
    )
    online: OnlineConfig = opt(help="the online preference rounds", factory=OnlineConfig)
    reward: RewardSourceConfig = opt(help="the online rounds' reward source (conf/reward)", factory=RewardSourceConfig)
    tracking: TrackingConfig = opt(help="metrics files and W&B", factory=TrackingConfig)
    prefs: PrefsConfig = opt(help="the preference builder (conf/prefs)", factory=PrefsConfig)
    eval: EvalConfig = opt(help="evaluation (conf/eval)", factory=EvalConfig)
    sync: SyncConfig = opt(help="trainer -> vLLM weight sync", factory=SyncConfig)

    @property
    def stages(self) -> tuple[Stage, ...]:
        return tuple(self.recipe) if self.stage == Stage.recipe else (self.stage,)

    @property
    def offload_trainer_states(self) -> bool:
        """device.zero.offload_states resolved: null means on for colocated layouts."""
        chosen = self.device.zero.offload_states
        return bool(self.cluster.colocate) if chosen is None else bool(chosen)
