"""The three losses against values computed by hand."""

import math

import pytest
import torch

from rlhf.training import losses


def test_dpo_loss_matches_hand_computation():
    # log-ratios: chosen 2.0 - 1.0 = 1.0, rejected 1.0 - 3.0 = -2.0; beta 0.1 -> margin 0.3
    loss, chosen, rejected = losses.dpo_loss(torch.tensor([2.0]), torch.tensor([1.0]),
                                             torch.tensor([1.0]), torch.tensor([3.0]), beta=0.1)
    assert loss.item() == pytest.approx(-math.log(1 / (1 + math.exp(-0.3))), rel=1e-6)
    assert chosen.item() == pytest.approx(0.1)
    assert rejected.item() == pytest.approx(-0.2)


def test_dpo_loss_is_log2_when_policy_equals_reference_and_averages_pairs():
    same = torch.tensor([-5.0, -7.0])
    loss, _, _ = losses.dpo_loss(same, same + 1, same, same + 1, beta=0.5)
    assert loss.item() == pytest.approx(math.log(2))
    # two pairs with margins +1 and -1 (beta 1): mean of softplus(-1) and softplus(1)
    loss, _, _ = losses.dpo_loss(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]),
                                 torch.zeros(2), torch.zeros(2), beta=1.0)
    expected = (math.log1p(math.exp(-1)) + math.log1p(math.exp(1))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_dpo_gradient_pushes_chosen_up_and_rejected_down():
    chosen = torch.tensor([0.0], requires_grad=True)
    rejected = torch.tensor([0.0], requires_grad=True)
    loss, _, _ = losses.dpo_loss(chosen, rejected, torch.zeros(1), torch.zeros(1), beta=0.1)
    loss.backward()
    assert chosen.grad.item() == pytest.approx(-0.05)  # -beta * sigmoid(0)
    assert rejected.grad.item() == pytest.approx(0.05)


def test_bradley_terry_loss_by_hand():
    loss = losses.bradley_terry_loss(torch.tensor([2.0, 0.0]), torch.tensor([1.0, 0.0]))
    expected = (math.log1p(math.exp(-1.0)) + math.log(2)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_sequence_logprobs_counts_only_response_tokens():
    # vocabulary of 2, uniform logits -> every token has log-prob log(1/2)
    logits = torch.zeros(1, 4, 2)
    input_ids = torch.tensor([[0, 1, 1, 0]])
    loss_mask = torch.tensor([[0, 0, 1, 1]])  # tokens 2 and 3 are the response
    assert losses.sequence_logprobs(logits, input_ids, loss_mask).item() == pytest.approx(2 * math.log(0.5))
    assert losses.nll_loss(logits, input_ids, loss_mask).item() == pytest.approx(math.log(2))


def test_token_logprobs_use_the_next_token():
    logits = torch.tensor([[[10.0, 0.0], [0.0, 10.0], [0.0, 0.0]]])
    input_ids = torch.tensor([[1, 0, 1]])
    logp = losses.token_logprobs(logits, input_ids)
    # position 0 predicts token 0 (likely), position 1 predicts token 1 (likely)
    assert logp[0, 0].item() == pytest.approx(-math.log1p(math.exp(-10)), abs=1e-6)
    assert logp[0, 1].item() == pytest.approx(-math.log1p(math.exp(-10)), abs=1e-6)
