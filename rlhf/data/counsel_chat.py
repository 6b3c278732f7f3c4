"""Read the counsel-chat CSV shipped in data/counsel-chat and derive what each stage needs.

- speeches: questionTitle + questionText, one per question;
- SFT examples: (speech, therapist answer) for every answer;
- weak preference pairs: every two answers to the same question whose upvotes differ, the one with
  more upvotes is chosen; answers with equal upvotes give no pair (ties are counted and dropped).
"""

from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass, field
from pathlib import Path

from rlhf.data.errors import DataError, not_utf8_error
from rlhf.data.records import PreferencePair, SFTExample, Speech

csv.field_size_limit(16 * 1024 * 1024)  # long speeches are read (and cut to the token budget later)
MAX_FIELD_BYTES = 16 * 1024 * 1024

REQUIRED_COLUMNS = ("questionID", "questionTitle", "questionText", "topic", "answerText", "upvotes", "split")


@dataclass
class Answer:
    text: str
    upvotes: int


@dataclass
class Question:
    speech: Speech
    answers: list[Answer] = field(default_factory=list)


@dataclass
class PairCounts:
    """How the preference pairs were derived, for the run summary and the docs."""

    questions: int = 0
    pairs: int = 0
    tied_pairs_dropped: int = 0
    single_answer_questions: int = 0


def speech_text(title: str, body: str) -> str:
    title, body = title.strip(), " ".join(body.split())
    return f"{title}\n\n{body}" if title and body and not body.startswith(title) else (body or title)


def read_questions(path: str | Path, split: str) -> list[Question]:
    """Questions of one split (`train` or `val`) with their answers, in file order."""
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), "file not found", hint="set data.path to the counsel-chat CSV")
    questions: dict[str, Question] = {}
    if path.stat().st_size == 0:
        raise DataError(str(path), "empty file", line=1, hint=f"expected a CSV with columns {list(REQUIRED_COLUMNS)}")
    line = 1
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle, strict=True)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(
                    str(path), f"missing column(s) {missing}", line=1, hint=f"expected columns {list(REQUIRED_COLUMNS)}"
                )
            for row in reader:
                if None in row or any(value is None for value in row.values()):
                    raise DataError(
                        str(path),
                        "broken row: wrong number of fields",
                        line=line + 1,
                        hint="check quoting and the number of commas",
                    )
                line = reader.line_num
                if row["split"] != split:
                    continue
                try:
                    upvotes = int(row["upvotes"] or 0)
                except ValueError:
                    raise DataError(
                        str(path), f"upvotes is not a whole number: {row['upvotes']!r}", line=line
                    ) from None
                qid = row["questionID"]
                if qid not in questions:
                    text = speech_text(row["questionTitle"] or "", row["questionText"] or "")
                    if not text:
                        raise DataError(str(path), f"question {qid} has an empty speech (title and text)", line=line)
                    questions[qid] = Question(Speech(id=f"cc-{qid}", text=text, topic=row["topic"] or ""))
                answer = " ".join((row["answerText"] or "").split())
                if answer:
                    questions[qid].answers.append(Answer(answer, upvotes))
    except UnicodeDecodeError:
        raise not_utf8_error(path) from None
    except csv.Error as err:
        raise DataError(
            str(path), f"broken CSV ({err})", line=line + 1, hint=f"fields are limited to {MAX_FIELD_BYTES >> 20} MiB"
        ) from None
    if not questions:
        raise DataError(str(path), f"no rows with split == {split!r}")
    return list(questions.values())


def sft_examples(questions: list[Question]) -> list[SFTExample]:
    return [SFTExample(q.speech, a.text) for q in questions for a in q.answers]


def upvote_pairs(questions: list[Question]) -> tuple[list[PreferencePair], PairCounts]:
    """Every two answers to one question with different upvotes; more upvotes = chosen."""
    counts = PairCounts(questions=len(questions))
    pairs: list[PreferencePair] = []
    for question in questions:
        if len(question.answers) < 2:
            counts.single_answer_questions += 1
        for a, b in itertools.combinations(question.answers, 2):
            if a.upvotes == b.upvotes:
                counts.tied_pairs_dropped += 1
                continue
            hi, lo = (a, b) if a.upvotes > b.upvotes else (b, a)
            pairs.append(PreferencePair(question.speech, hi.text, lo.text, float(hi.upvotes), float(lo.upvotes)))
    counts.pairs = len(pairs)
    return pairs, counts
