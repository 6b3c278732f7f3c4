"""The typed run configuration: the schema (one dataclass per section, with defaults and help),
its registration in Hydra's ConfigStore, and loading plus checking before any actor starts."""

from rlhf.config.evaluation import (
    EvalConfig,
    EvalJudgeConfig,
    EvalReferenceConfig,
    EvalSafetyConfig,
    EvalSpeechesConfig,
)
from rlhf.config.hardware import (
    ClusterConfig,
    DeviceConfig,
    GeneratorLayout,
    GgufSource,
    ModelConfig,
    RewardLayout,
    TinyModelConfig,
    TrainerLayout,
    ZeroConfig,
)
from rlhf.config.loading import compose, load_config, validate
from rlhf.config.prefs import (
    ChatBackendConfig,
    EndpointConfig,
    JudgeConfig,
    PrefsConfig,
    ResponderConfig,
    SpeechColumns,
    SpeechSourceConfig,
)
from rlhf.config.schema import RECIPE, RunConfig, TrackingConfig
from rlhf.config.training import (
    DataConfig,
    DPOConfig,
    OnlineConfig,
    OptimConfig,
    RewardSourceConfig,
    RewardTrainingConfig,
    SyncConfig,
)
from rlhf.errors import ConfigError

__all__ = [
    "RECIPE",
    "ChatBackendConfig",
    "ClusterConfig",
    "ConfigError",
    "DPOConfig",
    "DataConfig",
    "DeviceConfig",
    "EndpointConfig",
    "EvalConfig",
    "EvalJudgeConfig",
    "EvalReferenceConfig",
    "EvalSafetyConfig",
    "EvalSpeechesConfig",
    "GeneratorLayout",
    "GgufSource",
    "JudgeConfig",
    "ModelConfig",
    "OnlineConfig",
    "OptimConfig",
    "PrefsConfig",
    "ResponderConfig",
    "RewardLayout",
    "RewardSourceConfig",
    "RewardTrainingConfig",
    "RunConfig",
    "SpeechColumns",
    "SpeechSourceConfig",
    "SyncConfig",
    "TinyModelConfig",
    "TrackingConfig",
    "TrainerLayout",
    "ZeroConfig",
    "compose",
    "load_config",
    "validate",
]
