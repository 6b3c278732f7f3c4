"""What the three LLM judges share (the preference builder's principle ratings, the pairwise
principle judge, the safety criteria judge): a versioned prompt file, a strict parser for a
one-JSON-object answer, and the repair-or-retry loop.

The loop sends every item's request, parses each answer, and shows an unusable answer back to the
judge with a note saying what was wrong, up to `max_attempts` attempts in all; then the item is
left without a value, with the reason. Nothing is ever invented or defaulted. A call that failed
outright (no text, after the backend's own retries) ends its item at once with `failed_call` set,
so a caller may leave it for a later run instead.

Prompt injection: the judge's instructions are the system message (the prompt file, the same bytes
for every request); client text travels only as JSON string values in the user message."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlhf.chat.api import ChatRequest, ChatResult
from rlhf.data.errors import DataError

MAX_ECHO_CHARS = 2000  # how much of an unusable answer is shown back to the judge with the repair note


@dataclass(frozen=True)
class PromptFile:
    """A judge's instructions, read from a versioned file; its name and hash are recorded."""

    text: str
    version: str  # file name without suffix, e.g. judge_prompt_v1
    sha256: str

    @classmethod
    def read(cls, path: str | Path, what: str = "judge prompt", hint: str = "") -> PromptFile:
        path = Path(path)
        if not path.is_file():
            raise DataError(str(path), f"{what} file not found", hint=hint)
        try:
            text = path.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError:
            raise DataError(str(path), "not UTF-8 text") from None
        if not text:
            raise DataError(str(path), f"the {what} file is empty", line=1)
        return cls(text, path.stem, hashlib.sha256(text.encode()).hexdigest())


def first_object(text: str):
    """The first JSON object in `text` (prose or a code fence around it is tolerated)."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
            return value
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
    return None


def parse_object(
    text: str | None, keys: Sequence[str], *, missing: str, besides: str, value: Callable[[str, Any], tuple[Any, str]]
) -> tuple[dict | None, str]:
    """({key: clean value}, "") or (None, reason) for an answer that must be one JSON object with
    exactly `keys`. Only the wrapping is repaired (prose or a code fence around the object, key case
    and spaces); `value(key, raw)` checks each value, returning (clean value, "") or (None, reason).
    Reasons name what was wrong in our own words (`missing` names the kind of key, `besides` the
    keys expected), never repeating the answer."""
    if not text or not text.strip():
        return None, "empty answer"
    found = first_object(text)
    if not isinstance(found, dict):
        return None, "no JSON object in the answer"
    answer = {str(k).strip().lower(): v for k, v in found.items()}
    absent = [k for k in keys if k not in answer]
    if absent:
        return None, f"missing {missing}: {', '.join(absent)}"
    extra = [k for k in answer if k not in keys]
    if extra:
        return None, f"{len(extra)} unexpected key(s) besides {besides}"
    clean = {}
    for key in keys:
        clean[key], reason = value(key, answer[key])
        if clean[key] is None:
            return None, reason
    return clean, ""


@dataclass
class Answer:
    """One item's outcome: a parsed value, or None with the reason."""

    value: Any
    reason: str = ""  # why there is no value (our own words, never the judge's or the client's)
    attempts: int = 0
    raw: str = ""  # the judge's last answer, for inspection in the run directory only
    failed_call: ChatResult | None = None  # the call itself failed (no text): the backend's error


def ask(
    backend,
    indices: Iterable[int],
    *,
    request: Callable[[int, tuple], ChatRequest],
    parse: Callable[[int, str], tuple[Any, str]],
    repair: Callable[[int, str], str],
    max_attempts: int,
) -> Iterator[tuple[int, Answer]]:
    """Yields (index, Answer) for every index, as answers arrive. `request(index, history)` builds
    an item's request, `history` holding the earlier unusable answers and their repair notes;
    `parse(index, text)` gives (value, "") or (None, reason); `repair(index, reason)` is the note."""
    history: dict[int, tuple] = {i: () for i in indices}
    attempts = max(1, max_attempts)
    for attempt in range(1, attempts + 1):
        order = sorted(history)
        retry: dict[int, tuple] = {}
        for position, result in backend.complete_many([request(i, history[i]) for i in order]):
            index = order[position]
            if not isinstance(result, ChatResult) or result.text is None:
                error = getattr(result, "error", None)
                yield index, Answer(None, f"the judge could not answer: {error}", attempt, failed_call=result)
                continue
            value, reason = parse(index, result.text)
            if value is not None:
                yield index, Answer(value, "", attempt, result.text)
            elif attempt == attempts:
                yield index, Answer(None, f"{reason} (after {attempt} attempt(s))", attempt, result.text)
            else:
                retry[index] = (
                    {"role": "assistant", "content": result.text[:MAX_ECHO_CHARS]},
                    {"role": "user", "content": repair(index, reason)},
                )
        history = retry
        if not history:
            break
