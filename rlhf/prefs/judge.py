"""The seven-principle judge: one request per response asking for JSON ratings, strict validation,
repair-or-retry up to N attempts, and otherwise an unscored record with the reason. No score is
ever invented or defaulted. The loop and the parser are the ones all LLM judges share
(rlhf.chat.judging).

Prompt injection: the judge's instructions are the system message, read from one versioned file
(judge_prompt_v1.md) and identical for every request. The client speech and the response travel
only as string values of a JSON object in the user message, so nothing they contain can change
the instruction part of the request; the system message tells the judge to treat them as data.
A judge talked into answering something else still has to pass the same strict check."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rlhf.chat.api import ChatRequest, ChatResult
from rlhf.chat.judging import PromptFile, ask, parse_object

PRINCIPLES = ("empathy", "relevance", "clarity", "safety", "exploration", "autonomy", "staging")
DEFAULT_PROMPT = Path(__file__).with_name("judge_prompt_v1.md")
REPAIR = (
    "Your previous answer could not be used: {reason}. Answer again with only one JSON object with exactly "
    "the keys empathy, relevance, clarity, safety, exploration, autonomy, staging, each an integer from 1 to 5."
)
# What a valid answer looks like, for local judges' guided decoding: seven integer ratings from 1 to 5.
SCHEMA = json.dumps(
    {
        "type": "object",
        "additionalProperties": False,
        "required": list(PRINCIPLES),
        "properties": {p: {"type": "integer", "minimum": 1, "maximum": 5} for p in PRINCIPLES},
    }
)


class JudgePrompt(PromptFile):
    """The principle judge's prompt file (judge_prompt_v1.md unless prefs.judge.prompt names another)."""

    @classmethod
    def load(cls, path: str | Path | None) -> JudgePrompt:
        return cls.read(path or DEFAULT_PROMPT, "judge prompt", hint="set prefs.judge.prompt")


@dataclass
class Verdict:
    ratings: dict | None  # principle -> int 1..5, all seven; None = unscored
    reason: str = ""  # why unscored (our own words, never the judge's or client's text)
    attempts: int = 0
    raw: str = ""  # the judge's last answer, for inspection in the run directory only


def data_message(speech: str, response: str) -> str:
    """The only place client text enters a judge request: JSON-escaped string values."""
    return json.dumps({"client_speech": speech, "counsellor_response": response}, ensure_ascii=False)


def request(
    prompt: JudgePrompt,
    speech: str,
    response: str,
    *,
    temperature: float,
    max_tokens: int,
    json_mode: bool,
    history: tuple = (),
) -> ChatRequest:
    messages = ({"role": "system", "content": prompt.text}, {"role": "user", "content": data_message(speech, response)})
    return ChatRequest(messages + tuple(history), temperature, 1.0, max_tokens, json_mode, SCHEMA)


def _rating(principle: str, value) -> tuple[int | None, str]:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        return None, f"rating for {principle} is not an integer from 1 to 5"
    return value, ""


def parse(text: str | None) -> tuple[dict | None, str]:
    """(ratings, "") or (None, reason). Repairs only the wrapping (prose or a code fence around
    the object, key case and spaces, 4.0 for 4); the values themselves must be there and valid."""
    return parse_object(text, PRINCIPLES, missing="rating(s)", besides="the seven principles", value=_rating)


class Judge:
    """Judges (speech, response) items through any chat backend with `complete_many`."""

    def __init__(
        self, backend, prompt: JudgePrompt, *, max_attempts: int, temperature: float, max_tokens: int, json_mode: bool
    ):
        self.backend, self.prompt = backend, prompt
        self.max_attempts = max(1, max_attempts)
        self.temperature, self.max_tokens, self.json_mode = temperature, max_tokens, json_mode

    def judge_many(self, items: list[tuple[str, str]]) -> Iterator[tuple[int, Verdict | ChatResult]]:
        """Yields (index, Verdict) when an item is decided (scored, or unscored after
        max_attempts / a permanent error), or (index, ChatResult) when the call itself failed and
        may succeed later (not decided: the build leaves it for a rerun)."""
        answers = ask(
            self.backend,
            range(len(items)),
            max_attempts=self.max_attempts,
            request=lambda i, history: request(
                self.prompt,
                *items[i],
                temperature=self.temperature,
                max_tokens=self.max_tokens,
                json_mode=self.json_mode,
                history=history,
            ),
            parse=lambda _, text: parse(text),
            repair=lambda _, reason: REPAIR.format(reason=reason),
        )
        for index, answer in answers:
            if answer.failed_call is not None and not answer.failed_call.permanent:
                yield index, answer.failed_call
            else:
                yield index, Verdict(answer.value, answer.reason, answer.attempts, answer.raw)
