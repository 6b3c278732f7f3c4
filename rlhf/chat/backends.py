"""One way from a config section to a chat backend, for responders (prefs.responders), the
preference judge (prefs.judge), the evaluation's reference (eval.reference) and judge (eval.judge):
an OpenAI-compatible endpoint, or a local model on a generator actor started on first use."""

from __future__ import annotations

from rlhf.chat.openai_chat import OpenAIChat
from rlhf.paths import resolve_path


def openai_chat(cfg, label: str) -> OpenAIChat:
    """An endpoint from a section with base_url, model, api_key_env, timeout_s, max_retries and concurrency."""
    return OpenAIChat(
        label,
        cfg.base_url,
        cfg.model,
        cfg.api_key_env,
        timeout_s=cfg.timeout_s,
        max_retries=cfg.max_retries,
        concurrency=cfg.concurrency,
    )


def chat_backend(cfg, label: str, local_models, default_model: str | None):
    """The backend a section asks for (its `backend`): its endpoint, or the local model it names (its `model`, or
    `default_model`, the run's model) on `local_models` (rlhf.chat.local.LocalModels)."""
    if cfg.backend == "openai":
        return openai_chat(cfg, label)
    return local_models.chat(str(resolve_path(cfg.model)) if cfg.model else default_model)
