"""Reward-model metrics on a preference test split (the paper's table): accuracy, ROC AUC, ECE,
Brier. Plain numpy.

Each pair (chosen c, rejected r) enters as two oriented examples, (c, r) with label 1 and (r, c)
with label 0; the model's probability that the first response is preferred is
p = sigmoid(reward(first) - reward(second)) (the Bradley-Terry probability the model was trained
for). Both orientations make the set balanced and the metrics independent of an arbitrary order.
- accuracy: share of pairs with reward(c) > reward(r) (equal rewards count half);
- AUC: ROC AUC of p against the labels (Mann-Whitney rank statistic, ties half) = P(d_i + d_j > 0)
  over pairs i, j, with d = reward(c) - reward(r);
- ECE: expected calibration error of p with `bins` equal-width bins on [0, 1];
- Brier: mean squared error of p against the labels."""

from __future__ import annotations

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


def accuracy(chosen, rejected) -> float:
    d = np.asarray(chosen, dtype=float) - np.asarray(rejected, dtype=float)
    return float(np.mean((d > 0) + 0.5 * (d == 0))) if len(d) else float("nan")


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of `values`, tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # start of each run of equal values, and its length
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    lengths = np.diff(np.r_[starts, len(values)])
    mean_rank = starts + (lengths + 1) / 2.0  # ranks starts+1 .. starts+length, averaged
    ranks = np.empty(len(values), dtype=float)
    ranks[order] = np.repeat(mean_rank, lengths)
    return ranks


def roc_auc(scores, labels) -> float:
    """Probability that a random positive outscores a random negative (ties half), by the
    Mann-Whitney rank statistic: O(n log n) time and O(n) memory, not an n x n comparison."""
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)
    positives, negatives = int((y == 1).sum()), int((y == 0).sum())
    if not positives or not negatives:
        return float("nan")
    keep = (y == 1) | (y == 0)
    ranks = average_ranks(s[keep])
    rank_sum = ranks[y[keep] == 1].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def ece(probs, labels, bins: int = 10) -> float:
    """Sum over equal-width bins of (share of examples) x |mean label - mean probability|."""
    p, y = np.asarray(probs, dtype=float), np.asarray(labels, dtype=float)
    if not len(p):
        return float("nan")
    index = np.minimum((p * bins).astype(int), bins - 1)  # p = 1.0 goes in the last bin
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.mean() * abs(y[mask].mean() - p[mask].mean())
    return float(total)


def brier(probs, labels) -> float:
    p, y = np.asarray(probs, dtype=float), np.asarray(labels, dtype=float)
    return float(np.mean((p - y) ** 2)) if len(p) else float("nan")


def oriented(chosen, rejected) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, labels) of the two orientations of every pair."""
    d = np.asarray(chosen, dtype=float) - np.asarray(rejected, dtype=float)
    return np.concatenate([sigmoid(d), sigmoid(-d)]), np.concatenate([np.ones(len(d)), np.zeros(len(d))])


def reward_model_metrics(chosen, rejected, bins: int = 10) -> dict:
    probs, labels = oriented(chosen, rejected)
    return {
        "pairs": len(np.asarray(chosen)),
        "accuracy": accuracy(chosen, rejected),
        "auc": roc_auc(probs, labels),
        "ece": ece(probs, labels, bins),
        "brier": brier(probs, labels),
        "ece_bins": bins,
    }
