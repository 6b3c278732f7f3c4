"""Model FLOPs of training, as the results page states them.

A dense decoder does about 2 * N FLOPs per token in a forward pass (N parameters, one multiply-add
per weight), and a backward pass costs twice the forward. A DPO update runs the policy forward and
backward on every token of the chosen and rejected sequences (6 N per token) and the frozen reference
forward on the same tokens (2 N per token):

    train FLOPs = 8 * N * tokens run

where the tokens run are the trained tokens (prompt + chosen, prompt + rejected) for a system that
runs each pair as two sequences, and prompt + chosen + rejected for one that runs a pair's prompt
once and continues both responses from its KV cache (model.share_prompt).

Attention's sequence-length term (about 12 * layers * width * length per token) is left out, as is
any extra forward pass a system makes for its own metrics: these are the FLOPs the update needs.
"""

from __future__ import annotations

POLICY_FLOPS_PER_TOKEN = 6   # x params: forward + backward
REFERENCE_FLOPS_PER_TOKEN = 2  # x params: forward only


def train_flops(params: int, tokens: int) -> float:
    return float((POLICY_FLOPS_PER_TOKEN + REFERENCE_FLOPS_PER_TOKEN) * params * tokens)


def mfu(params: int, tokens: int, train_seconds: float, peak_flops_per_s: float) -> float:
    """Model FLOPs utilisation: achieved model FLOP/s of the train phase over the measured peak."""
    if train_seconds <= 0 or peak_flops_per_s <= 0:
        return 0.0
    return train_flops(params, tokens) / train_seconds / peak_flops_per_s
