"""The losses the trainer runs: NLL (SFT, in the trainer), Bradley-Terry (reward model), DPO (policy)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) at each position: logits [B, T, V] score targets [B, T]. The log-softmax runs
    in float32 (bf16 would round a log-probability like -5.12 to two digits)."""
    return torch.gather(logits.float().log_softmax(-1), 2, targets.unsqueeze(-1)).squeeze(-1)


def response_logprobs(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-probability of each response token [B, W], mask of real response tokens [B, W]) for a
    batch from `batching.collate`. Logits only for the response columns (collate aligns them): the
    vocabulary projection and its log-softmax are the costliest part of a small model's forward."""
    start = batch["response_start"]
    width = batch["input_ids"].size(1) - start
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   position_ids=batch["position_ids"], logits_to_keep=width + 1).logits
    # logits[:, i] sits at position start - 1 + i and scores the token at start + i
    return token_logprobs(logits[:, :-1], batch["input_ids"][:, start:]), batch["loss_mask"][:, start:]


def bradley_terry_loss(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> torch.Tensor:
    """-log sigmoid(r(x, y_chosen) - r(x, y_rejected)), averaged over pairs."""
    return -F.logsigmoid(chosen_rewards - rejected_rewards).mean()


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
             reference_chosen: torch.Tensor, reference_rejected: torch.Tensor,
             beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DPO (Rafailov et al. 2023) on sequence log-probabilities.

    Returns (loss averaged over pairs, implicit chosen reward, implicit rejected reward), where the
    implicit reward is beta * (log pi(y|x) - log pi_ref(y|x)).
    """
    chosen_reward = beta * (policy_chosen - reference_chosen)
    rejected_reward = beta * (policy_rejected - reference_rejected)
    loss = -F.logsigmoid(chosen_reward - rejected_reward).mean()
    return loss, chosen_reward.detach(), rejected_reward.detach()
