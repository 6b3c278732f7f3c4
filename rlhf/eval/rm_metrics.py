"""Reward-model metrics on a preference test split (the paper's table): accuracy, ROC AUC, ECE,
Brier. Plain numpy.

Each pair (chosen c, rejected r) enters as two oriented examples, (c, r) with label 1 and (r, c)
with label 0; the model's probability that the first response is preferred is
p = sigmoid(reward(first) - reward(second)) (the Bradley-Terry probability the model was trained
for). Both orientations make the set balanced and the metrics independent of an arbitrary order.
- accuracy: share of pairs with reward(c) > reward(r) (equal rewards count half);
- AUC: ROC AUC of p against the labels (Mann-Whitney, ties half) = P(d_i + d_j > 0) over pairs i, j,
  with d = reward(c) - reward(r);
- ECE: expected calibration error of p with `bins` equal-width bins on [0, 1];
- Brier: mean squared error of p against the labels."""

from __future__ import annotations

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


def accuracy(chosen, rejected) -> float:
    d = np.asarray(chosen, dtype=float) - np.asarray(rejected, dtype=float)
    return float(np.mean((d > 0) + 0.5 * (d == 0))) if len(d) else float("nan")


def roc_auc(scores, labels) -> float:
    """Probability that a random positive outscores a random negative (ties half)."""
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)
    pos, neg = s[y == 1], s[y == 0]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    equal = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * equal) / (len(pos) * len(neg)))


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
    return {"pairs": len(np.asarray(chosen)), "accuracy": accuracy(chosen, rejected), "auc": roc_auc(probs, labels),
            "ece": ece(probs, labels, bins), "brier": brier(probs, labels), "ece_bins": bins}
