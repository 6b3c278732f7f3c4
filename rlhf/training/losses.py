"""Training objectives, in one registry the trainer ranks look up (`TrainerRank._loss`).

A loss declares the model it trains (a causal LM, or one with a value head), the data it needs
(EXAMPLES: a prompt and a response; PAIRS: a prompt with a chosen and a rejected response;
REFERENCED_PAIRS: pairs that also carry the frozen reference model's log-probabilities, which the
trainer group computes once per pass, `TrainerGroup.with_reference`), and computes (loss, metrics)
for one micro-batch. Its hyperparameters are fields of the stage's config section, handed to it
whole as `settings`, so a new one is a config field and nothing else.

    nll            SFT: negative log-likelihood of the answer tokens
    bradley_terry  reward model: -log sigmoid(r_chosen - r_rejected)
    dpo            DPO (Rafailov et al. 2023) on summed response log-probabilities
    ipo            IPO (Azar et al. 2023) on the same data

Preference losses (dpo, ipo) are functions of the four summed log-probabilities; adding one is a
function and a `register_preference` line (CONTRIBUTING.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

CAUSAL_LM, VALUE_HEAD = "causal_lm", "value_head"  # the model a loss trains
# metrics that add up over micro-batches and ranks (forward_flops: rlhf.training.flops); the rest average
COUNTS = ("tokens", "computed_tokens", "forward_flops")
EXAMPLES, PAIRS, REFERENCED_PAIRS = "examples", "pairs", "referenced_pairs"  # the data it needs


@dataclass
class Batch:
    """One micro-batch as a loss sees it."""

    model: Any  # the DeepSpeed engine being trained
    inputs: dict  # batching.collate (EXAMPLES) or collate_pairs (chosen rows, then rejected rows)
    items: list  # the Encoded / EncodedPair items
    settings: dict  # the stage's config section (beta, ...)
    rewards: Callable[[], torch.Tensor]  # VALUE_HEAD models: one reward per row

    @property
    def tokens(self) -> int:
        """Non-padding tokens of the batch's sequences (a pair: prompt + chosen, prompt + rejected)."""
        return int(self.inputs["attention_mask"].sum())

    @property
    def computed_tokens(self) -> int:
        """Tokens the model runs through: `tokens`, less the second run of each shared prompt."""
        if "prompt_ids" in self.inputs:
            return int(self.inputs["prompt_mask"].sum() + self.inputs["response_mask"].sum())
        return self.tokens


@dataclass(frozen=True)
class Loss:
    name: str
    model: str
    data: str
    compute: Callable[[Batch], tuple[torch.Tensor, dict]]


LOSSES: dict[str, Loss] = {}


def register(name: str, *, model: str, data: str):
    """Decorator: `compute(batch) -> (loss, metrics)` becomes the loss `name`."""

    def add(compute):
        LOSSES[name] = Loss(name, model, data, compute)
        return compute

    return add


def preference_losses() -> tuple[str, ...]:
    """The losses a DPO-style stage (offline, online) can use."""
    return tuple(name for name, loss in LOSSES.items() if loss.data == REFERENCED_PAIRS)


# -- log-probabilities ------------------------------------------------------------------------------
def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) at each position: logits [B, T, V] score targets [B, T]. The log-softmax runs
    in float32 (bf16 would round a log-probability like -5.12 to two digits). Not chunked and not
    gather-minus-logsumexp: on a CPU both ran 1.5-2x slower, forward and backward, than this over
    [8, 160, 49152] logits; they save memory, which the response-only logits already keep small."""
    return torch.gather(logits.float().log_softmax(-1), 2, targets.unsqueeze(-1)).squeeze(-1)


_logprobs = token_logprobs  # what the functions below call; compile_logprobs swaps in its compiled form


def compile_logprobs() -> None:
    """model.compile: the log-softmax runs on the model's logits outside the model, so compiling the
    model leaves it eager: a float32 copy, a log-softmax and a gather, each a pass over [B, T, V] (and
    as many back). Compiled, each way is one fused pass: 2.4x faster forward and backward over [8, 128,
    49152] bf16 logits on one CPU core here, the same values."""
    global _logprobs
    if _logprobs is token_logprobs:  # once per process: each compiled engine (policy, reference) asks
        _logprobs = torch.compile(token_logprobs, dynamic=True)


def response_logprobs(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-probability of each response token [B, W], mask of real response tokens [B, W]) for a
    batch from `batching.collate`. Logits only for the response columns (collate aligns them): the
    vocabulary projection and its log-softmax are the costliest part of a small model's forward."""
    start = batch["response_start"]
    width = batch["input_ids"].size(1) - start
    logits = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        logits_to_keep=width + 1,
    ).logits
    # logits[:, i] sits at position start - 1 + i and scores the token at start + i
    return _logprobs(logits[:, :-1], batch["input_ids"][:, start:]), batch["loss_mask"][:, start:]


