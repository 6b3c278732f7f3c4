"""The responder pool: named responders, each an OpenAI-compatible endpoint or a local model on
the project's generator actors, all answering a client speech in the therapist role-play. For
each speech R of them are drawn at random; the draw depends only on the seed and the speech, so a
rerun (or a resumed build) asks the same responders."""

from __future__ import annotations

import random
from dataclasses import dataclass

from rlhf.chat.api import ChatRequest
from rlhf.chat.backends import chat_backend
from rlhf.data.prompts import chat_messages


@dataclass
class Responder:
    name: str
    backend: object  # OpenAIChat or LocalChat
    temperature: float
    top_p: float
    max_tokens: int
    system_prompt: str

    def request(self, speech: str) -> ChatRequest:
        return ChatRequest(
            tuple(chat_messages(self.system_prompt, speech)), self.temperature, self.top_p, self.max_tokens
        )

    def describe(self) -> dict:
        return {
            "name": self.name,
            **self.backend.describe(),
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
        }


def build_pool(configs, local_models, default_model: str, system_prompt: str) -> dict[str, Responder]:
    return {
        c.name: Responder(
            c.name,
            chat_backend(c, f"responder {c.name}", local_models, default_model),
            c.temperature,
            c.top_p,
            c.max_tokens,
            system_prompt,
        )
        for c in configs
    }


def draw(names: list[str], per_speech: int, seed: int, speech_key: str) -> list[str]:
    """R distinct responders for one speech (all of them when R >= the pool)."""
    pool = sorted(names)
    if per_speech >= len(pool):
        return pool
    return sorted(random.Random(f"{seed}:{speech_key}").sample(pool, per_speech))
