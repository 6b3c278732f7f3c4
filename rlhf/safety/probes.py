"""The safety probe set: synthetic client messages, each carrying its own pass/fail criteria.

A probe file is JSON Lines, one probe per line:
  {"id": "si-01", "category": "suicidal_ideation", "message": "<the client's words>",
   "must": [{"id": "crisis_resource", "text": "point the client to immediate help ..."}],
   "must_not": [{"id": "no_method_information", "text": "give method information ..."}],
   "rules": ["no_method_details", "crisis_resource"]}
A criterion id names the requirement so that pass is always the good outcome, also for must_not
criteria ("no_method_information" passes when the answer gives none). `rules` names the rule
checks (rlhf.safety.rules) that apply; a rule named like a criterion decides that criterion.

The loader is strict, because a silently skipped or misread probe would change what the safety
numbers mean: every problem stops loading with a DataError that names the file and line.
The shipped set is probes_v1.jsonl next to this module (docs/safety.md says how it was written)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from rlhf.data.errors import DataError, not_utf8_error
from rlhf.safety.rules import RULES

DEFAULT_PROBES = Path(__file__).with_name("probes_v1.jsonl")
CATEGORIES = (
    "suicidal_ideation",
    "self_harm",
    "delusions",
    "mania",
    "hallucinations",
    "reassurance_seeking",
    "substance_crisis",
    "abuse_disclosure",
    "stigma",
)
FIELDS = ("id", "category", "message", "must", "must_not", "rules")
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
CRITERION_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_MESSAGE_CHARS = 2000  # a client message, not a document
MAX_CRITERION_CHARS = 400  # a criterion a judge can answer pass/fail on in one reading


@dataclass(frozen=True)
class Criterion:
    id: str
    text: str


@dataclass(frozen=True)
class Probe:
    id: str
    category: str
    message: str
    must: tuple[Criterion, ...]
    must_not: tuple[Criterion, ...]
    rules: tuple[str, ...]

    def criteria(self) -> list[tuple[str, Criterion]]:
        """("must" | "must_not", criterion) for every criterion, in file order."""
        return [("must", c) for c in self.must] + [("must_not", c) for c in self.must_not]

    def criterion_ids(self) -> list[str]:
        return [c.id for _, c in self.criteria()]


def _criteria(path: str, line: int, field: str, value) -> tuple[Criterion, ...]:
    if not isinstance(value, list):
        raise DataError(path, f'{field} must be a list of {{"id", "text"}} objects', line=line)
    out = []
    for position, item in enumerate(value, start=1):
        where = f"{field}[{position}]"
        if not isinstance(item, dict) or set(item) != {"id", "text"}:
            raise DataError(path, f"{where} must be an object with exactly the keys id and text", line=line)
        cid, text = item["id"], item["text"]
        if not isinstance(cid, str) or not CRITERION_ID.match(cid):
            raise DataError(path, f"{where}.id must be snake_case (a-z, 0-9, _), starting with a letter", line=line)
        if not isinstance(text, str) or not text.strip():
            raise DataError(path, f"{where}.text must be a non-empty string", line=line)
        if len(text) > MAX_CRITERION_CHARS:
            raise DataError(path, f"{where}.text is longer than {MAX_CRITERION_CHARS} characters", line=line)
        out.append(Criterion(cid, text.strip()))
    return tuple(out)


def _rules(path: str, line: int, value) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise DataError(path, "rules must be a list of rule names", line=line)
    unknown = [name for name in value if name not in RULES]
    if unknown:
        raise DataError(path, f"unknown rule(s) {unknown}", line=line, hint=f"known rules: {sorted(RULES)}")
    if len(set(value)) != len(value):
        raise DataError(path, "a rule is listed twice", line=line)
    return tuple(value)


def parse_probe(path: str, line: int, text: str) -> Probe:
    """One line of a probe file as a Probe, or a DataError naming the file, line and problem."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(path, f"not valid JSON ({err.msg} at column {err.colno})", line=line) from None
    if not isinstance(value, dict):
        raise DataError(path, "each line must be one JSON object", line=line)
    missing = [f for f in FIELDS if f not in value]
    if missing:
        raise DataError(path, f"missing field(s) {missing}", line=line, hint=f"a probe has {list(FIELDS)}")
    extra = sorted(set(value) - set(FIELDS))
    if extra:
        raise DataError(path, f"unknown field(s) {extra}", line=line, hint=f"a probe has {list(FIELDS)}")
    pid, category, message = value["id"], value["category"], value["message"]
    if not isinstance(pid, str) or not ID_PATTERN.match(pid):
        raise DataError(path, "id must be a short lowercase string (a-z, 0-9, - and _)", line=line)
    if category not in CATEGORIES:
        raise DataError(path, f"unknown category {category!r}", line=line, hint=f"categories: {list(CATEGORIES)}")
    if not isinstance(message, str) or not message.strip():
        raise DataError(path, "message must be a non-empty string", line=line)
    if len(message) > MAX_MESSAGE_CHARS:
        raise DataError(path, f"message is longer than {MAX_MESSAGE_CHARS} characters", line=line)
    must = _criteria(path, line, "must", value["must"])
    must_not = _criteria(path, line, "must_not", value["must_not"])
    if not must and not must_not:
        raise DataError(path, "a probe needs at least one criterion in must or must_not", line=line)
    ids = [c.id for c in must + must_not]
    if len(set(ids)) != len(ids):
        raise DataError(path, "criterion ids must be unique within a probe", line=line)
    return Probe(pid, category, message.strip(), must, must_not, _rules(path, line, value["rules"]))


def load_probes(path: str | Path | None = None) -> list[Probe]:
    """Every probe of a JSON Lines file (None = the shipped probes_v1.jsonl), in file order.
    Blank lines are skipped; anything else that is not a valid probe stops loading."""
    path = Path(path) if path is not None else DEFAULT_PROBES
    if not path.is_file():
        raise DataError(str(path), "probe file not found", hint="set the safety probe path to a .jsonl file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise not_utf8_error(path) from None
    probes: list[Probe] = []
    first_line: dict[str, int] = {}
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        probe = parse_probe(str(path), number, text)
        if probe.id in first_line:
            raise DataError(
                str(path), f"duplicate probe id {probe.id!r} (first on line {first_line[probe.id]})", line=number
            )
        first_line[probe.id] = number
        probes.append(probe)
    if not probes:
        raise DataError(str(path), "no probes in the file", line=1)
    return probes
