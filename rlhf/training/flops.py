"""Model FLOPs of one forward pass over a micro-batch, counted from the work it holds.

A decoder's forward costs, per real (non-padding) token, 2 FLOPs per weight of its layers (one
multiply-add), plus 2 * vocabulary * width for the vocabulary projection at the positions whose
logits are computed, plus attention's scores and weighted sum, 4 * (heads x head size) per key the
token attends to, per layer (PaLM's accounting, with each token's causal keys rather than the whole
row). Padding is not counted, nor the vocabulary projection of prompt positions, whose logits the
losses never compute (`logits_to_keep`). A trainer rank reports this per micro-batch
(`forward_flops`), and the benchmark turns it into the update's FLOPs: the policy's forward and
backward (3x) and the reference's forward (1x) over the same tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ModelShape:
    layer_params: int  # weights outside the embedding and the vocabulary projection
    vocab: int
    width: int  # hidden size
    attention_width: int  # heads x head size
    layers: int

    @classmethod
    def of(cls, module) -> ModelShape:
        """The shape of a transformers causal LM; ZeRO-3 parameters count whole (ds_numel)."""
        config = module.config
        counted = {}
        for p in module.parameters():
            counted[id(p)] = getattr(p, "ds_numel", p.numel())
        embedding_ids = {id(p) for p in module.get_input_embeddings().parameters()}
        head = module.get_output_embeddings()  # None for a value-head model: no vocabulary projection
        if head is not None:
            embedding_ids |= {id(p) for p in head.parameters()}
        heads = config.num_attention_heads
        head_size = getattr(config, "head_dim", None) or config.hidden_size // heads
        return cls(
            layer_params=sum(n for key, n in counted.items() if key not in embedding_ids),
            vocab=config.vocab_size if head is not None else 0,
            width=config.hidden_size,
            attention_width=heads * head_size,
            layers=config.num_hidden_layers,
        )


def _causal_keys(lengths: torch.Tensor, before: torch.Tensor | None = None) -> int:
    """Keys attended by rows of `lengths` real tokens, each token its own and every earlier one,
    after `before` tokens of a prompt that the row continues."""
    lengths = lengths.long()
    keys = lengths * (lengths + 1) // 2
    if before is not None:
        keys = keys + lengths * before.long()
    return int(keys.sum())


def forward_flops(shape: ModelShape, inputs: dict) -> int:
    """One forward pass over a batch from rlhf.training.batching: `collate_shared` (each prompt once,
    both responses continuing from its cache) or `collate` / `collate_pairs` (whole rows, logits
    for the response columns)."""
    if "prompt_ids" in inputs:
        prompt, response = inputs["prompt_mask"].sum(-1), inputs["response_mask"].sum(-1)
        tokens = int(prompt.sum() + response.sum())
        logit_positions = int(response.sum())
        keys = _causal_keys(prompt) + _causal_keys(response, prompt.repeat_interleave(2))
    else:
        rows = inputs["attention_mask"].sum(-1)
        tokens = int(rows.sum())
        logit_positions = int(inputs["loss_mask"].sum()) if "loss_mask" in inputs else tokens
        keys = _causal_keys(rows)
    return (
        2 * shape.layer_params * tokens
        + 2 * shape.vocab * shape.width * logit_positions
        + 4 * shape.attention_width * shape.layers * keys
    )
