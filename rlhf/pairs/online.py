"""Turn K scored responses per speech into one DPO pair: highest reward chosen, lowest rejected.

A response cut at the token limit is not a finished answer. `truncated` says what to do with one:
  reject_only  it is never chosen (a cut answer must not be reinforced), but may be the rejected
               one when its reward is the lowest; a speech with no finished response gives no pair
  drop         it takes no part in pairs
  keep         it is ranked by its reward like any other
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rlhf import atomic
from rlhf.choices import Truncated
from rlhf.data.records import PreferencePair, Speech


@dataclass
class PairStats:
    speeches: int = 0
    pairs: int = 0
    dropped_small_gap: int = 0  # best minus worst reward below min_gap (including exact ties)
    dropped_identical: int = 0  # best and worst responses have the same text
    dropped_unfinished: int = 0  # fewer than two candidates (or no finished one) once truncation is applied
    truncated: int = 0  # responses cut at the token limit

    @property
    def dropped(self) -> int:
        return self.dropped_small_gap + self.dropped_identical + self.dropped_unfinished


def select_pairs(
    speeches: list[Speech],
    responses: list[list[str]],
    rewards: list[list[float]],
    min_gap: float,
    finished: list[list[bool]] | None = None,
    truncated: str = "reject_only",
) -> tuple[list[PreferencePair], PairStats]:
    """Best vs worst response per speech. A pair is kept only if the reward gap is positive and at
    least `min_gap`, and the two texts differ. Among equal rewards the earlier sample wins (stable)."""
    if truncated not in Truncated.values():
        raise ValueError(f"truncated={truncated!r} must be one of {Truncated.values()}")
    stats = PairStats(speeches=len(speeches))
    finished = finished or [[True] * len(r) for r in responses]
    pairs, offset = [], 0  # offset: index of the speech's first response among all of the round's
    for speech, texts, scores, done in zip(speeches, responses, rewards, finished, strict=True):
        offset += len(texts)
        stats.truncated += done.count(False)
        everyone = range(len(scores))
        may_reject = [i for i in everyone if done[i] or truncated != "drop"]
        may_choose = [i for i in may_reject if done[i] or truncated == "keep"]
        if not may_choose or len(may_reject) < 2:
            stats.dropped_unfinished += 1
            continue
        best = max(may_choose, key=lambda i: (scores[i], -i))
        worst = min(may_reject, key=lambda i: (scores[i], i))
        gap = scores[best] - scores[worst]
        if gap <= 0 or gap < min_gap:
            stats.dropped_small_gap += 1
        elif texts[best].strip() == texts[worst].strip():
            stats.dropped_identical += 1
        else:
            first = offset - len(texts)
            pairs.append(
                PreferencePair(
                    speech, texts[best], texts[worst], scores[best], scores[worst], first + best, first + worst
                )
            )
    stats.pairs = len(pairs)
    return pairs, stats


def write_round_pairs(path: Path, pairs: list, finished: list[bool]) -> None:
    """The round's preference pairs, kept on this machine in the run directory (never logged)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_jsonl(
        path,
        (
            {
                "speech_id": p.speech.id,
                "chosen": p.chosen,
                "rejected": p.rejected,
                "chosen_reward": p.chosen_score,
                "rejected_reward": p.rejected_score,
                "chosen_finished": finished[p.chosen_index],
                "rejected_finished": finished[p.rejected_index],
            }
            for p in pairs
        ),
    )
