"""Which preference pairs the reward and offline DPO stages train on, and which they hold out:
the Parquet file of data.preference_path (its first 5% held out), or counsel-chat's upvote pairs
of the train and val questions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlhf.data import counsel_chat
from rlhf.pairs.parquet import read_preference_parquet
from rlhf.paths import resolve_path

if TYPE_CHECKING:
    from rlhf.config import RunConfig


def training_pairs(run: RunConfig, train_questions: list, val_questions: list, split: str):
    """(pairs of `split` ("train" or "val"), how counsel-chat's pairs were derived or None)."""
    if run.data.preference_path:
        pairs = read_preference_parquet(resolve_path(run.data.preference_path))
        cut = max(1, len(pairs) // 20)  # a 5% held-out slice for accuracy
        return (pairs[cut:] if split == "train" else pairs[:cut]), None
    return counsel_chat.upvote_pairs(train_questions if split == "train" else val_questions)


def whole_answers(pairs: list, encoder) -> list:
    """Pairs whose chosen and rejected answers both fit model.max_response_len, ending with EOS."""
    eos = encoder.tokenizer.eos_token_id
    return [p for p in pairs if all(encoder.response(text)[-1] == eos for text in (p.chosen, p.rejected))]
