"""The LLM criteria judge: for one probe and one answer, "pass" or "fail" with a short reason on
each criterion it is asked about, as one strict JSON object.

It follows the principle judge of the preference builder (rlhf.prefs.judge): the instructions are
the system message, read from a versioned file (judge_prompt_v1.md, its name and hash reported by
`describe`); the client message, the answer and the criteria travel only as JSON string values in
the user message, so nothing a client or a policy writes can change the instructions; the answer
must pass a strict check; an unusable answer is shown back with a repair note, up to
`max_attempts` times, and then the probe is left not judged with the reason. No verdict is ever
invented or defaulted.

Any chat backend works that has `complete_many(requests)` yielding (index, ChatResult) and
`describe()`: rlhf.prefs.chat.OpenAIChat (GPT-4o, a vLLM server) or rlhf.prefs.local.LocalChat."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from rlhf.data.errors import DataError
from rlhf.prefs.chat import ChatRequest, ChatResult
from rlhf.safety.probes import Probe

log = logging.getLogger(__name__)

DEFAULT_PROMPT = Path(__file__).with_name("judge_prompt_v1.md")
VERDICTS = {"pass": True, "fail": False}
MAX_REASON_CHARS = 300  # a longer reason is cut, not rejected: its length is wrapping, not the verdict
MAX_ECHO_CHARS = 2000  # how much of an unusable answer is shown back to the judge with the repair note
REPAIR = ("Your previous answer could not be used: {reason}. Answer again with only one JSON object whose keys are "
          "exactly these criterion ids: {ids}; each value an object with exactly the keys \"verdict\" (\"pass\" or "
          "\"fail\") and \"reason\" (a short string).")
# Guided decoding needs a request field that rlhf.prefs.chat may not have yet; use it once it exists.
REQUEST_TAKES_SCHEMA = "json_schema" in {f.name for f in dataclasses.fields(ChatRequest)}


@dataclass(frozen=True)
class SafetyPrompt:
    text: str
    version: str  # file name without suffix, e.g. judge_prompt_v1
    sha256: str

    @classmethod
    def load(cls, path: str | Path | None = None) -> "SafetyPrompt":
        path = Path(path) if path else DEFAULT_PROMPT
        if not path.is_file():
            raise DataError(str(path), "safety judge prompt file not found")
        try:
            text = path.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError:
            raise DataError(str(path), "not UTF-8 text") from None
        if not text:
            raise DataError(str(path), "the safety judge prompt file is empty", line=1)
        return cls(text, path.stem, hashlib.sha256(text.encode()).hexdigest())


@dataclass(frozen=True)
class CriterionVerdict:
    passed: bool
    reason: str  # the judge's words: for the run directory only


@dataclass
class ProbeVerdict:
    criteria: dict[str, CriterionVerdict] | None  # criterion id -> verdict; None = not judged
    reason: str = ""  # why not judged (our own words, never the judge's or the client's text)
    attempts: int = 0
    raw: str = ""  # the judge's last answer, for inspection in the run directory only

    @property
    def passed(self) -> bool | None:
        """True when every criterion passed, False when any failed, None when not judged."""
        if self.criteria is None:
            return None
        return all(v.passed for v in self.criteria.values())


def data_message(probe: Probe, answer: str, ids: tuple[str, ...]) -> str:
    """The only place client and policy text enter a request: JSON-escaped string values."""
    wanted = set(ids)
    criteria = {kind: [{"id": c.id, "text": c.text} for c in group if c.id in wanted]
                for kind, group in (("must", probe.must), ("must_not", probe.must_not))}
    return json.dumps({"client_message": probe.message, "counsellor_answer": answer, "criteria": criteria},
                      ensure_ascii=False)


def schema(ids: tuple[str, ...]) -> dict:
    """JSON schema of a valid answer about the criteria `ids` (for guided decoding)."""
    verdict = {"type": "object", "additionalProperties": False, "required": ["verdict", "reason"],
               "properties": {"verdict": {"type": "string", "enum": list(VERDICTS)},
                              "reason": {"type": "string", "minLength": 1, "maxLength": MAX_REASON_CHARS}}}
    return {"type": "object", "additionalProperties": False, "required": list(ids),
            "properties": {cid: verdict for cid in ids}}


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


def _criterion(cid: str, value) -> tuple[CriterionVerdict | None, str]:
    if not isinstance(value, dict):
        return None, f"the value for {cid} is not an object"
    entry = {str(k).strip().lower(): v for k, v in value.items()}
    if set(entry) != {"verdict", "reason"}:
        return None, f"the object for {cid} must have exactly the keys verdict and reason"
    verdict = entry["verdict"].strip().lower() if isinstance(entry["verdict"], str) else None
    if verdict not in VERDICTS:
        return None, f"verdict for {cid} is not pass or fail"
    reason = entry["reason"].strip() if isinstance(entry["reason"], str) else ""
    if not reason:
        return None, f"reason for {cid} is missing or empty"
    return CriterionVerdict(VERDICTS[verdict], reason[:MAX_REASON_CHARS]), ""


def parse(text: str | None, ids: tuple[str, ...]) -> tuple[dict[str, CriterionVerdict] | None, str]:
    """(verdicts, "") or (None, reason). Only the wrapping is repaired (prose or a code fence around
    the object, key and value case, spaces, an over-long reason); every asked criterion must be
    there with pass or fail and a reason, and nothing else."""
    if not text or not text.strip():
        return None, "empty answer"
    value = first_object(text)
    if not isinstance(value, dict):
        return None, "no JSON object in the answer"
    answer = {str(k).strip().lower(): v for k, v in value.items()}
    missing = [cid for cid in ids if cid not in answer]
    if missing:
        return None, f"missing verdict(s): {', '.join(missing)}"
    extra = [k for k in answer if k not in ids]
    if extra:
        return None, f"{len(extra)} unexpected key(s) besides the criterion ids"
    verdicts = {}
    for cid in ids:
        verdicts[cid], reason = _criterion(cid, answer[cid])
        if verdicts[cid] is None:
            return None, reason
    return verdicts, ""


class SafetyJudge:
    """Judges (probe, answer) items on the probes' criteria through any chat backend."""

    def __init__(self, backend, *, max_attempts: int, temperature: float, max_tokens: int, json_mode: bool = False,
                 json_schema: bool = False, prompt: str | Path | None = None):
        self.backend, self.prompt = backend, SafetyPrompt.load(prompt)
        self.max_attempts = max(1, max_attempts)
        self.temperature, self.max_tokens, self.json_mode = temperature, max_tokens, json_mode
        self.json_schema = json_schema and REQUEST_TAKES_SCHEMA
        if json_schema and not REQUEST_TAKES_SCHEMA:
            log.warning("safety judge: json_schema requested but ChatRequest has no json_schema field; "
                        "answers are validated after the fact only")

    def describe(self) -> dict:
        return {"prompt": self.prompt.version, "prompt_sha256": self.prompt.sha256,
                "backend": self.backend.describe(), "max_attempts": self.max_attempts}

    @staticmethod
    def schema(probe: Probe, ids: tuple[str, ...] | None = None) -> dict:
        """JSON schema of a valid answer for `probe` (all its criteria, or `ids`); requests carry it
        as JSON text in `ChatRequest.json_schema` when `json_schema=True`."""
        return schema(tuple(ids) if ids is not None else tuple(probe.criterion_ids()))

    def request(self, probe: Probe, answer: str, ids: tuple[str, ...], history: tuple = ()) -> ChatRequest:
        messages = ({"role": "system", "content": self.prompt.text},
                    {"role": "user", "content": data_message(probe, answer, ids)})
        extra = {"json_schema": json.dumps(schema(ids))} if self.json_schema else {}  # the field takes text
        return ChatRequest(messages + tuple(history), self.temperature, 1.0, self.max_tokens, self.json_mode, **extra)

    def judge_many(self, items: list[tuple[Probe, str]],
                   only: list[tuple[str, ...] | None] | None = None) -> Iterator[tuple[int, ProbeVerdict]]:
        """Yields (index, ProbeVerdict) for every item: judged, or not judged with the reason (after
        `max_attempts` unusable answers, or when the call itself failed after the backend's retries).
        `only[i]`, when given, limits item i to those criterion ids (the rest decided elsewhere);
        an item with nothing left to ask is yielded at once with no criteria and no call."""
        ids: dict[int, tuple[str, ...]] = {}
        for index, (probe, _) in enumerate(items):
            wanted = only[index] if only is not None and only[index] is not None else probe.criterion_ids()
            ids[index] = tuple(cid for cid in probe.criterion_ids() if cid in set(wanted))
        history: dict[int, tuple] = {}
        for index in range(len(items)):
            if ids[index]:
                history[index] = ()
            else:
                yield index, ProbeVerdict({}, "", 0)
        for attempt in range(1, self.max_attempts + 1):
            order = sorted(history)
            requests = [self.request(*items[i], ids[i], history[i]) for i in order]
            retry: dict[int, tuple] = {}
            for position, result in self.backend.complete_many(requests):
                index = order[position]
                if not isinstance(result, ChatResult) or result.text is None:
                    yield index, ProbeVerdict(None, f"the judge could not answer: {getattr(result, 'error', None)}",
                                              attempt)
                    continue
                verdicts, reason = parse(result.text, ids[index])
                if verdicts is not None:
                    yield index, ProbeVerdict(verdicts, "", attempt, result.text)
                elif attempt == self.max_attempts:
                    yield index, ProbeVerdict(None, f"{reason} (after {attempt} attempt(s))", attempt, result.text)
                else:
                    retry[index] = ({"role": "assistant", "content": result.text[:MAX_ECHO_CHARS]},
                                    {"role": "user", "content": REPAIR.format(reason=reason, ids=", ".join(ids[index]))})
            history = retry
            if not history:
                break
