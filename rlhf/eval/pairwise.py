"""The pairwise principle judge: for a speech and two responses A and B, which is better on each of
the seven principles and overall ("A", "B" or "tie"), as one strict JSON object.

It follows the absolute judge of the preference builder (rlhf.prefs.judge): the instructions are
the system message, read from a versioned file (pairwise_prompt_v1.md, its name and hash recorded);
client speech and responses travel only as JSON string values; the answer must pass a strict check;
an unusable answer is shown back with a repair note, up to `max_attempts` times, and then the
comparison is left unscored with the reason (the loop all LLM judges share, rlhf.chat.judging). No
verdict is ever invented or defaulted.

Every pair is judged twice, policy as A and then as B; the pair counts only when both orders are
scored (stats.swap_outcome then turns a disagreement into a tie)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rlhf.chat.api import ChatRequest
from rlhf.chat.judging import ask, parse_object
from rlhf.prefs.judge import PRINCIPLES, JudgePrompt

DEFAULT_PROMPT = Path(__file__).with_name("pairwise_prompt_v1.md")
KEYS = PRINCIPLES + ("overall",)
VERDICTS = {"a": "A", "b": "B", "tie": "tie"}
REPAIR = (
    "Your previous answer could not be used: {reason}. Answer again with only one JSON object with exactly "
    'the keys empathy, relevance, clarity, safety, exploration, autonomy, staging, overall, each "A", "B" '
    'or "tie".'
)


# A valid answer, for local judges' guided decoding: "A", "B" or "tie" for every key.
SCHEMA = json.dumps(
    {
        "type": "object",
        "additionalProperties": False,
        "required": list(KEYS),
        "properties": {k: {"type": "string", "enum": ["A", "B", "tie"]} for k in KEYS},
    }
)


def load_prompt(path: str | Path | None) -> JudgePrompt:
    return JudgePrompt.load(path or DEFAULT_PROMPT)


@dataclass
class PairVerdict:
    verdicts: dict | None  # key -> "A" | "B" | "tie" for the seven principles and overall; None = unscored
    reason: str = ""  # why unscored (our own words, never the judge's or the client's text)
    attempts: int = 0


def data_message(speech: str, response_a: str, response_b: str) -> str:
    """The only place client text enters a request: JSON-escaped string values."""
    return json.dumps({"client_speech": speech, "response_a": response_a, "response_b": response_b}, ensure_ascii=False)


def _verdict(key: str, value) -> tuple[str | None, str]:
    verdict = VERDICTS.get(value.strip().lower()) if isinstance(value, str) else None
    return (verdict, "") if verdict else (None, f"verdict for {key} is not A, B or tie")


def parse(text: str | None) -> tuple[dict | None, str]:
    """(verdicts, "") or (None, reason). Only the wrapping is repaired (prose or a code fence around
    the object, key and value case, spaces); every key must be there with A, B or tie."""
    return parse_object(text, KEYS, missing="verdict(s)", besides="the seven principles and overall", value=_verdict)


class PairwiseJudge:
    """Compares (speech, response_a, response_b) items through any chat backend with `complete_many`
    (rlhf.chat.openai_chat.OpenAIChat or rlhf.chat.local.LocalChat)."""

    def __init__(
        self, backend, prompt: JudgePrompt, *, max_attempts: int, temperature: float, max_tokens: int, json_mode: bool
    ):
        self.backend, self.prompt = backend, prompt
        self.max_attempts = max(1, max_attempts)
        self.temperature, self.max_tokens, self.json_mode = temperature, max_tokens, json_mode

    def request(self, item: tuple[str, str, str], history: tuple = ()) -> ChatRequest:
        messages = ({"role": "system", "content": self.prompt.text}, {"role": "user", "content": data_message(*item)})
        return ChatRequest(messages + tuple(history), self.temperature, 1.0, self.max_tokens, self.json_mode, SCHEMA)

    def judge_many(self, items: list[tuple[str, str, str]]) -> Iterator[tuple[int, PairVerdict]]:
        """Yields (index, PairVerdict) for every item: scored, or unscored with the reason (after
        `max_attempts` unusable answers, or when the call itself failed after the client's retries)."""
        for index, answer in ask(
            self.backend,
            range(len(items)),
            max_attempts=self.max_attempts,
            request=lambda i, history: self.request(items[i], history),
            parse=lambda _, text: parse(text),
            repair=lambda _, reason: REPAIR.format(reason=reason),
        ):
            yield index, PairVerdict(answer.value, answer.reason, answer.attempts)


def both_orders(judge: PairwiseJudge, speeches: list[str], policy: list[str], reference: list[str]):
    """Judge every pair with the policy as A and as B. Returns, per pair, (first, second) PairVerdicts."""
    n = len(speeches)
    items = [(s, p, r) for s, p, r in zip(speeches, policy, reference)] + [
        (s, r, p) for s, p, r in zip(speeches, policy, reference)
    ]
    verdicts: list[PairVerdict | None] = [None] * len(items)
    for index, verdict in judge.judge_many(items):
        verdicts[index] = verdict
    return [(verdicts[i], verdicts[n + i]) for i in range(n)]


def summarise(pairs: list[tuple[PairVerdict | None, PairVerdict | None]], **bootstrap) -> dict:
    """Overall and per-principle win rates from pairs judged in both orders (policy first as A, then
    as B). A pair with either order unscored is left out and counted, with its reason."""
    from collections import Counter

    from rlhf.eval import stats

    outcomes, reasons = [], Counter()
    for first, second in pairs:
        bad = [v for v in (first, second) if v is None or v.verdicts is None]
        if bad:
            reasons[(bad[0].reason if bad[0] is not None else "not judged").split(" (after")[0]] += 1
            continue
        outcomes.append({k: stats.swap_outcome(first.verdicts[k], second.verdicts[k]) for k in KEYS})
    overall = [o["overall"] for o in outcomes]
    swapped = {"A": "B", "B": "A", "tie": "tie"}
    consistent = sum(
        first.verdicts["overall"] == swapped[second.verdicts["overall"]]
        for first, second in pairs
        if first and second and first.verdicts and second.verdicts
    )
    return {
        "judge": "pairwise_principles",
        "win_rate": stats.win_rate(overall, **bootstrap).as_dict(),
        **stats.counts(overall),
        "per_principle": {
            k: v.as_dict() for k, v in stats.per_key_win_rates(outcomes, PRINCIPLES, **bootstrap).items()
        },
        "position_consistent": consistent,  # pairs whose two orders name the same response (or both tie)
        "unscored": sum(reasons.values()),
        "unscored_reasons": dict(reasons.most_common()),
    }
