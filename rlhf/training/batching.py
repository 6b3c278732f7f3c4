"""Tokenise records into (prompt, response) id lists, shard them across trainer ranks, pad them.

The driver tokenises; trainer ranks only see integer lists, so they need no tokenizer.
Under ZeRO-3 every rank must run the same number of forward passes, so batches are padded by
repeating items from the start (as torch's DistributedSampler does) rather than left uneven.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from rlhf.data.prompts import chat_messages


@dataclass(frozen=True)
class Encoded:
    """A prompt and one response as token ids."""

    prompt: list[int]
    response: list[int]

    def __len__(self) -> int:
        return len(self.prompt) + len(self.response)


@dataclass(frozen=True)
class EncodedPair:
    """A prompt with a chosen and a rejected response. `reference`: the frozen reference model's
    log-probabilities of (chosen, rejected), computed once before a DPO pass and reused by every
    step and epoch (None until then)."""

    prompt: list[int]
    chosen: list[int]
    rejected: list[int]
    reference: tuple[float, float] | None = None

    def __len__(self) -> int:  # tokens a forward pass runs through: what sorting by length sorts on
        return 2 * len(self.prompt) + len(self.chosen) + len(self.rejected)


class Encoder:
    """Chat-template a speech and tokenise prompts and responses within length budgets."""

    def __init__(self, tokenizer, system_prompt: str, max_prompt_len: int, max_response_len: int):
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        self.max_prompt_len = max_prompt_len
        self.max_response_len = max_response_len
        self._overhead = len(self._prompt_ids(""))
        if self._overhead >= max_prompt_len:
            raise ValueError(
                f"model.max_prompt_len={max_prompt_len} leaves no room for the speech: "
                f"the system prompt and chat template alone take {self._overhead} tokens"
            )

    def _prompt_ids(self, speech: str) -> list[int]:
        text = self.tokenizer.apply_chat_template(
            chat_messages(self.system_prompt, speech), add_generation_prompt=True, tokenize=False
        )
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def truncate_speech(self, speech: str) -> str:
        """Cut a speech so that its chat prompt fits max_prompt_len tokens."""
        ids = self.tokenizer(speech, add_special_tokens=False)["input_ids"]
        budget = self.max_prompt_len - self._overhead
        return speech if len(ids) <= budget else self.tokenizer.decode(ids[:budget])

    def prompt(self, speech: str) -> list[int]:
        return self._prompt_ids(self.truncate_speech(speech))[: self.max_prompt_len]

    def prompt_messages(self, speech: str) -> list[dict]:
        return chat_messages(self.system_prompt, self.truncate_speech(speech))

    def response(self, text: str) -> list[int]:
        """A whole answer ends with EOS; one longer than max_response_len is cut there and gets none
        (an answer cut mid-sentence is not a finished one, and must not teach the model to stop)."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) >= self.max_response_len:
            return ids[: self.max_response_len]
        return ids + [self.tokenizer.eos_token_id]

    def example(self, speech: str, response: str) -> Encoded:
        return Encoded(self.prompt(speech), self.response(response))

    def pair(self, speech: str, chosen: str, rejected: str) -> EncodedPair:
        return EncodedPair(self.prompt(speech), self.response(chosen), self.response(rejected))

    def judged(self, text: str) -> list[int]:
        """A response as a reward model reads it: always ending with EOS, cut one token earlier if
        needed (OpenRLHF's /get_reward appends EOS too). A reward model that saw cut answers without
        an EOS learns that the missing EOS marks the upvoted, longer answer, and then prefers
        generations cut at the limit to finished ones."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"][: self.max_response_len - 1]
        return ids + [self.tokenizer.eos_token_id]

    def judged_example(self, speech: str, response: str) -> Encoded:
        return Encoded(self.prompt(speech), self.judged(response))

    def judged_pair(self, speech: str, chosen: str, rejected: str) -> EncodedPair:
        return EncodedPair(self.prompt(speech), self.judged(chosen), self.judged(rejected))

    def scoring_text(self, speech: str, response: str) -> str:
        """The text whose tokens are exactly `prompt + response` ids: what a reward server gets
        (OpenRLHF's /get_reward takes such strings and appends EOS itself)."""
        prompt = self.tokenizer.apply_chat_template(
            self.prompt_messages(speech), add_generation_prompt=True, tokenize=False
        )
        return prompt + response + self.tokenizer.eos_token


def collate(sequences: list[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """One batch with every response starting at the same column: prompts right-aligned (padded on
    the left), responses after them (padded on the right). A causal LM then needs logits only for
    the last `response_width + 1` positions (`logits_to_keep`), which on a 49k vocabulary is most of
    the logits' cost. position_ids count real tokens only, so padding never shifts positions."""
    start = max(len(s.prompt) for s in sequences)
    width = max(len(s.response) for s in sequences)
    shape = (len(sequences), start + width)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    attention = torch.zeros(shape, dtype=torch.long)
    loss_mask = torch.zeros(shape, dtype=torch.long)
    for row, seq in enumerate(sequences):
        left, end = start - len(seq.prompt), start + len(seq.response)
        input_ids[row, left:end] = torch.tensor(seq.prompt + seq.response)
        attention[row, left:end] = 1
        loss_mask[row, start:end] = 1
    position_ids = (attention.cumsum(-1) - 1).clamp(min=0)
    return {
        "input_ids": input_ids,
        "attention_mask": attention,
        "loss_mask": loss_mask,
        "position_ids": position_ids,
        "response_start": start,
    }


def collate_pairs(pairs: list[EncodedPair], pad_id: int) -> dict[str, torch.Tensor]:
    """Chosen rows first, then rejected rows, in one batch (one forward pass for both)."""
    return collate(
        [Encoded(p.prompt, p.chosen) for p in pairs] + [Encoded(p.prompt, p.rejected) for p in pairs], pad_id
    )


def collate_shared(pairs: list[EncodedPair], pad_id: int) -> dict[str, torch.Tensor]:
    """Pairs whose prompt runs once (losses.shared_prompt_logprobs): the prompts, padded on the left
    [B, P], and the responses [2B, R], padded on the right, chosen and rejected of pair i in rows 2i
    and 2i + 1, so that each prompt's KV cache serves the two rows after it."""
    start = max(len(p.prompt) for p in pairs)
    width = max(max(len(p.chosen), len(p.rejected)) for p in pairs)
    prompt_ids = torch.full((len(pairs), start), pad_id, dtype=torch.long)
    prompt_mask = torch.zeros((len(pairs), start), dtype=torch.long)
    response_ids = torch.full((2 * len(pairs), width), pad_id, dtype=torch.long)
    response_mask = torch.zeros((2 * len(pairs), width), dtype=torch.long)
    for row, pair in enumerate(pairs):
        prompt_ids[row, start - len(pair.prompt) :] = torch.tensor(pair.prompt)
        prompt_mask[row, start - len(pair.prompt) :] = 1
        for k, response in enumerate((pair.chosen, pair.rejected)):
            response_ids[2 * row + k, : len(response)] = torch.tensor(response)
            response_mask[2 * row + k, : len(response)] = 1
    return {
        "prompt_ids": prompt_ids,
        "prompt_mask": prompt_mask,
        "response_ids": response_ids,
        "response_mask": response_mask,
        "attention_mask": torch.cat([prompt_mask.repeat_interleave(2, 0), response_mask], dim=1),
    }


def accumulation_steps(optim, world_size: int) -> int:
    """Micro-batches per rank per optimizer step: batch_size = micro_batch x ranks x this."""
    return optim.batch_size // (optim.micro_batch * world_size)


def plan_steps(
    items: list, world_size: int, micro_batch: int, accumulation: int, epochs: int, seed: int
) -> list[list[list[list]]]:
    """Split items into optimizer steps -> ranks -> micro-batches -> items.

    Each epoch shuffles; the last step is filled by repeating items from the epoch's start so every
    rank runs the same number of micro-batches (a ZeRO-3 requirement).
    """
    if not items:
        return []
    per_step = world_size * micro_batch * accumulation
    rng = random.Random(seed)
    steps = []
    for _ in range(epochs):
        order = list(items)
        rng.shuffle(order)
        shortfall = (-len(order)) % per_step
        order += [order[i % len(order)] for i in range(shortfall)]
        for start in range(0, len(order), per_step):
            # Within a step, items of similar length share micro-batches (less padding); the step's
            # gradient is the same whichever micro-batch an item lands in.
            chunk = sorted(order[start : start + per_step], key=_length)
            ranks = [chunk[r::world_size] for r in range(world_size)]
            steps.append(
                [[rank[m * micro_batch : (m + 1) * micro_batch] for m in range(accumulation)] for rank in ranks]
            )
    return steps


def _length(item) -> int:
    try:
        return len(item)
    except TypeError:  # items without a length (e.g. ints in tests) keep their shuffled order
        return 0
