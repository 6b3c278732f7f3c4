"""Statistics of the evaluation, in plain numpy.

Outcomes are scores from the policy's side: 1 = win, 0.5 = tie, 0 = loss; a win rate is their mean
(ties count half). A pair judged in both orders (policy shown as A, then as B) counts as a win or
loss only when both orders agree; any disagreement is a tie, which cancels the judge's position bias.
Intervals are percentile bootstrap intervals over items, with a fixed seed (reproducible)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

WIN, TIE, LOSS = 1.0, 0.5, 0.0
OUTCOME = {"win": WIN, "tie": TIE, "loss": LOSS}


@dataclass(frozen=True)
class Estimate:
    """A mean with its bootstrap interval over n items (nan when n = 0)."""

    mean: float
    lo: float
    hi: float
    n: int

    def as_dict(self) -> dict:
        return asdict(self)

    def fmt(self, percent: bool = False, digits: int = 3) -> str:
        if self.n == 0:
            return "n/a (no items)"
        scale, unit = (100.0, "%") if percent else (1.0, "")
        d = 1 if percent else digits
        return f"{self.mean * scale:.{d}f}{unit} [{self.lo * scale:.{d}f}, {self.hi * scale:.{d}f}] (n={self.n})"


def bootstrap_ci(values, *, samples: int = 1000, confidence: float = 0.95, seed: int = 0) -> Estimate:
    """Mean of `values` with a percentile bootstrap interval (resampling items with replacement)."""
    x = np.asarray(list(values), dtype=float)
    n = len(x)
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    mean = float(x.mean())
    if n == 1 or samples < 1 or np.all(x == x[0]):
        return Estimate(mean, mean, mean, n)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, n, size=(samples, n))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return Estimate(mean, float(min(lo, mean)), float(max(hi, mean)), n)


def outcome_from_scores(policy: float, reference: float, tol: float = 0.0) -> float:
    """Win / tie / loss from two scores (e.g. rewards); equal within `tol` is a tie."""
    if abs(policy - reference) <= tol:
        return TIE
    return WIN if policy > reference else LOSS


def verdict_outcome(verdict: str, policy_position: str) -> float:
    """A pairwise verdict ("A", "B" or "tie") as the policy's outcome, given where the policy was shown."""
    if verdict == "tie":
        return TIE
    return WIN if verdict == policy_position else LOSS


def combine_orders(first: float, second: float) -> float:
    """The two orders of one pair: agreement stands, any disagreement is a tie."""
    return first if first == second else TIE


def swap_outcome(verdict_policy_first: str, verdict_policy_second: str) -> float:
    """Outcome of a pair judged with the policy as A and then as B."""
    return combine_orders(verdict_outcome(verdict_policy_first, "A"), verdict_outcome(verdict_policy_second, "B"))


def win_rate(outcomes, **bootstrap) -> Estimate:
    """Win rate (ties half) with its bootstrap interval."""
    return bootstrap_ci(outcomes, **bootstrap)


def counts(outcomes) -> dict:
    values = list(outcomes)
    return {
        "wins": sum(v == WIN for v in values),
        "ties": sum(v == TIE for v in values),
        "losses": sum(v == LOSS for v in values),
    }


def per_key_win_rates(outcomes_by_item: list[dict], keys, **bootstrap) -> dict[str, Estimate]:
    """Per-principle win rates: `outcomes_by_item` holds one {principle: outcome} dict per pair."""
    return {k: bootstrap_ci([item[k] for item in outcomes_by_item if k in item], **bootstrap) for k in keys}


def mean_with_interval(values, **bootstrap) -> Estimate:
    """Absolute scores (1-5 ratings, rewards, lengths): mean and bootstrap interval."""
    return bootstrap_ci(values, **bootstrap)
