"""Config sections of the evaluation (stage=eval and the online rounds' dev split)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional  # noqa: UP035 - OmegaConf reads these annotations at runtime

from rlhf.choices import DevMetric, JudgeBackend, ReferenceSource, SafetyJudgeChoice, SpeechFormat
from rlhf.config.fields import opt
from rlhf.config.prefs import EndpointConfig, JudgeConfig, SpeechColumns, SpeechSourceConfig


# -- evaluation -----------------------------------------------------------------------------------------
@dataclass
class EvalSpeechesConfig(SpeechSourceConfig):
    path: Optional[str] = opt(None, "null = the held-out (val) questions of data.path; else a speech file")
    min_chars: int = opt(0, "drop shorter speeches")
    limit: Optional[int] = opt(64, "evaluate the first N cleaned speeches (null = all)")


@dataclass
class EvalReferenceConfig(EndpointConfig):
    """What the policy is compared against."""

    source: ReferenceSource = opt(
        ReferenceSource.model,
        "model (a local checkpoint) | endpoint (OpenAI-compatible) | stored (a file of responses)",
    )
    path: Optional[str] = opt(None, "model: checkpoint directory (null = the run's SFT checkpoint); stored: the file")
    temperature: float = opt(0.0, "endpoint: sampling temperature")
    format: SpeechFormat = opt(SpeechFormat.auto, "stored: auto | csv | jsonl | parquet")
    columns: SpeechColumns = opt(
        help="stored: the speech columns that match responses to speeches (by id if mapped, else by text)",
        factory=lambda: SpeechColumns(text="question", title=None, id=None, topic=None),
    )
    response_column: str = opt("response", "stored: the column holding the reference response")


@dataclass
class EvalJudgeConfig(JudgeConfig):
    """Who decides which answer is better."""

    backend: JudgeBackend = opt(
        JudgeBackend.reward,
        "reward (the reward model) | openai (e.g. GPT-4o) | local (a model directory on a generator actor)",
    )
    prompt: Optional[str] = opt(None, "pairwise prompt file (null = rlhf/eval/pairwise_prompt_v1.md)")
    max_tokens: int = opt(160, "room for the JSON answer")
    absolute: bool = opt(True, "also rate every answer 1-5 on each principle (the preference builder's judge)")
    absolute_prompt: Optional[str] = opt(None, "absolute-rating prompt file (null = the preference builder's)")


@dataclass
class EvalSafetyConfig:
    """Safety probes (rlhf/safety, docs/safety.md), answered by every evaluated policy and its reference."""

    enabled: bool = opt(True, "run the probes in stage=eval and with every dev evaluation of the rounds")
    gate: bool = opt(False, "a round whose probes regressed against the starting policy cannot be the best")
    probes: Optional[str] = opt(None, "probe file (JSON Lines; null = rlhf/safety/probes_v1.jsonl)")
    judge: SafetyJudgeChoice = opt(
        SafetyJudgeChoice.auto, "auto (eval.judge when it is an LLM, else rules only) | rules"
    )
    max_tokens: Optional[int] = opt(None, "answer cap for probe answers (null = model.max_response_len)")
    judge_max_tokens: int = opt(400, "room for the judge's per-criterion JSON answer")


@dataclass
class EvalConfig:
    """stage=eval, and the dev-split evaluation of the online rounds (docs/evaluation.md)."""

    run: Optional[str] = opt(
        None, "a run directory to evaluate: every policy_round_NNN, its sft as reference, its reward_model as judge"
    )
    policies: List[str] = opt(help="extra policy checkpoint directories to evaluate", factory=list)
    speeches: EvalSpeechesConfig = opt(help="the evaluation speeches", factory=EvalSpeechesConfig)
    preference_path: Optional[str] = opt(
        None,
        "preference test split (Parquet) for the reward-model metrics (null = counsel-chat's held-out upvote pairs)",
    )
    reference: EvalReferenceConfig = opt(help="what the policy is compared against", factory=EvalReferenceConfig)
    judge: EvalJudgeConfig = opt(help="who decides which answer is better", factory=EvalJudgeConfig)
    temperature: float = opt(0.0, "sampling temperature of the evaluated answers (0 = greedy)")
    max_tokens: Optional[int] = opt(None, "answer cap without the length constraint (null = model.max_response_len)")
    length_constrained: bool = opt(True, "also evaluate with a length instruction and token cap (as the paper)")
    length_max_tokens: int = opt(32, "token cap of a length-constrained answer")
    length_words: int = opt(25, "N in the length instruction")
    length_instruction: str = opt(
        "Please answer in at most {words} words.", "added after the speech; {words} = length_words"
    )
    bootstrap_samples: int = opt(1000, "resamples for the bootstrap intervals")
    confidence: float = opt(0.95, "interval coverage")
    ece_bins: int = opt(10, "equal-width bins of the reward model's ECE")
    every_rounds: int = opt(1, "dev evaluation every N online rounds (and after the last); 0 = off")
    dev_fraction: float = opt(0.1, "share of training speeches held out as the dev split (paper: 10%)")
    dev_max_speeches: Optional[int] = opt(64, "at most this many dev speeches (null = no cap)")
    dev_metric: DevMetric = opt(DevMetric.win_rate, "best checkpoint by dev win_rate (vs the start) or reward")
    outcome: bool = opt(True, "after the rounds: final vs starting policy on held-out speeches, with guards")
    outcome_limit: Optional[int] = opt(None, "at most this many held-out speeches (null = all)")
    safety: EvalSafetyConfig = opt(help="the safety probes", factory=EvalSafetyConfig)
