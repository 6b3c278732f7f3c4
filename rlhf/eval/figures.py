"""The evaluation's figures, as PNG files (each only when its data exists):
- winrate_per_round.png  win rate against the reference per round, 95% bootstrap interval
- reward_per_round.png   mean reward per round with interval (dev answers, and the round's samples)
- length_per_round.png   mean response length per round
- principles.png         per-principle win rates (and 1-5 ratings) per evaluated model
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from rlhf.prefs.judge import PRINCIPLES  # noqa: E402

PRINCIPLE_NAMES = {
    "empathy": "Empathy",
    "relevance": "Personalization / relevance",
    "clarity": "Clarity",
    "safety": "Avoidance of harm",
    "exploration": "Self-exploration",
    "autonomy": "Autonomy",
    "staging": "Stages of change",
}


def _errorbar(ax, xs, means, los, his, **kw):
    yerr = [[m - lo for m, lo in zip(means, los)], [hi - m for m, hi in zip(means, his)]]
    ax.errorbar(xs, means, yerr=yerr, capsize=4, marker="o", **kw)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _per_round(xs: list, rows: list[dict], key: str, label: str, mean: str | None = None):
    """A new figure of `mean` (default `key`) per round with the `key`_lo/_hi interval as error bars."""
    fig, ax = plt.subplots(figsize=(6.4, 4))
    _errorbar(
        ax,
        xs,
        [r[mean or key] for r in rows],
        [r[f"{key}_lo"] for r in rows],
        [r[f"{key}_hi"] for r in rows],
        label=label,
    )
    return fig, ax


def plot_dev_rounds(dev_rounds: list[dict], rounds: list[dict], reference: dict | None, out: Path) -> dict:
    """Figures of the online rounds: dev win rate, dev reward and response length per round."""
    figures = {}
    if dev_rounds:
        xs = [r["round"] for r in dev_rounds]
        fig, ax = _per_round(xs, dev_rounds, "dev_win_rate", "policy vs starting policy")
        ax.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="no change (50%)")
        ax.set(
            xlabel="online round",
            ylabel="win rate on dev split (ties half)",
            ylim=(0, 1),
            xticks=xs,
            title="Dev win rate by reward model, 95% bootstrap interval",
        )
        ax.legend(loc="lower right", fontsize=8)
        figures["winrate_per_round"] = _save(fig, out / "winrate_per_round.png")

        fig, ax = _per_round(xs, dev_rounds, "dev_reward", "dev answers (greedy)", mean="dev_reward_mean")
        if reference and reference.get("reward", {}).get("n"):
            ref = reference["reward"]
            ax.axhspan(ref["lo"], ref["hi"], color="grey", alpha=0.2)
            ax.axhline(ref["mean"], color="grey", linestyle="--", linewidth=1, label="starting policy, dev")
        train = [r for r in rounds if "reward_mean" in r]
        if train:
            ax.plot(
                [r["round"] for r in train],
                [r["reward_mean"] for r in train],
                marker="s",
                linestyle=":",
                label="round's sampled responses (before update)",
            )
        ax.set(xlabel="online round", ylabel="reward", xticks=xs, title="Mean reward per round, 95% interval")
        ax.legend(fontsize=8)
        figures["reward_per_round"] = _save(fig, out / "reward_per_round.png")

    lengths = [r for r in rounds if "mean_response_tokens" in r or "dev_response_tokens" in r]
    if lengths:
        fig, ax = plt.subplots(figsize=(6.4, 4))
        sampled = [r for r in lengths if "mean_response_tokens" in r]
        if sampled:
            ax.plot(
                [r["round"] for r in sampled],
                [r["mean_response_tokens"] for r in sampled],
                marker="s",
                linestyle=":",
                label="round's sampled responses",
            )
        dev = [r for r in lengths if "dev_response_tokens" in r]
        if dev:
            ax.plot(
                [r["round"] for r in dev],
                [r["dev_response_tokens"] for r in dev],
                marker="o",
                label="dev answers (greedy)",
            )
        if reference and reference.get("response_tokens", {}).get("n"):
            ax.axhline(
                reference["response_tokens"]["mean"],
                color="grey",
                linestyle="--",
                linewidth=1,
                label="starting policy, dev",
            )
        ax.set(
            xlabel="online round",
            ylabel="mean response length (tokens)",
            xticks=[r["round"] for r in lengths],
            title="Response length per round",
        )
        ax.legend(fontsize=8)
        figures["length_per_round"] = _save(fig, out / "length_per_round.png")
    return figures


def plot_policies(policies: list[dict], out: Path) -> dict:
    """stage=eval figures: win rate per evaluated policy (both variants) and per-principle bars."""
    figures = {}
    if not policies:
        return figures
    names = [p["name"] for p in policies]
    fig, ax = plt.subplots(figsize=(max(6.4, 1.2 * len(names) + 3), 4))
    for offset, variant in ((-0.15, "unconstrained"), (0.15, "length_constrained")):
        ests = [p["results"].get(variant, {}).get("win_rate") for p in policies]
        xs = [i + offset for i, e in enumerate(ests) if e and e.get("n")]
        ests = [e for e in ests if e and e.get("n")]
        if ests:
            _errorbar(
                ax,
                xs,
                [e["mean"] for e in ests],
                [e["lo"] for e in ests],
                [e["hi"] for e in ests],
                linestyle="none",
                label=variant.replace("_", " "),
            )
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.set(ylabel="win rate vs reference (ties half)", ylim=(0, 1), title="Win rate per policy, 95% interval")
    ax.legend(fontsize=8)
    figures["winrate_per_policy"] = _save(fig, out / "winrate_per_policy.png")

    with_principles = [p for p in policies if p["results"].get("unconstrained", {}).get("per_principle")]
    if with_principles:
        fig, ax = plt.subplots(figsize=(9, 4.2))
        width = 0.8 / len(with_principles)
        for i, p in enumerate(with_principles):
            per = p["results"]["unconstrained"]["per_principle"]
            means = [per[k]["mean"] if per[k]["n"] else math.nan for k in PRINCIPLES]
            lo = [m - per[k]["lo"] if per[k]["n"] else 0 for m, k in zip(means, PRINCIPLES)]
            hi = [per[k]["hi"] - m if per[k]["n"] else 0 for m, k in zip(means, PRINCIPLES)]
            ax.bar(
                [j + i * width - 0.4 + width / 2 for j in range(len(PRINCIPLES))],
                means,
                width,
                yerr=[lo, hi],
                capsize=2,
                label=p["name"],
            )
        ax.axhline(0.5, color="grey", linestyle="--", linewidth=1)
        ax.set_xticks(
            range(len(PRINCIPLES)), [PRINCIPLE_NAMES[k] for k in PRINCIPLES], rotation=20, ha="right", fontsize=8
        )
        ax.set(ylabel="win rate vs reference", ylim=(0, 1), title="Per-principle win rate (no length constraint)")
        ax.legend(fontsize=7)
        figures["principles"] = _save(fig, out / "principles.png")
    return figures


def plot_absolute(models: dict, out: Path) -> dict:
    """1-5 ratings per principle per model (principle judge only)."""
    rated = {name: a for name, a in models.items() if a and any(a.get(k, {}).get("n") for k in PRINCIPLES)}
    if not rated:
        return {}
    fig, ax = plt.subplots(figsize=(9, 4.2))
    width = 0.8 / len(rated)
    for i, (name, a) in enumerate(rated.items()):
        means = [a[k]["mean"] if a[k]["n"] else math.nan for k in PRINCIPLES]
        ax.bar(
            [j + i * width - 0.4 + width / 2 for j in range(len(PRINCIPLES))],
            means,
            width,
            label=name,
            yerr=[
                [m - a[k]["lo"] if a[k]["n"] else 0 for m, k in zip(means, PRINCIPLES)],
                [a[k]["hi"] - m if a[k]["n"] else 0 for m, k in zip(means, PRINCIPLES)],
            ],
            capsize=2,
        )
    ax.set_xticks(range(len(PRINCIPLES)), [PRINCIPLE_NAMES[k] for k in PRINCIPLES], rotation=20, ha="right", fontsize=8)
    ax.set(ylabel="mean rating (1-5)", ylim=(1, 5), title="Absolute ratings per principle, 95% interval")
    ax.legend(fontsize=7)
    return {"absolute": _save(fig, out / "absolute.png")}
