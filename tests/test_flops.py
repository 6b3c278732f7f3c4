"""rlhf.training.flops: a micro-batch's forward FLOPs, from the work it holds."""

import pytest
import torch

from rlhf.training import losses
from rlhf.training.batching import EncodedPair, collate_pairs, collate_shared
from rlhf.training.flops import ModelShape, forward_flops

PAIRS = [EncodedPair([5, 6, 7, 8], [9, 10], [11, 12, 13]), EncodedPair([5], [11, 12, 13, 14], [9]),
         EncodedPair([7, 7, 7], [9], [10, 10])]


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation="eager")
    model.config.use_cache = False
    return model


def test_the_shape_splits_every_weight_between_the_layers_and_the_vocabulary(model):
    shape = ModelShape.of(model)
    tied = model.get_input_embeddings().weight is model.get_output_embeddings().weight
    vocabulary = shape.vocab * shape.width * (1 if tied else 2)
    assert shape.layer_params + vocabulary == sum(p.numel() for p in model.parameters())
    assert shape.layers == model.config.num_hidden_layers and shape.layer_params > 0


def test_padding_is_not_counted(model):
    """A batch of pairs costs what the pairs cost alone, whatever padding batching adds."""
    shape = ModelShape.of(model)
    for collate in (collate_shared, collate_pairs):
        together = forward_flops(shape, collate(PAIRS, 0))
        alone = sum(forward_flops(shape, collate([pair], 0)) for pair in PAIRS)
        assert together == alone


def test_one_pair_by_hand(model):
    """Prompt of 3 tokens run once, responses of 2 and 1 continuing from it: 6 tokens through the
    layers, 3 vocabulary projections, and causal keys 1+2+3 (prompt) + (4+5) + 4 (responses)."""
    shape = ModelShape.of(model)
    pair = EncodedPair([5, 6, 7], [9, 10], [11])
    expected = (2 * shape.layer_params * 6 + 2 * shape.vocab * shape.width * 3
                + 4 * shape.attention_width * shape.layers * (6 + 9 + 4))
    assert forward_flops(shape, collate_shared([pair], 0)) == expected


def test_the_linear_layers_match_torchs_flop_counter(model):
    """The layers' and vocabulary projection's share, against torch's count of the matrix products
    the shared-prompt forward runs (unpadded pairs: every computed position is real). The losses
    also compute one vocabulary projection per prompt (its last position scores the first response
    token); norms' weights are counted as 2 FLOPs a token here and not by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    shape = ModelShape.of(model)
    pairs = [EncodedPair([5, 6, 7, 8], [9, 10, 11], [12, 13, 14])] * 2
    batch = collate_shared(pairs, 0)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        losses.pair_logprobs(model, batch)
    counts = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    linear = sum(n for op, n in counts.items() if op.removeprefix("aten.").split(".")[0] in ("mm", "addmm"))
    ours = forward_flops(shape, batch) - 4 * shape.attention_width * shape.layers * (2 * 10 + 4 * (3 * 4 + 6))
    prompt_logits = 2 * shape.vocab * shape.width * len(pairs)
    assert ours == pytest.approx(linear - prompt_logits, rel=0.01)
    assert counts  # the counter saw the forward


def test_a_value_head_model_has_no_vocabulary_projection(tiny_model_dir):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1, dtype=torch.float32)
    shape = ModelShape.of(model)
    assert shape.vocab == 0
    assert shape.layer_params + model.config.vocab_size * shape.width == sum(p.numel() for p in model.parameters())
