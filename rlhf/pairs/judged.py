"""From judged responses (stage=build_prefs) to preference pairs in the released
PsychoCounsel-Preference schema (written by rlhf.pairs.parquet).

Score of a response = the mean (paper) or the total of its seven ratings. Speeches are split into
train and test by a seeded hash of the speech, so no speech is in both splits:
  - train: every two responses to a speech whose scores differ by at least `min_gap`;
  - test: the highest- vs the lowest-scored response of each speech (if their scores differ).
`min_gap` is on the scale of the chosen aggregate (mean: 1 as in the paper; total: 7 is the same)."""

from __future__ import annotations

import hashlib
import itertools
import statistics
from dataclasses import dataclass

from rlhf.data.records import Speech
from rlhf.prefs.judge import PRINCIPLES

AGGREGATES = ("mean", "total")


@dataclass(frozen=True)
class Scored:
    speech: Speech
    responder: str
    sample: int
    text: str
    ratings: dict

    def score(self, aggregate: str) -> float:
        total = sum(self.ratings[p] for p in PRINCIPLES)
        return total / len(PRINCIPLES) if aggregate == "mean" else float(total)


def split_of(speech_key: str, seed: int, test_fraction: float) -> str:
    digest = hashlib.sha256(f"{seed}:{speech_key}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"


def _row(chosen: Scored, rejected: Scored) -> dict:
    row = {
        "ID": chosen.speech.id,
        "question": chosen.speech.text,
        "chosen": chosen.text,
        "rejected": rejected.text,
        "chosen_model": chosen.responder,
        "rejected_model": rejected.responder,
    }
    for side, scored in (("chosen", chosen), ("rejected", rejected)):
        for p in PRINCIPLES:
            row[f"{side}_{p}_rating"] = scored.ratings[p]
    return row


def make_pairs(
    groups: list[tuple[str, list[Scored]]], *, aggregate: str, min_gap: float, test_fraction: float, seed: int
) -> dict[str, list[dict]]:
    """`groups`: (speech key, its scored responses), in speech order. Ties never make a pair."""
    out: dict[str, list[dict]] = {"train": [], "test": []}
    for key, responses in groups:
        responses = sorted(responses, key=lambda s: (s.responder, s.sample))
        if len(responses) < 2:
            continue
        split = split_of(key, seed, test_fraction)
        if split == "test":
            best = max(responses, key=lambda s: s.score(aggregate))  # first of equals: stable order
            worst = min(responses, key=lambda s: s.score(aggregate))
            if best.score(aggregate) > worst.score(aggregate):
                out["test"].append(_row(best, worst))
            continue
        for a, b in itertools.combinations(responses, 2):
            gap = a.score(aggregate) - b.score(aggregate)
            if gap != 0 and abs(gap) >= min_gap:
                out["train"].append(_row(a, b) if gap > 0 else _row(b, a))
    for rows in out.values():
        for number, row in enumerate(rows):
            row["prefID"] = number
    return out


def mean_ratings(scored: list[Scored], aggregate: str) -> dict:
    """Per responder: responses scored, mean score and mean rating per principle (numbers only)."""
    by_responder: dict[str, list[Scored]] = {}
    for s in scored:
        by_responder.setdefault(s.responder, []).append(s)
    return {
        name: {
            "scored": len(items),
            "score": round(statistics.fmean(s.score(aggregate) for s in items), 3),
            **{p: round(statistics.fmean(s.ratings[p] for s in items), 3) for p in PRINCIPLES},
        }
        for name, items in sorted(by_responder.items())
    }
