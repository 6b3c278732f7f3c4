"""Typed run configuration. Hydra composes the YAML in conf/; `load_config` turns it into these
dataclasses (wrong types and missing values fail here, with the key named) and `validate` checks
everything that relates fields to each other before any actor starts.

Every field is documented in the YAML file that sets it (conf/).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

STAGES = ("recipe", "sft", "reward", "online_dpo", "offline_dpo", "build_prefs", "eval")
RECIPE = ("sft", "reward", "online_dpo")
TRUNCATED = ("reject_only", "drop", "keep")  # what a response cut at the token limit counts as (rlhf.pairs)
SCHEDULES = ("constant", "cosine")  # after linear warm-up: hold the rate, or decay it to ~0 by the last step
SYNC_METHODS = ("auto", "object_store", "collective", "cuda_ipc")  # trainer -> vLLM weights (rlhf.sync)


class ConfigError(ValueError):
    """A configuration mistake, with what to change."""


@dataclass
class TinyModelConfig:
    vocab_size: int = 4096
    hidden_size: int = 128
    intermediate_size: int = 384
    num_layers: int = 2
    num_heads: int = 2
    head_dim: int = 64
    max_position_embeddings: int = 512


@dataclass
class GgufSource:
    """A GGUF file shipped inside an installed Python package (rlhf.models.gguf)."""

    package: str = ""           # importable package that holds the file
    distribution: str = ""      # its pip name, whose dist-info holds the licence
    file: str = ""              # the GGUF file's name inside the package
    sha256: str = ""            # expected digest; a different file is refused
    licence: str = ""           # SPDX id, recorded with the converted checkpoint
    install_hint: str = ""      # what to run when the package is missing


@dataclass
class ModelConfig:
    name: str = "tiny"
    path: Optional[str] = None
    gguf: Optional[GgufSource] = None
    cache_dir: str = ".cache/models"
    trust_remote_code: bool = False
    max_prompt_len: int = 192
    max_response_len: int = 64
    gradient_checkpointing: bool = False
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)


@dataclass
class ZeroConfig:
    """DeepSpeed ZeRO-3 knobs that differ between a CPU box and a GPU cluster."""

    overlap_comm: bool = False
    param_persistence_threshold: int = 0
    prefetch_bucket_size: int = 50_000_000
    max_live_parameters: int = 1_000_000_000


@dataclass
class DeviceConfig:
    kind: str = "cpu"
    dtype: str = "float32"
    zero: ZeroConfig = field(default_factory=ZeroConfig)


@dataclass
class TrainerLayout:
    ranks: int = 2
    cpus_per_rank: float = 0.5
    gpus_per_rank: float = 0.0
    threads: int = 1
    resources: Dict[str, float] = field(default_factory=dict)


@dataclass
class GeneratorLayout:
    engines: int = 1
    tensor_parallel: int = 1
    cpus_per_engine: float = 0.5
    gpus_per_engine: float = 0.0
    threads: int = 2
    kv_cache_gib: float = 1.0
    gpu_memory_utilization: float = 0.5
    resources: Dict[str, float] = field(default_factory=dict)


@dataclass
class RewardLayout:
    actors: int = 1
    cpus_per_actor: float = 0.5
    gpus_per_actor: float = 0.0
    threads: int = 2
    resources: Dict[str, float] = field(default_factory=dict)


@dataclass
class ClusterConfig:
    name: str = "local_cpu"
    address: Optional[str] = None
    num_cpus: Optional[int] = 2
    placement_strategy: str = "PACK"
    nodes: int = 1
    gpus_per_node: int = 0
    cpus_per_node: Optional[int] = None
    colocate: bool = False
    trainer: TrainerLayout = field(default_factory=TrainerLayout)
    generator: GeneratorLayout = field(default_factory=GeneratorLayout)
    reward: RewardLayout = field(default_factory=RewardLayout)


@dataclass
class DataConfig:
    path: str = "data/counsel-chat/counsel_chat.csv"
    preference_path: Optional[str] = None
    max_sft_examples: Optional[int] = None
    max_pairs: Optional[int] = None


@dataclass
class OptimConfig:
    """One training stage's schedule. batch_size counts examples (or pairs) per optimizer step,
    across all trainer ranks; micro_batch is per rank per forward pass."""

    epochs: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    batch_size: int = 16
    micro_batch: int = 8
    warmup_steps: int = 0
    schedule: str = "constant"


@dataclass
class RewardTrainingConfig(OptimConfig):
    normalize: bool = True
    eval_pairs: Optional[int] = None
    whole_answers: bool = False


@dataclass
class DPOConfig(OptimConfig):
    beta: float = 0.1


@dataclass
class OnlineConfig(DPOConfig):
    rounds: int = 3
    speeches_per_round: int = 32
    samples_per_speech: int = 4
    temperature: float = 1.0
    top_p: float = 1.0
    min_reward_gap: float = 0.0
    truncated: str = "reject_only"
    metric_pairs: int = 8
    refresh_reference: bool = False
    save_every_round: bool = True


@dataclass
class SyncConfig:
    method: str = "auto"


@dataclass
class RewardSourceConfig:
    source: str = "local"
    path: Optional[str] = None
    url: Optional[str] = None
    batch_size: int = 32
    timeout_s: float = 60.0
    retries: int = 3
    api_key_env: Optional[str] = None


@dataclass
class SpeechColumns:
    text: str = "questionText"
    title: Optional[str] = "questionTitle"
    id: Optional[str] = "questionID"
    topic: Optional[str] = "topic"


@dataclass
class SpeechSourceConfig:
    path: str = "data/counsel-chat/counsel_chat.csv"
    format: str = "auto"
    columns: SpeechColumns = field(default_factory=SpeechColumns)
    min_chars: int = 100
    max_chars: int = 1000
    limit: Optional[int] = None


@dataclass
class ChatBackendConfig:
    kind: str = "local"
    model: Optional[str] = None
    base_url: Optional[str] = None
    api_key_env: Optional[str] = None
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 256
    timeout_s: float = 60.0
    max_retries: int = 5
    concurrency: int = 4


@dataclass
class ResponderConfig(ChatBackendConfig):
    name: str = ""


@dataclass
class JudgeConfig(ChatBackendConfig):
    temperature: float = 0.0
    prompt: Optional[str] = None
    max_attempts: int = 3
    json_mode: bool = False


@dataclass
class PrefsConfig:
    speeches: SpeechSourceConfig = field(default_factory=SpeechSourceConfig)
    responders: List[ResponderConfig] = field(default_factory=list)
    responders_per_speech: int = 4
    samples_per_responder: int = 1
    system_prompt: Optional[str] = None
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    aggregate: str = "mean"
    min_gap: float = 1.0
    test_fraction: float = 0.1
    out_dir: Optional[str] = None
    local_max_model_len: int = 4096
    local_batch_size: int = 64
    judge_check: int = 16


@dataclass
class EvalSpeechesConfig(SpeechSourceConfig):
    path: Optional[str] = None  # null = the held-out (val) questions of data.path
    min_chars: int = 0
    limit: Optional[int] = 64


@dataclass
class EvalReferenceConfig(ChatBackendConfig):
    kind: str = "model"  # model | endpoint | stored
    path: Optional[str] = None
    format: str = "auto"
    columns: SpeechColumns = field(default_factory=lambda: SpeechColumns(text="question", title=None, id=None,
                                                                        topic=None))
    response_column: str = "response"
    temperature: float = 0.0


@dataclass
class EvalJudgeConfig(JudgeConfig):
    kind: str = "reward"  # reward | openai | local
    max_tokens: int = 160
    absolute: bool = True
    absolute_prompt: Optional[str] = None


@dataclass
class EvalSafetyConfig:
    enabled: bool = True
    gate: bool = False
    probes: Optional[str] = None
    judge: str = "auto"
    max_tokens: Optional[int] = None
    judge_max_tokens: int = 400


@dataclass
class EvalConfig:
    run: Optional[str] = None
    policies: List[str] = field(default_factory=list)
    speeches: EvalSpeechesConfig = field(default_factory=EvalSpeechesConfig)
    preference_path: Optional[str] = None
    reference: EvalReferenceConfig = field(default_factory=EvalReferenceConfig)
    judge: EvalJudgeConfig = field(default_factory=EvalJudgeConfig)
    temperature: float = 0.0
    max_tokens: Optional[int] = None
    length_constrained: bool = True
    length_max_tokens: int = 32
    length_words: int = 25
    length_instruction: str = "Please answer in at most {words} words."
    bootstrap_samples: int = 1000
    confidence: float = 0.95
    ece_bins: int = 10
    every_rounds: int = 1
    dev_fraction: float = 0.1
    dev_max_speeches: Optional[int] = 64
    dev_metric: str = "win_rate"
    outcome: bool = True
    outcome_limit: Optional[int] = None
    safety: EvalSafetyConfig = field(default_factory=EvalSafetyConfig)


@dataclass
class TrackingConfig:
    wandb: bool = True
    project: str = "psychocounsel-rlhf"
    entity: Optional[str] = None
    mode: str = "auto"
    verbose_actors: bool = False
    log_samples: int = 0


@dataclass
class RunConfig:
    stage: str = "recipe"
    recipe: List[str] = field(default_factory=lambda: list(RECIPE))
    run_dir: str = "runs/default"
    seed: int = 0
    save_every_steps: int = 50
    system_prompt: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    data: DataConfig = field(default_factory=DataConfig)
    sft: OptimConfig = field(default_factory=OptimConfig)
    reward_training: RewardTrainingConfig = field(default_factory=RewardTrainingConfig)
    offline: DPOConfig = field(default_factory=DPOConfig)
    online: OnlineConfig = field(default_factory=OnlineConfig)
    reward: RewardSourceConfig = field(default_factory=RewardSourceConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    prefs: PrefsConfig = field(default_factory=PrefsConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)

    @property
    def stages(self) -> tuple[str, ...]:
        return tuple(self.recipe) if self.stage == "recipe" else (self.stage,)


def load_config(cfg: DictConfig) -> RunConfig:
    """Composed Hydra config -> typed RunConfig, or ConfigError naming the bad key."""
    body = {k: v for k, v in cfg.items() if k != "hydra"}
    missing = sorted(OmegaConf.missing_keys(OmegaConf.create(body)))
    if missing:
        raise ConfigError(f"missing required value(s): {', '.join(missing)} (set them on the command line, "
                          f"e.g. {missing[0]}=...)")
    try:
        run = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(RunConfig), body))
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None)
        message = str(getattr(err, "msg", err)).splitlines()[0]
        raise ConfigError(f"config key {key!r}: {message}") from None
    validate(run)
    return run


def accumulation_steps(optim: OptimConfig, world_size: int) -> int:
    return optim.batch_size // (optim.micro_batch * world_size)


def validate(run: RunConfig) -> None:
    """Cross-field checks; each error says what to change."""
    errors = []
    if run.stage not in STAGES:
        errors.append(f"stage={run.stage!r} is not one of {STAGES}")
    if not run.recipe or [s for s in run.recipe if s not in RECIPE] or list(run.recipe) != sorted(
            run.recipe, key=RECIPE.index):
        errors.append(f"recipe={list(run.recipe)} must be stages of {list(RECIPE)}, in that order")
    if run.device.kind not in ("cpu", "gpu"):
        errors.append(f"device.kind={run.device.kind!r} must be cpu or gpu")
    if run.device.dtype not in ("float32", "bfloat16", "float16"):
        errors.append(f"device.dtype={run.device.dtype!r} must be float32, bfloat16 or float16")
    layout = run.cluster
    world = layout.trainer.ranks
    if world < 1 or layout.generator.engines < 1 or layout.reward.actors < 1:
        errors.append("cluster.trainer.ranks, cluster.generator.engines and cluster.reward.actors must be >= 1")
    for name in ("sft", "reward_training", "offline", "online"):
        optim = getattr(run, name)
        if world >= 1 and (optim.micro_batch < 1 or optim.batch_size % (optim.micro_batch * world)):
            errors.append(f"{name}.batch_size={optim.batch_size} must be a multiple of {name}.micro_batch "
                          f"({optim.micro_batch}) x cluster.trainer.ranks ({world}, the ZeRO-3 world size of "
                          f"cluster={layout.name}): change {name}.batch_size, {name}.micro_batch or the ranks")
        if optim.lr <= 0 or optim.epochs < 1:
            errors.append(f"{name}.lr must be > 0 and {name}.epochs >= 1")
        if optim.schedule not in SCHEDULES or optim.warmup_steps < 0:
            errors.append(f"{name}.schedule={optim.schedule!r} must be one of {SCHEDULES}, "
                          f"{name}.warmup_steps >= 0")
    online = run.online
    if online.samples_per_speech < 2:
        errors.append(f"online.samples_per_speech={online.samples_per_speech}: need at least 2 to form a pair")
    if online.metric_pairs < 0:
        errors.append(f"online.metric_pairs={online.metric_pairs} must be >= 0")
    if online.truncated not in TRUNCATED:
        errors.append(f"online.truncated={online.truncated!r} must be one of {TRUNCATED}")
    if online.rounds < 1 or online.speeches_per_round < 1:
        errors.append("online.rounds and online.speeches_per_round must be >= 1")
    if run.device.kind == "cpu" and (layout.trainer.gpus_per_rank or layout.generator.gpus_per_engine
                                     or layout.reward.gpus_per_actor):
        errors.append(f"cluster={layout.name} asks for GPUs but device=cpu; use device=gpu or a CPU layout")
    built = run.model.path is None and run.model.gguf is None  # the tiny model, built at start-up
    if built and run.model.tiny.head_dim not in (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512):
        errors.append(f"model.tiny.head_dim={run.model.tiny.head_dim}: vLLM's CPU attention supports 32, 64, 80, ..., 256")
    if built and run.model.max_prompt_len + run.model.max_response_len > run.model.tiny.max_position_embeddings:
        errors.append("model.max_prompt_len + model.max_response_len exceeds model.tiny.max_position_embeddings")
    errors += pretrained_with_tiny_rates(run)
    if run.reward.source not in ("local", "remote"):
        errors.append(f"reward.source={run.reward.source!r} must be local or remote")
    if run.reward.source == "remote" and not run.reward.url:
        errors.append("reward.source=remote needs reward.url (e.g. http://127.0.0.1:5000/get_reward)")
    needs_rm = "online_dpo" in run.stages and "reward" not in run.stages
    if needs_rm and run.reward.source == "local" and not run.reward.path:
        errors.append("stage=online_dpo without the reward stage needs reward.path (a reward-model checkpoint) "
                      "or reward=remote")
    if run.stage == "offline_dpo" and not run.data.preference_path:
        errors.append("stage=offline_dpo needs data.preference_path (Parquet in the PsychoCounsel-Preference schema)")
    if run.stage in ("reward", "online_dpo", "offline_dpo") and run.model.path is None:
        errors.append(f"stage={run.stage} starts from an existing policy: set model.path "
                      "(e.g. a run's sft/ directory), or use stage=recipe")
    from rlhf.layout import layout_errors

    errors += layout_errors(run)
    errors += validate_prefs(run.prefs, run.stage == "build_prefs")
    errors += validate_eval(run)
    errors += validate_sync(run)
    if errors:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(errors))


def pretrained_with_tiny_rates(run: RunConfig) -> list[str]:
    """model=tiny/small carry learning rates for a randomly initialised 2-layer model (SFT 1e-3): one
    step at that rate wrecks pretrained weights. A model.path under those presets must be a model
    this project built (config.json says `rlhf_built`), or the user must pick model=hf."""
    model = run.model
    if model.name not in ("tiny", "small") or model.path is None:
        return []
    import json

    from rlhf.paths import resolve_path

    config = resolve_path(model.path) / "config.json"
    hub_name = model.path.count("/") == 1 and not model.path.startswith(("/", ".", "~"))
    if config.is_file():
        try:
            if json.loads(config.read_text()).get("rlhf_built"):
                return []
        except ValueError:
            pass  # unreadable: treated as pretrained
    elif not hub_name:
        return []  # no such directory: the pipeline says so, naming the path
    return [f"model.path={model.path} is a pretrained checkpoint, but model={model.name}'s settings are in effect "
            f"(sft.lr={run.sft.lr}, online.lr={run.online.lr}: rates for a model built from scratch, which wreck "
            f"pretrained weights). Use `model=hf model.path={model.path}` (pretrained settings: small rates with "
            "warm-up, the paper's DPO settings), or model=smollm2"]


def validate_prefs(prefs: PrefsConfig, building: bool) -> list[str]:
    """Checks of the preference-builder section (responders only when stage=build_prefs)."""
    errors = []
    if prefs.aggregate not in ("mean", "total"):
        errors.append(f"prefs.aggregate={prefs.aggregate!r} must be mean or total")
    if not 0 <= prefs.speeches.min_chars <= prefs.speeches.max_chars:
        errors.append("prefs.speeches.min_chars must be >= 0 and <= prefs.speeches.max_chars")
    if prefs.speeches.limit is not None and prefs.speeches.limit < 1:
        errors.append(f"prefs.speeches.limit={prefs.speeches.limit} must be >= 1 (null = every cleaned speech)")
    if prefs.min_gap < 0 or not 0 <= prefs.test_fraction < 1:
        errors.append("prefs.min_gap must be >= 0 and prefs.test_fraction in [0, 1)")
    if prefs.judge.max_attempts < 1 or prefs.samples_per_responder < 1 or prefs.responders_per_speech < 1:
        errors.append("prefs.judge.max_attempts, prefs.samples_per_responder and prefs.responders_per_speech must be >= 1")
    backends = [(f"prefs.responders[{i}]", r) for i, r in enumerate(prefs.responders)] + [("prefs.judge", prefs.judge)]
    for label, backend in backends:
        if backend.kind not in ("local", "openai"):
            errors.append(f"{label}.kind={backend.kind!r} must be local or openai")
        elif backend.kind == "openai" and not (backend.base_url and backend.model):
            errors.append(f"{label}: kind=openai needs base_url and model")
        if backend.concurrency < 1 or backend.max_retries < 0 or backend.max_tokens < 1:
            errors.append(f"{label}: concurrency and max_tokens must be >= 1, max_retries >= 0")
    names = [r.name for r in prefs.responders]
    if any(not n for n in names) or len(set(names)) != len(names):
        errors.append("prefs.responders: every responder needs a unique, non-empty name")
    if building:
        for label, backend in backends:  # the key itself is never read here, only whether it is there
            if backend.kind == "openai" and backend.api_key_env and not os.environ.get(backend.api_key_env):
                errors.append(f"{label}.api_key_env: environment variable {backend.api_key_env} is not set")
        if not prefs.responders:
            errors.append("stage=build_prefs needs at least one responder in prefs.responders")
        elif min(prefs.responders_per_speech, len(prefs.responders)) * prefs.samples_per_responder < 2:
            errors.append("prefs: responders_per_speech x samples_per_responder must give at least 2 responses "
                          "per speech to form a pair")
    return errors


def validate_sync(run: RunConfig) -> list[str]:
    method, kind, colocate = run.sync.method, run.device.kind, run.cluster.colocate
    if method not in SYNC_METHODS:
        return [f"sync.method={method!r} must be one of {SYNC_METHODS}"]
    if method == "cuda_ipc" and not (kind == "gpu" and colocate):
        return ["sync.method=cuda_ipc needs device=gpu and a colocated layout (cluster.colocate=true): "
                "use sync.method=auto"]
    if method == "collective" and colocate:
        return ["sync.method=collective cannot connect a trainer rank and a vLLM worker on the same GPU "
                "(cluster.colocate=true): use sync.method=auto (CUDA IPC there)"]
    return []


def validate_eval(run: RunConfig) -> list[str]:
    """Checks of the eval section (endpoints' key variables only when stage=eval)."""
    ev, errors = run.eval, []
    if ev.every_rounds < 0 or not 0 <= ev.dev_fraction < 1:
        errors.append("eval.every_rounds must be >= 0 (0 = off) and eval.dev_fraction in [0, 1)")
    if ev.dev_metric not in ("win_rate", "reward"):
        errors.append(f"eval.dev_metric={ev.dev_metric!r} must be win_rate or reward")
    if ev.bootstrap_samples < 1 or not 0 < ev.confidence < 1 or ev.ece_bins < 1:
        errors.append("eval.bootstrap_samples and eval.ece_bins must be >= 1, eval.confidence in (0, 1)")
    if ev.length_max_tokens < 1 or ev.length_words < 1 or (ev.max_tokens is not None and ev.max_tokens < 1):
        errors.append("eval.max_tokens, eval.length_max_tokens and eval.length_words must be >= 1")
    ref, judge = ev.reference, ev.judge
    if ref.kind not in ("model", "endpoint", "stored"):
        errors.append(f"eval.reference.kind={ref.kind!r} must be model, endpoint or stored")
    elif ref.kind == "endpoint" and not (ref.base_url and ref.model):
        errors.append("eval.reference: kind=endpoint needs base_url and model (e.g. gpt-4o)")
    elif ref.kind == "stored" and not ref.path:
        errors.append("eval.reference: kind=stored needs path (a CSV/JSONL/Parquet file of reference responses)")
    if judge.kind not in ("reward", "openai", "local"):
        errors.append(f"eval.judge.kind={judge.kind!r} must be reward (the reward model), openai or local")
    elif judge.kind == "openai" and not (judge.base_url and judge.model):
        errors.append("eval.judge: kind=openai needs base_url and model")
    if judge.max_attempts < 1:
        errors.append("eval.judge.max_attempts must be >= 1")
    if ev.safety.judge not in ("auto", "rules"):
        errors.append(f"eval.safety.judge={ev.safety.judge!r} must be auto (the principle judge when it is an LLM, "
                      "else rules only) or rules")
    if run.stage == "eval":
        if not (run.model.path or ev.policies or ev.run):
            errors.append("stage=eval needs a policy: eval.run (a run directory: every round's policy), "
                          "eval.policies (checkpoint directories) or model.path")
        if judge.kind == "reward" and run.reward.source == "local" and not (run.reward.path or ev.run):
            errors.append("stage=eval with the reward model as judge needs reward.path, eval.run (its "
                          "reward_model) or reward=remote")
        for label, backend in (("eval.reference", ref), ("eval.judge", judge)):
            if backend.kind in ("endpoint", "openai") and backend.api_key_env and not os.environ.get(backend.api_key_env):
                errors.append(f"{label}.api_key_env: environment variable {backend.api_key_env} is not set")
    return errors
