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


def test_token_logprobs_are_log_softmax_at_the_target():
    logits = torch.tensor([[[10.0, 0.0], [0.0, 10.0], [0.0, 0.0]]])
    logp = losses.token_logprobs(logits, torch.tensor([[0, 1, 1]]))
    assert logp[0, 0].item() == pytest.approx(-math.log1p(math.exp(-10)), abs=1e-6)
    assert logp[0, 1].item() == pytest.approx(-math.log1p(math.exp(-10)), abs=1e-6)
    assert logp[0, 2].item() == pytest.approx(math.log(0.5), abs=1e-6)


def test_compiled_logprobs_give_the_eager_values_and_gradients(monkeypatch):
    """model.compile swaps the losses' log-softmax for its torch.compile form: same values and
    gradients, over logits of several shapes (dynamic: no recompile per width)."""
    monkeypatch.setattr(losses, "_logprobs", losses._logprobs)  # restored after the test
    losses.compile_logprobs()
    assert losses._logprobs is not losses.token_logprobs
    for shape in ((2, 5, 64), (3, 7, 64)):
        logits = torch.randn(*shape, dtype=torch.bfloat16)
        targets = torch.randint(0, shape[-1], shape[:2])
        grads = []
        for fn in (losses.token_logprobs, losses._logprobs):
            x = logits.clone().requires_grad_()
            (fn(x, targets) * torch.linspace(0, 1, shape[1])).sum().backward()
            grads.append((fn(x, targets).detach(), x.grad))
        assert torch.allclose(grads[0][0], grads[1][0], atol=1e-5)
        assert torch.allclose(grads[0][1].float(), grads[1][1].float(), atol=1e-2)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])  # model.attention: either kernel masks the padding
def test_response_logprobs_of_a_padded_batch_equal_each_sequence_alone(tiny_model_dir, attention):
    """Prompts padded on the left, responses on the right, logits only for the response columns:
    every response token's log-probability is what the model gives that sequence unpadded."""
    from transformers import AutoModelForCausalLM

    from rlhf.training.batching import Encoded, collate

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation=attention)
    model.eval()
    items = [Encoded([5, 6, 7, 8], [9, 10]), Encoded([5], [11, 12, 13, 14]), Encoded([7, 7], [9])]
    with torch.no_grad():
        logprobs, mask = losses.response_logprobs(model, collate(items, pad_id=0))
        for row, item in enumerate(items):
            ids = torch.tensor([item.prompt + item.response])
            alone = model(input_ids=ids).logits[0, len(item.prompt) - 1:-1].log_softmax(-1)
            expected = alone.gather(1, torch.tensor(item.response)[:, None])[:, 0]
            assert mask[row].sum().item() == len(item.response)
            assert torch.allclose(logprobs[row, :len(item.response)], expected, atol=1e-4)


def test_ipo_loss_matches_hand_computation():
    # log-ratios: chosen 2 - 1 = 1, rejected 1 - 3 = -2, so h = 3; beta 0.1 -> target 1 / 0.2 = 5: (3 - 5)^2
    loss, chosen, rejected = losses.ipo_loss(torch.tensor([2.0]), torch.tensor([1.0]),
                                             torch.tensor([1.0]), torch.tensor([3.0]), beta=0.1)
    assert loss.item() == pytest.approx(4.0)
    assert chosen.item() == pytest.approx(0.1) and rejected.item() == pytest.approx(-0.2)  # as DPO's implicit rewards
    # at the target margin the loss is zero; beyond it, IPO pulls the margin back (DPO would not)
    at_target, _, _ = losses.ipo_loss(torch.tensor([5.0]), torch.zeros(1), torch.zeros(1), torch.zeros(1), beta=0.1)
    assert at_target.item() == pytest.approx(0.0)
    chosen_logp = torch.tensor([8.0], requires_grad=True)
    beyond, _, _ = losses.ipo_loss(chosen_logp, torch.zeros(1), torch.zeros(1), torch.zeros(1), beta=0.1)
    beyond.backward()
    assert chosen_logp.grad.item() == pytest.approx(2 * (8.0 - 5.0))  # positive: lowers the chosen log-prob


