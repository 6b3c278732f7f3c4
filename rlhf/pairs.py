"""Turn K scored responses per speech into one DPO pair: highest reward chosen, lowest rejected."""

from __future__ import annotations

from dataclasses import dataclass

from rlhf.data.records import PreferencePair, Speech


@dataclass
class PairStats:
    speeches: int = 0
    pairs: int = 0
    dropped_small_gap: int = 0   # best minus worst reward below min_gap (including exact ties)
    dropped_identical: int = 0   # best and worst responses have the same text

    @property
    def dropped(self) -> int:
        return self.dropped_small_gap + self.dropped_identical


def select_pairs(speeches: list[Speech], responses: list[list[str]], rewards: list[list[float]],
                 min_gap: float) -> tuple[list[PreferencePair], PairStats]:
    """Best vs worst response per speech. A pair is kept only if the reward gap is positive and at
    least `min_gap`, and the two texts differ. Among equal rewards the earlier sample wins (stable)."""
    stats = PairStats(speeches=len(speeches))
    pairs = []
    for speech, texts, scores in zip(speeches, responses, rewards, strict=True):
        best = max(range(len(scores)), key=lambda i: (scores[i], -i))
        worst = min(range(len(scores)), key=lambda i: (scores[i], i))
        gap = scores[best] - scores[worst]
        if gap <= 0 or gap < min_gap:
            stats.dropped_small_gap += 1
        elif texts[best].strip() == texts[worst].strip():
            stats.dropped_identical += 1
        else:
            pairs.append(PreferencePair(speech, texts[best], texts[worst], scores[best], scores[worst]))
    stats.pairs = len(pairs)
    return pairs, stats
