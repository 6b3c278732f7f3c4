"""Model FLOPs of training, as the results page states them.

A DPO update runs the policy forward and backward (a backward costs twice the forward) and the
frozen reference forward over the same tokens: 4 forward passes' worth of FLOPs,

    train FLOPs = (3 + 1) * forward FLOPs

where the forward FLOPs are what the trainer ranks count from each micro-batch's real tokens
(rlhf.training.flops): 2 per weight of the layers per token, the vocabulary projection only at the
positions whose logits are computed (the responses'), and attention's scores and weighted sum over
each token's causal keys. Padding, recomputation and any extra forward a system makes for its own
metrics are left out: these are the FLOPs the update needs.

Results written before the ranks counted their FLOPs carry tokens only; for those, the older
estimate of 2 * N FLOPs per token run (N parameters, the vocabulary projection included at every
position, attention left out) stands in: `train_flops(params, tokens)`.
"""

from __future__ import annotations

POLICY_PASSES = 3  # forward + backward (twice the forward)
REFERENCE_PASSES = 1  # forward only


def update_flops(forward_flops: float) -> float:
    """The update's FLOPs from the forward FLOPs its micro-batches reported."""
    return float((POLICY_PASSES + REFERENCE_PASSES) * forward_flops)


def train_flops(params: int, tokens: int) -> float:
    """The older per-token estimate, for results without counted FLOPs."""
    return update_flops(2 * params * tokens)


def mfu(flops: float, train_seconds: float, peak_flops_per_s: float) -> float:
    """Model FLOPs utilisation: achieved model FLOP/s of the train phase over the measured peak."""
    if train_seconds <= 0 or peak_flops_per_s <= 0:
        return 0.0
    return flops / train_seconds / peak_flops_per_s