def shared_prompt_logprobs(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """`response_logprobs` for pairs from `batching.collate_shared`, with each prompt run once: one
    forward over the prompts keeps their KV cache, and the chosen and rejected responses continue
    from it (the cache repeated for both), so a pair costs prompt + chosen + rejected tokens instead
    of twice the prompt (a round's prompts are about half its tokens). Gradients reach the prompt's
    activations from both responses. Rows come back as `collate_pairs` orders them: chosen rows,
    then rejected."""
    prompt_ids, prompt_mask = batch["prompt_ids"], batch["prompt_mask"]
    response_ids, response_mask = batch["response_ids"], batch["response_mask"]
    prompt = model(
        input_ids=prompt_ids,
        attention_mask=prompt_mask,
        position_ids=(prompt_mask.cumsum(-1) - 1).clamp(min=0),
        use_cache=True,
        logits_to_keep=1,  # the last prompt position scores the first response token
    )
    cache = prompt.past_key_values
    cache.batch_repeat_interleave(2)  # row i's prompt serves rows 2i (chosen) and 2i + 1 (rejected)
    width = response_ids.size(1)
    after_prompt = prompt_mask.sum(-1).repeat_interleave(2)[:, None]
    positions = after_prompt + torch.arange(width, device=response_ids.device)[None]
    responses = model(
        input_ids=response_ids,
        attention_mask=batch["attention_mask"],
        position_ids=positions,
        past_key_values=cache,
        logits_to_keep=width,
    ).logits
    logits = torch.cat([prompt.logits[:, -1:].repeat_interleave(2, 0), responses[:, :-1]], dim=1)
    logprobs = _logprobs(logits, response_ids)
    rows = torch.arange(logprobs.size(0), device=logprobs.device)
    order = torch.cat([rows[0::2], rows[1::2]])  # chosen rows (2i), then rejected (2i + 1)
    return logprobs[order], response_mask[order]


def pair_logprobs(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token response log-probabilities of a pair batch, chosen rows then rejected, from either
    layout: `batching.collate_shared` (prompt once) or `batching.collate_pairs` (two full rows)."""
    return shared_prompt_logprobs(model, batch) if "prompt_ids" in batch else response_logprobs(model, batch)


# -- supervised and reward-model losses -----------------------------------------------------------------
@register("nll", model=CAUSAL_LM, data=EXAMPLES)
def nll(batch: Batch) -> tuple[torch.Tensor, dict]:
    logprobs, mask = response_logprobs(batch.model, batch.inputs)
    loss = -(logprobs * mask).sum() / mask.sum().clamp(min=1)
    return loss, {"loss": loss.item(), "tokens": batch.tokens}


def bradley_terry_loss(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> torch.Tensor:
    """-log sigmoid(r(x, y_chosen) - r(x, y_rejected)), averaged over pairs."""
    return -F.logsigmoid(chosen_rewards - rejected_rewards).mean()


@register("bradley_terry", model=VALUE_HEAD, data=PAIRS)
def bradley_terry(batch: Batch) -> tuple[torch.Tensor, dict]:
    n = len(batch.items)
    rewards = batch.rewards()
    chosen, rejected = rewards[:n], rewards[n:]
    loss = bradley_terry_loss(chosen, rejected)
    return loss, {
        "loss": loss.item(),
        "accuracy": (chosen > rejected).float().mean().item(),
        "reward_margin": (chosen - rejected).mean().item(),
        "reward_mean": rewards.mean().item(),
        "reward_sq_mean": (rewards.float() ** 2).mean().item(),
        "tokens": batch.tokens,
    }


# -- preference losses ----------------------------------------------------------------------------------
def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DPO (Rafailov et al. 2023) on sequence log-probabilities.

    Returns (loss averaged over pairs, implicit chosen reward, implicit rejected reward), where the
    implicit reward is beta * (log pi(y|x) - log pi_ref(y|x)).
    """
    chosen_reward = beta * (policy_chosen - reference_chosen)
    rejected_reward = beta * (policy_rejected - reference_rejected)
    loss = -F.logsigmoid(chosen_reward - rejected_reward).mean()
    return loss, chosen_reward.detach(), rejected_reward.detach()


def ipo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """IPO (Azar et al. 2023, eq. 17): (h - 1 / (2 beta))^2 averaged over pairs, with
    h = (log pi(y_c) - log pi_ref(y_c)) - (log pi(y_r) - log pi_ref(y_r)) on summed response
    log-probabilities, as OpenRLHF's DPOLoss(ipo=True) computes it (TRL length-normalises them
    instead). It regresses the log-ratio margin to 1/(2 beta) rather than pushing it up without
    bound. Implicit rewards as for DPO, for the same metrics."""
    chosen_ratio, rejected_ratio = policy_chosen - reference_chosen, policy_rejected - reference_rejected
    loss = ((chosen_ratio - rejected_ratio - 1.0 / (2.0 * beta)) ** 2).mean()
    return loss, (beta * chosen_ratio).detach(), (beta * rejected_ratio).detach()


def register_preference(name: str, pairwise: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]):
    """A preference loss from `pairwise(policy_chosen, policy_rejected, reference_chosen,
    reference_rejected, settings) -> (loss, chosen_reward, rejected_reward)` on summed log-probs."""

    @register(name, model=CAUSAL_LM, data=REFERENCED_PAIRS)
    def compute(batch: Batch) -> tuple[torch.Tensor, dict]:
        n = len(batch.items)
        logprobs, mask = pair_logprobs(batch.model, batch.inputs)
        policy = (logprobs * mask).sum(-1)
        reference = (
            torch.tensor([r for item in batch.items for r in item.reference], dtype=policy.dtype, device=policy.device)
            .view(n, 2)
            .t()
            .reshape(-1)
        )  # chosen rows, then rejected
        loss, chosen_reward, rejected_reward = pairwise(
            policy[:n], policy[n:], reference[:n], reference[n:], batch.settings
        )
        return loss, {
            "loss": loss.item(),
            "implicit_accuracy": (chosen_reward > rejected_reward).float().mean().item(),
            "implicit_margin": (chosen_reward - rejected_reward).mean().item(),
            "logp_margin": (policy[:n] - policy[n:]).mean().item(),
            "tokens": batch.tokens,
            "computed_tokens": batch.computed_tokens,
        }

    return compute


register_preference("dpo", lambda pc, pr, rc, rr, settings: dpo_loss(pc, pr, rc, rr, settings["beta"]))
register_preference("ipo", lambda pc, pr, rc, rr, settings: ipo_loss(pc, pr, rc, rr, settings["beta"]))
