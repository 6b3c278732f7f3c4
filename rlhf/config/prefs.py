"""Config sections of the preference builder (stage=build_prefs) and the chat endpoints it calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional  # noqa: UP035 - OmegaConf reads these annotations at runtime

from rlhf.choices import Aggregate, ChatBackend, SpeechFormat
from rlhf.config.fields import opt


# -- preference builder (stage=build_prefs) -------------------------------------------------------------
@dataclass
class SpeechColumns:
    text: str = opt("questionText", "the speech (required)")
    title: Optional[str] = opt("questionTitle", "optional heading put before the text (null = none)")
    id: Optional[str] = opt("questionID", "optional stable id (null = the row's line number)")
    topic: Optional[str] = opt("topic", "optional topic, kept with the speech (null = none)")


@dataclass
class SpeechSourceConfig:
    path: str = opt("data/counsel-chat/counsel_chat.csv", "CSV, JSONL or Parquet of client speeches")
    format: SpeechFormat = opt(SpeechFormat.auto, "auto (from the suffix) | csv | jsonl | parquet")
    columns: SpeechColumns = opt(help="which columns hold what", factory=SpeechColumns)
    min_chars: int = opt(100, "drop shorter speeches (paper: 100)")
    max_chars: int = opt(1000, "drop longer speeches (paper: 1,000)")
    limit: Optional[int] = opt(None, "use only the first N cleaned speeches (null = all)")


@dataclass
class EndpointConfig:
    """An OpenAI-compatible endpoint and how it is called (rlhf.chat.openai_chat)."""

    model: Optional[str] = opt(
        None, "the endpoint's model name (a local backend: a model directory, null = the run's model)"
    )
    base_url: Optional[str] = opt(
        None, "the endpoint, e.g. http://127.0.0.1:8000/v1 (choosing one sends the texts there)"
    )
    api_key_env: Optional[str] = opt(None, "NAME of the environment variable holding the key (null = no key)")
    temperature: float = opt(1.0, "sampling temperature")
    top_p: float = opt(1.0, "nucleus sampling")
    max_tokens: int = opt(256, "answer cap in tokens")
    timeout_s: float = opt(60.0, "seconds per request")
    max_retries: int = opt(5, "retries on timeouts, 429, 5xx (exponential backoff, honours Retry-After)")
    concurrency: int = opt(4, "requests in flight")


@dataclass
class ChatBackendConfig(EndpointConfig):
    backend: ChatBackend = opt(ChatBackend.local, "local (a model on a generator actor) | openai (an endpoint)")


@dataclass
class ResponderConfig(ChatBackendConfig):
    name: str = opt("", "unique name, written as chosen_model / rejected_model")


@dataclass
class JudgeConfig(ChatBackendConfig):
    temperature: float = opt(0.0, "judge sampling temperature")
    max_tokens: int = opt(96, "room for the JSON answer")
    prompt: Optional[str] = opt(
        None, "judge prompt file (null = rlhf/prefs/judge_prompt_v1.md); its name and hash are recorded"
    )
    max_attempts: int = opt(
        3, "answers failing the strict check are repaired/retried up to this many times, then left unscored"
    )
    json_mode: bool = opt(False, "openai only: ask for response_format json_object")


def _local_responders() -> List[ResponderConfig]:
    """The default pool: the run's own model at four sampling settings (nothing leaves the machine)."""
    return [
        ResponderConfig(name="local-t0.7", temperature=0.7, max_tokens=64),
        ResponderConfig(name="local-t1.0", temperature=1.0, max_tokens=64),
        ResponderConfig(name="local-t1.3", temperature=1.3, max_tokens=64),
        ResponderConfig(name="local-p0.8", temperature=1.0, top_p=0.8, max_tokens=64),
    ]


@dataclass
class PrefsConfig:
    """Preference data (stage=build_prefs): speeches -> responders -> seven-principle judge -> pairs."""

    speeches: SpeechSourceConfig = opt(
        help="the client speeches and how they are cleaned", factory=lambda: SpeechSourceConfig(limit=32)
    )
    responders: List[ResponderConfig] = opt(
        help="the responder pool; `responders_per_speech` of them are drawn per speech (seeded)",
        factory=_local_responders,
    )
    responders_per_speech: int = opt(3, "R (paper: 4 of a pool of 20)")
    samples_per_responder: int = opt(1, "responses per drawn responder (paper: 1)")
    system_prompt: Optional[str] = opt(
        None, "therapist role-play instruction for responders (null = the run's system_prompt)"
    )
    judge: JudgeConfig = opt(help="rates every response on the seven principles", factory=JudgeConfig)
    aggregate: Aggregate = opt(Aggregate.mean, "response score = mean (paper) or total of the seven ratings")
    min_gap: float = opt(1.0, "train pairs need a score gap of at least this (on the aggregate's scale)")
    test_fraction: float = opt(0.1, "share of speeches held out for the test split (best vs worst each)")
    out_dir: Optional[str] = opt(
        None, "where the store and Parquet go (null = <run_dir>/prefs); rerun with the same to resume"
    )
    local_max_model_len: int = opt(4096, "context of local generator actors (capped by the model's own)")
    local_batch_size: int = opt(64, "prompts per vLLM call on a local actor")
    judge_check: int = opt(
        16,
        "judge this many scored responses again and beside a dismissive control answer: "
        "how far the judge can be trusted (0 = off)",
    )
