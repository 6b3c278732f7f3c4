"""A reward model in a Ray actor. N of them form the scorer group; items are split among them.

Each actor tokenises with the reward model's own tokenizer and chat template, exactly as the
reward stage trained it: prompt (with generation prompt) + response + EOS, reward at the last token.
"""

from __future__ import annotations

import torch

from rlhf import device
from rlhf.training.batching import Encoder, collate


class RewardScorer:
    def __init__(
        self,
        model_dir: str,
        *,
        device_type: str,
        threads: int,
        dtype: str,
        batch_size: int,
        system_prompt: str,
        max_prompt_len: int,
        max_response_len: int,
        trust_remote_code: bool = False,
        attention: str = "sdpa",
        share_prompt: bool = False,
        compile: bool = False,
        keep_host_memory: bool = False,
    ):
        from transformers import AutoTokenizer

        from rlhf.models.reward_model import load_reward_model

        device.setup_process(device_type, threads, keep_host_memory)
        self.device = device.torch_device(device_type)
        self.model, self.mean, self.std = load_reward_model(
            model_dir, device.torch_dtype(dtype), trust_remote_code, attention
        )
        self.model.to(self.device)
        if compile:  # model.compile: the backbone every scoring path runs through (the head is one matmul)
            self.model.base_model.compile(dynamic=True)
        tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.encoder = Encoder(tokenizer, system_prompt, max_prompt_len, max_response_len)
        self.batch_size = batch_size
        self.share_prompt = share_prompt  # each distinct prompt of a batch runs once (model.share_prompt)

    @torch.no_grad()
    def score(self, items: list[tuple[str, str]]) -> list[float]:
        """Rewards for (speech, response) items, normalised if the checkpoint says so."""
        from rlhf.models.reward_model import reward_at_last_token, shared_prompt_rewards

        rewards: list[float] = []
        pad = self.encoder.tokenizer.pad_token_id
        for start in range(0, len(items), self.batch_size):
            examples = [self.encoder.judged_example(s, r) for s, r in items[start : start + self.batch_size]]
            if self.share_prompt:
                values = shared_prompt_rewards(
                    self.model, [e.prompt for e in examples], [e.response for e in examples], pad
                )
            else:
                batch = collate(examples, pad)
                values = reward_at_last_token(
                    self.model, batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
                )
            rewards += ((values.float() - self.mean) / self.std).tolist()
        return rewards

    @torch.no_grad()
    def score_texts(self, texts: list[str]) -> list[float]:
        """OpenRLHF /get_reward semantics: whole chat texts; EOS stripped and appended once."""
        from rlhf.models.reward_model import reward_at_last_token

        tokenizer, eos = self.encoder.tokenizer, self.encoder.tokenizer.eos_token
        rewards: list[float] = []
        limit = self.encoder.max_prompt_len + self.encoder.max_response_len
        for start in range(0, len(texts), self.batch_size):
            chunk = [t.removesuffix(eos) if eos else t for t in texts[start : start + self.batch_size]]
            ids = [
                tokenizer(t, add_special_tokens=False)["input_ids"][: limit - 1] + [tokenizer.eos_token_id]
                for t in chunk
            ]
            length = max(map(len, ids))
            input_ids = torch.full((len(ids), length), tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros_like(input_ids)
            for row, seq in enumerate(ids):
                input_ids[row, : len(seq)] = torch.tensor(seq)
                mask[row, : len(seq)] = 1
            values = reward_at_last_token(self.model, input_ids.to(self.device), mask.to(self.device))
            rewards += ((values.float() - self.mean) / self.std).tolist()
        return rewards
