"""The round metrics the controller computes itself, from numbers it already holds."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from rlhf.controller import k3_kl, sampled_margin


def sample(*logprobs: float) -> SimpleNamespace:
    return SimpleNamespace(logprobs=list(logprobs))


def test_margin_before_the_update_is_the_mean_of_summed_sampling_logprobs():
    chosen = [sample(-1.0, -2.0), sample(-0.5)]
    rejected = [sample(-4.0), sample(-1.0, -1.0, -1.0)]
    # pair 1: -3 - (-4) = 1; pair 2: -0.5 - (-3) = 2.5
    assert sampled_margin(chosen, rejected) == pytest.approx(1.75)
    assert math.isnan(sampled_margin([], []))


def test_k3_kl_is_zero_for_equal_logprobs_and_positive_otherwise():
    assert k3_kl([[-1.0, -2.0]], [[-1.0, -2.0]]) == 0.0
    log_ratio = -0.5
    assert k3_kl([[-1.0]], [[-1.5]]) == pytest.approx(math.exp(log_ratio) - 1 - log_ratio)
    assert k3_kl([], []) == 0.0
