"""Which speeches a round samples: a pure function of (seed, round), so a resumed run sees the
same data order as an uninterrupted one."""

from __future__ import annotations

import random


def round_indices(total: int, round_index: int, per_round: int, seed: int) -> list[int]:
    """Indices for one round: consecutive slices of an endless sequence of per-epoch shuffles."""
    start = round_index * per_round
    out: list[int] = []
    while len(out) < per_round:
        epoch, offset = divmod(start + len(out), total)
        order = list(range(total))
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
        out += order[offset : offset + per_round - len(out)]
    return out
