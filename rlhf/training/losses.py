"""The three losses the trainer runs: NLL (SFT), Bradley-Terry (reward model), DPO (policy)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Log-probability of each next token: position t scores input_ids[t + 1]. Shape [B, T-1]."""
    logits = logits[:, :-1].float()
    targets = input_ids[:, 1:]
    return torch.gather(logits.log_softmax(-1), 2, targets.unsqueeze(-1)).squeeze(-1)


def sequence_logprobs(logits: torch.Tensor, input_ids: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Sum of response-token log-probabilities per sequence. `loss_mask[b, t]` is 1 where token t
    belongs to the response (so it is scored by position t - 1)."""
    return (token_logprobs(logits, input_ids) * loss_mask[:, 1:]).sum(-1)


def nll_loss(logits: torch.Tensor, input_ids: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood over response tokens (SFT)."""
    mask = loss_mask[:, 1:].float()
    return -(token_logprobs(logits, input_ids) * mask).sum() / mask.sum().clamp(min=1)


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
