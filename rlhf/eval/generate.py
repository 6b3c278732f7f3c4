"""Responses to evaluate: from a local checkpoint on a vLLM generator actor (policies, and a local
reference model), from an OpenAI-compatible endpoint (e.g. GPT-4o as the paper's reference), or
read from a stored file of reference responses.

Local models see exactly the prompts the policy is trained on (the run's system prompt and the
model's chat template, speech cut to model.max_prompt_len tokens). The length-constrained variant
adds an instruction to the client's turn (e.g. "Answer in at most 40 words.") and caps the answer
at a number of tokens; unconstrained answers are capped only by eval.max_tokens."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rlhf.data.errors import DataError
from rlhf.data.prompts import chat_messages
from rlhf.data.records import Speech


@dataclass(frozen=True)
class Variant:
    """How responses are asked for: no constraint, or a length instruction plus a token cap."""

    name: str  # "unconstrained" | "length_constrained"
    max_tokens: int
    instruction: str = ""

    def user_turn(self, speech: str) -> str:
        return f"{speech}\n\n{self.instruction}" if self.instruction else speech


@dataclass
class Responses:
    texts: list[str]
    tokens: list[int]  # response length in tokens (local models) or words (endpoints, stored files)
    unit: str = "tokens"


def local_prompts(encoder, speeches: list[Speech], variant: Variant) -> list[list[int]]:
    tok = encoder.tokenizer
    out = []
    for s in speeches:
        messages = chat_messages(encoder.system_prompt, variant.user_turn(encoder.truncate_speech(s.text)))
        text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        out.append(tok(text, add_special_tokens=False)["input_ids"])
    return out


def model_context(model_dir: str, default: int) -> int:
    config = Path(model_dir, "config.json")
    if config.is_file():
        length = json.loads(config.read_text()).get("max_position_embeddings")
        if isinstance(length, int) and length > 0:
            return length
    return default


def generate_on(actors, prompts: list[list[int]], *, max_tokens: int, temperature: float, seed: int) -> Responses:
    """One sample per prompt, split across the given generator actors; results in prompt order."""
    import ray

    if not prompts:
        return Responses([], [])
    size = -(-len(prompts) // len(actors))
    refs = [
        actor.generate.remote(
            prompts[i * size : (i + 1) * size],
            n=1,
            temperature=temperature,
            top_p=1.0,
            max_tokens=max_tokens,
            seed=seed + i,
        )
        for i, actor in enumerate(actors)
    ]
    samples = [chunk[0] for part in ray.get(refs) for chunk in part]
    return Responses([s.text for s in samples], [len(s.token_ids) for s in samples])


class LocalModel:
    """A checkpoint on one vLLM generator actor, for the time of one evaluation."""

    def __init__(self, run, model_dir: str, max_len: int):
        from rlhf.workers.factory import generator_group, started

        self.model_dir = model_dir
        self.group = generator_group(run, model_dir, max_model_len=min(max_len, model_context(model_dir, max_len)))
        started(self.group, f"a vLLM engine for {model_dir}")

    def respond(self, encoder, speeches: list[Speech], variant: Variant, temperature: float, seed: int) -> Responses:
        return generate_on(
            self.group.actors,
            local_prompts(encoder, speeches, variant),
            max_tokens=variant.max_tokens,
            temperature=temperature,
            seed=seed,
        )

    def shutdown(self) -> None:
        self.group.shutdown()


def endpoint_responses(
    chat, system_prompt: str, speeches: list[Speech], variant: Variant, temperature: float
) -> tuple[Responses, list[str]]:
    """Responses from an OpenAI-compatible endpoint (rlhf.chat.openai_chat.OpenAIChat); a failed call
    leaves an empty text and its reason (the pair is then unscored)."""
    from rlhf.chat.api import ChatRequest

    requests = [
        ChatRequest(
            tuple(chat_messages(system_prompt, variant.user_turn(s.text))), temperature, 1.0, variant.max_tokens
        )
        for s in speeches
    ]
    texts, errors = [""] * len(speeches), [""] * len(speeches)
    for index, result in chat.complete_many(requests):
        texts[index] = result.text or ""
        errors[index] = "" if result.text is not None else f"reference endpoint: {result.error}"
    return Responses(texts, [len(t.split()) for t in texts], "words"), errors


def stored_responses(
    path: Path, speeches: list[Speech], columns, response_column: str, fmt: str = "auto"
) -> tuple[Responses, list[str]]:
    """Reference responses from a CSV/JSONL/Parquet file, matched to the speeches by id (when the
    file maps an id column) or by the speech text (whitespace and case ignored)."""
    from dataclasses import replace

    from rlhf.prefs.speeches import normalise, read_speeches

    rows = read_speeches(path, columns, fmt)
    answers = read_speeches(path, replace(columns, text=response_column, title=None, topic=None), fmt)
    by_id, by_text = {}, {}
    for (_, speech), (_, answer) in zip(rows, answers):
        by_id.setdefault(speech.id, answer.text)
        by_text.setdefault(normalise(speech.text), answer.text)
    texts, errors = [], []
    for s in speeches:
        text = by_id.get(s.id) if columns.id else None
        text = text if text is not None else by_text.get(normalise(s.text))
        texts.append(text or "")
        errors.append("" if text else "no stored reference response for this speech")
    if not any(texts):
        raise DataError(
            str(path),
            "no stored reference response matches any evaluated speech",
            hint="eval.reference.columns.id / .text must match the speeches' ids or texts",
        )
    return Responses(texts, [len(t.split()) for t in texts], "words"), errors
