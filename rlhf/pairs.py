"""Turn K scored responses per speech into one DPO pair: highest reward chosen, lowest rejected.

A response cut at the token limit is not a finished answer. `truncated` says what to do with one:
  rank_last  it ranks below every finished response: never chosen, and rejected before any
             finished one (an unfinished answer is worse than a finished one, whatever its reward)
  drop       it takes no part in pairs
  keep       it is ranked by its reward like any other
"""

from __future__ import annotations

from dataclasses import dataclass

from rlhf.config import TRUNCATED
from rlhf.data.records import PreferencePair, Speech


@dataclass
class PairStats:
    speeches: int = 0
    pairs: int = 0
    dropped_small_gap: int = 0   # best minus worst reward below min_gap (including exact ties)
    dropped_identical: int = 0   # best and worst responses have the same text
    dropped_unfinished: int = 0  # fewer than two candidates (or no finished one) once truncation is applied
    truncated: int = 0           # responses cut at the token limit

    @property
    def dropped(self) -> int:
        return self.dropped_small_gap + self.dropped_identical + self.dropped_unfinished


def select_pairs(speeches: list[Speech], responses: list[list[str]], rewards: list[list[float]],
                 min_gap: float, finished: list[list[bool]] | None = None,
                 truncated: str = "rank_last") -> tuple[list[PreferencePair], PairStats]:
    """Best vs worst response per speech. A pair is kept only if the two texts differ and, unless
    a finished response is preferred to an unfinished one (rank_last), the reward gap is positive
    and at least `min_gap`. Among equal ranks the earlier sample wins (stable)."""
    if truncated not in TRUNCATED:
        raise ValueError(f"truncated={truncated!r} must be one of {TRUNCATED}")
    stats = PairStats(speeches=len(speeches))
    finished = finished or [[True] * len(r) for r in responses]
    pairs, offset = [], 0  # offset: index of the speech's first response among all of the round's
    for speech, texts, scores, done in zip(speeches, responses, rewards, finished, strict=True):
        offset += len(texts)
        stats.truncated += done.count(False)
        candidates = [i for i in range(len(scores)) if done[i] or truncated != "drop"]
        ranked = truncated == "rank_last"

        def rank(i: int) -> tuple:
            return (done[i], scores[i]) if ranked else (scores[i],)

        if len(candidates) < 2 or (ranked and not done[max(candidates, key=lambda i: (rank(i), -i))]):
            stats.dropped_unfinished += 1
            continue
        best = max(candidates, key=lambda i: (rank(i), -i))
        worst = min(candidates, key=lambda i: (rank(i), i))
        decided_by_finish = ranked and done[best] and not done[worst]
        gap = scores[best] - scores[worst]
        if not decided_by_finish and (gap <= 0 or gap < min_gap):
            stats.dropped_small_gap += 1
        elif texts[best].strip() == texts[worst].strip():
            stats.dropped_identical += 1
        else:
            first = offset - len(texts)
            pairs.append(PreferencePair(speech, texts[best], texts[worst], scores[best], scores[worst],
                                        first + best, first + worst))
    stats.pairs = len(pairs)
    return pairs, stats