def test_the_registry_declares_each_loss_model_and_data():
    assert {name: (loss.model, loss.data) for name, loss in losses.LOSSES.items()} == {
        "nll": (losses.CAUSAL_LM, losses.EXAMPLES),
        "bradley_terry": (losses.VALUE_HEAD, losses.PAIRS),
        "dpo": (losses.CAUSAL_LM, losses.REFERENCED_PAIRS),
        "ipo": (losses.CAUSAL_LM, losses.REFERENCED_PAIRS)}
    assert losses.preference_losses() == ("dpo", "ipo")


def test_a_preference_loss_is_one_config_line():
    from rlhf.config import ConfigError, load_config
    from tests.conftest import compose

    assert load_config(compose(["online.loss=ipo"])).online.loss == "ipo"
    assert load_config(compose(["offline.loss=ipo"])).offline.loss == "ipo"
    with pytest.raises(ConfigError, match=r"online.loss='kto' must be one of dpo, ipo"):
        load_config(compose(["online.loss=kto"]))


def test_registered_preference_losses_on_a_model_batch(tiny_model_dir):
    """dpo and ipo through the registry, as a trainer rank computes them on one micro-batch: the
    policy's summed response log-probs against the reference's carried by the items."""
    from transformers import AutoModelForCausalLM

    from rlhf.training.batching import EncodedPair, collate_pairs

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    pairs = [EncodedPair([5, 6, 7], [9, 10], [11], reference=(-20.0, -8.0)),
             EncodedPair([5], [12, 13, 14], [9, 9], reference=(-25.0, -15.0))]
    inputs = collate_pairs(pairs, pad_id=0)
    with torch.no_grad():
        logprobs, mask = losses.response_logprobs(model, inputs)
    policy = (logprobs * mask).sum(-1)
    reference = torch.tensor([[-20.0, -25.0], [-8.0, -15.0]]).reshape(-1)
    for name, pairwise in (("dpo", losses.dpo_loss), ("ipo", losses.ipo_loss)):
        batch = losses.Batch(model, inputs, pairs, {"beta": 0.1}, rewards=None)
        with torch.no_grad():
            loss, metrics = losses.LOSSES[name].compute(batch)
        expected, chosen, rejected = pairwise(policy[:2], policy[2:], reference[:2], reference[2:], 0.1)
        assert loss.item() == pytest.approx(expected.item(), rel=1e-5), name
        assert metrics["implicit_margin"] == pytest.approx((chosen - rejected).mean().item(), rel=1e-5)
        assert metrics["tokens"] == int(inputs["attention_mask"].sum())


def test_a_shared_prompt_gives_the_same_logprobs_and_gradients_as_two_full_rows(tiny_model_dir):
    """model.share_prompt: the prompt's KV cache, repeated for the chosen and the rejected response,
    reproduces the two-full-rows forward token for token, and its backward the same gradients."""
    from transformers import AutoModelForCausalLM

    from rlhf.training.batching import EncodedPair, collate_pairs, collate_shared

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model.config.use_cache = False  # as the trainer loads it: the shared layout asks for the cache itself
    pairs = [EncodedPair([5, 6, 7, 8], [9, 10], [11, 12, 13]), EncodedPair([5], [11, 12, 13, 14], [9]),
             EncodedPair([7, 7], [9], [10, 10])]
    rows, rows_mask = losses.response_logprobs(model, collate_pairs(pairs, pad_id=0))
    shared, shared_mask = losses.pair_logprobs(model, collate_shared(pairs, pad_id=0))
    assert torch.equal(rows_mask, shared_mask)
    assert torch.allclose(rows * rows_mask, shared * shared_mask, atol=1e-5)
    params = [p for p in model.parameters() if p.requires_grad]
    by_rows = torch.autograd.grad((rows * rows_mask).sum(), params)
    by_shared = torch.autograd.grad((shared * shared_mask).sum(), params)
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(by_rows, by_shared))
