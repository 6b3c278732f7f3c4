"""The seven-principle judge: one request per response asking for JSON ratings, strict validation,
repair-or-retry up to N attempts, and otherwise an unscored record with the reason. No score is
ever invented or defaulted.

Prompt injection: the judge's instructions are the system message, read from one versioned file
(judge_prompt_v1.md) and identical for every request. The client speech and the response travel
only as string values of a JSON object in the user message, so nothing they contain can change
the instruction part of the request; the system message tells the judge to treat them as data.
A judge talked into answering something else still has to pass the same strict check."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from rlhf.data.errors import DataError
from rlhf.prefs.chat import ChatRequest, ChatResult

PRINCIPLES = ("empathy", "relevance", "clarity", "safety", "exploration", "autonomy", "staging")
DEFAULT_PROMPT = Path(__file__).with_name("judge_prompt_v1.md")
REPAIR = ("Your previous answer could not be used: {reason}. Answer again with only one JSON object with exactly "
          "the keys empathy, relevance, clarity, safety, exploration, autonomy, staging, each an integer from 1 to 5.")
MAX_ECHO_CHARS = 2000  # how much of an unusable answer is shown back to the judge with the repair note
# What a valid answer looks like, for local judges' guided decoding: seven integer ratings from 1 to 5.
SCHEMA = json.dumps({"type": "object", "additionalProperties": False, "required": list(PRINCIPLES),
                     "properties": {p: {"type": "integer", "minimum": 1, "maximum": 5} for p in PRINCIPLES}})


@dataclass(frozen=True)
class JudgePrompt:
    text: str
    version: str  # file name without suffix, e.g. judge_prompt_v1
    sha256: str

    @classmethod
    def load(cls, path: str | Path | None) -> "JudgePrompt":
        path = Path(path) if path else DEFAULT_PROMPT
        if not path.is_file():
            raise DataError(str(path), "judge prompt file not found", hint="set prefs.judge.prompt")
        try:
            text = path.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError:
            raise DataError(str(path), "not UTF-8 text") from None
        if not text:
            raise DataError(str(path), "the judge prompt file is empty", line=1)
        return cls(text, path.stem, hashlib.sha256(text.encode()).hexdigest())


@dataclass
class Verdict:
    ratings: dict | None  # principle -> int 1..5, all seven; None = unscored
    reason: str = ""  # why unscored (our own words, never the judge's or client's text)
    attempts: int = 0
    raw: str = ""  # the judge's last answer, for inspection in the run directory only


def data_message(speech: str, response: str) -> str:
    """The only place client text enters a judge request: JSON-escaped string values."""
    return json.dumps({"client_speech": speech, "counsellor_response": response}, ensure_ascii=False)


def request(prompt: JudgePrompt, speech: str, response: str, *, temperature: float, max_tokens: int,
            json_mode: bool, history: tuple = ()) -> ChatRequest:
    messages = ({"role": "system", "content": prompt.text}, {"role": "user", "content": data_message(speech, response)})
    return ChatRequest(messages + tuple(history), temperature, 1.0, max_tokens, json_mode, SCHEMA)


def _first_object(text: str):
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
            return value
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
    return None


def parse(text: str | None) -> tuple[dict | None, str]:
    """(ratings, "") or (None, reason). Repairs only the wrapping (prose or a code fence around
    the object, key case and spaces, 4.0 for 4); the values themselves must be there and valid."""
    if not text or not text.strip():
        return None, "empty answer"
    value = _first_object(text)
    if not isinstance(value, dict):
        return None, "no JSON object in the answer"
    ratings = {str(k).strip().lower(): v for k, v in value.items()}
    missing = [p for p in PRINCIPLES if p not in ratings]
    extra = [k for k in ratings if k not in PRINCIPLES]
    if missing:
        return None, f"missing rating(s): {', '.join(missing)}"
    if extra:
        return None, f"{len(extra)} unexpected key(s) besides the seven principles"
    clean = {}
    for principle in PRINCIPLES:
        v = ratings[principle]
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 5:
            return None, f"rating for {principle} is not an integer from 1 to 5"
        clean[principle] = v
    return clean, ""


class Judge:
    """Judges (speech, response) items through any chat backend with `complete_many`."""

    def __init__(self, backend, prompt: JudgePrompt, *, max_attempts: int, temperature: float, max_tokens: int,
                 json_mode: bool):
        self.backend, self.prompt = backend, prompt
        self.max_attempts = max(1, max_attempts)
        self.temperature, self.max_tokens, self.json_mode = temperature, max_tokens, json_mode

    def judge_many(self, items: list[tuple[str, str]]) -> Iterator[tuple[int, Verdict | ChatResult]]:
        """Yields (index, Verdict) when an item is decided (scored, or unscored after
        max_attempts / a permanent error), or (index, ChatResult) when the call itself failed and
        may succeed later (not decided: the build leaves it for a rerun)."""
        history: dict[int, tuple] = {i: () for i in range(len(items))}
        for attempt in range(1, self.max_attempts + 1):
            order = sorted(history)
            requests = [request(self.prompt, *items[i], temperature=self.temperature, max_tokens=self.max_tokens,
                                json_mode=self.json_mode, history=history[i]) for i in order]
            retry: dict[int, tuple] = {}
            for position, result in self.backend.complete_many(requests):
                index = order[position]
                if result.text is None:
                    if result.permanent:
                        yield index, Verdict(None, f"the judge could not answer: {result.error}", attempt)
                    else:
                        yield index, result
                    continue
                ratings, reason = parse(result.text)
                if ratings is not None:
                    yield index, Verdict(ratings, "", attempt, result.text)
                elif attempt == self.max_attempts:
                    yield index, Verdict(None, f"{reason} (after {attempt} attempt(s))", attempt, result.text)
                else:
                    retry[index] = ({"role": "assistant", "content": result.text[:MAX_ECHO_CHARS]},
                                    {"role": "user", "content": REPAIR.format(reason=reason)})
            history = retry
            if not history:
                break
