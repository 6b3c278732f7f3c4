"""What every chat backend speaks: a request, a result, call statistics.

Backends (rlhf.chat.openai_chat.OpenAIChat for OpenAI-compatible endpoints, rlhf.chat.local.LocalChat
for a model on the project's vLLM generator actors) have `complete_many(requests, truncate=False)`,
yielding `(index, ChatResult)` as results arrive so the caller can store each one at once, and
`describe()`. A result carries text, or an error and whether retrying the same request later can
help (`permanent`). Responders, the preference judge, the pairwise judge and the safety judge all
talk through it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple  # of {"role": ..., "content": ...} dicts
    temperature: float
    top_p: float
    max_tokens: int
    json_mode: bool = False  # ask the endpoint for a JSON object (response_format), where supported
    # JSON schema (as text) a valid answer follows: local models decode under it (vLLM structured
    # outputs), so every answer parses; endpoints get json_mode instead.
    json_schema: str | None = None


@dataclass
class ChatResult:
    text: str | None = None
    error: str | None = None  # a short reason, never containing client text
    permanent: bool = False  # True: the same request would fail again (e.g. longer than the context)


@dataclass
class CallStats:
    """Counts only. `retries` = attempts beyond the first; the other fields say why."""

    calls: int = 0
    succeeded: int = 0
    failed: int = 0
    retries: int = 0
    rate_limited: int = 0  # 429 answers
    server_errors: int = 0  # 5xx (and 408/409) answers
    timeouts: int = 0
    connection_errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict:
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
