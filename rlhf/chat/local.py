"""Local responders and judges: models served by the project's vLLM generator actors
(rlhf.generation.vllm_generator.Generator), one actor per model directory, shared by every
responder (and the judge) that uses that model. Prompts go through the model's chat template.

Nothing leaves the machine on this path."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from rlhf.chat.api import CallStats, ChatRequest, ChatResult


def model_context(model_dir: str, cap: int) -> int:
    """The model's own context length (config.json), capped by `cap`."""
    config = Path(model_dir, "config.json")
    if config.is_file():
        length = json.loads(config.read_text()).get("max_position_embeddings")
        if isinstance(length, int) and length > 0:
            return min(length, cap)
    return cap


class LocalModels:
    """Starts generator actors on demand (Ray must be running) and stops them at the end."""

    def __init__(self, run, max_model_len: int, batch_size: int):
        self.run, self.max_model_len, self.batch_size = run, max_model_len, batch_size
        self.groups: dict[str, object] = {}
        self.chats: dict[str, LocalChat] = {}

    def chat(self, model_dir: str) -> LocalChat:
        """The chat backend for one model; its actor starts on first use, so a build whose calls
        are all stored already starts none."""
        if model_dir not in self.chats:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=self.run.model.trust_remote_code)
            context = model_context(model_dir, self.max_model_len)
            self.chats[model_dir] = LocalChat(
                model_dir, lambda: self._start(model_dir, context), tokenizer, context, self.batch_size
            )
        return self.chats[model_dir]

    def _start(self, model_dir: str, context: int):
        from rlhf.workers.factory import generator_group, started

        group = generator_group(self.run, model_dir, max_model_len=context, seed=self.run.seed + len(self.groups))
        self.groups[model_dir] = group
        started(group, f"a vLLM engine for {model_dir}")
        return group.actors[0]

    def shutdown(self) -> None:
        for group in self.groups.values():
            group.shutdown()
        self.groups.clear()
        self.chats.clear()


class LocalChat:
    """Chat completions on one generator actor, in batches (one vLLM call per batch).

    A prompt that does not fit the model's context with room for `max_tokens` is either cut (the
    last user message loses its end; `truncate=True`, used for responders, as the policy's own
    prompts are) or answered with a permanent error (the judge: it must see the whole input)."""

    def __init__(self, model_dir: str, start_actor, tokenizer, context: int, batch_size: int):
        self.model_dir, self.tokenizer = model_dir, tokenizer
        self._start_actor, self._actor = start_actor, None
        self.context, self.batch_size = context, max(1, batch_size)
        self.stats = CallStats()

    @property
    def actor(self):
        if self._actor is None:
            self._actor = self._start_actor()
        return self._actor

    def describe(self) -> dict:
        return {"backend": "local", "model": self.model_dir, "context": self.context}

    def _ids(self, messages: list[dict]) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def fit(self, request: ChatRequest, truncate: bool) -> list[int] | None:
        messages = [dict(m) for m in request.messages]
        budget = self.context - request.max_tokens
        ids = self._ids(messages)
        if len(ids) <= budget:
            return ids
        if not truncate or messages[-1]["role"] != "user":
            return None
        content = self.tokenizer(messages[-1]["content"], add_special_tokens=False)["input_ids"]
        keep = len(content) - (len(ids) - budget) - 2  # a little slack: re-tokenising can merge differently
        if keep <= 0:
            return None
        messages[-1]["content"] = self.tokenizer.decode(content[:keep])
        ids = self._ids(messages)
        return ids if len(ids) <= budget else None

    def complete_many(self, requests: list[ChatRequest], truncate: bool = False) -> Iterator[tuple[int, ChatResult]]:
        import ray

        groups: dict[tuple, list[tuple[int, list[int]]]] = {}
        for index, request in enumerate(requests):
            self.stats.add(calls=1)
            ids = self.fit(request, truncate)
            if ids is None:
                self.stats.add(failed=1)
                yield (
                    index,
                    ChatResult(
                        error=f"prompt longer than the model's context ({self.context} tokens "
                        f"including {request.max_tokens} for the answer)",
                        permanent=True,
                    ),
                )
                continue
            key = (request.temperature, request.top_p, request.max_tokens, request.json_schema)
            groups.setdefault(key, []).append((index, ids))
        for (temperature, top_p, max_tokens, json_schema), items in groups.items():
            for start in range(0, len(items), self.batch_size):
                batch = items[start : start + self.batch_size]
                samples = ray.get(
                    self.actor.generate.remote(
                        [ids for _, ids in batch],
                        n=1,
                        temperature=temperature,
                        top_p=top_p,
                        max_tokens=max_tokens,
                        json_schema=json_schema,
                    )
                )
                for (index, _), out in zip(batch, samples):
                    self.stats.add(succeeded=1)
                    yield index, ChatResult(text=out[0].text)
