"""The evaluation report: run_dir/eval/report.md with the PNG figures beside it (rlhf.eval.figures),
and the same figures and tables in W&B (through the run's Tracker). Numbers only: no client speech
or response text."""

from __future__ import annotations

from pathlib import Path

from rlhf import atomic
from rlhf.eval.figures import PRINCIPLE_NAMES, plot_absolute, plot_dev_rounds, plot_policies
from rlhf.eval.report_sections import num, outcome_section, pct, safety_section
from rlhf.prefs.judge import PRINCIPLES


# -- the Markdown -----------------------------------------------------------------------------------
def _judge_paragraph(judge: dict) -> list[str]:
    if judge.get("backend") == "reward":
        return [
            f"**Judge: the reward model** (`{judge.get('model', '?')}`), not a language-model judge. No principle "
            "judge was configured (`eval.judge.backend=reward`, the default on a CPU machine), so the policy's "
            "answer wins a pair when the reward model scores it above the reference's answer to the same "
            "speech; equal rewards are a tie (counted as half a win). The reward model judges one answer at "
            "a time, so there is no position bias to cancel and there are no per-principle results."
        ]
    return [
        f"**Judge: `{judge.get('model', '?')}`** ({judge.get('backend')}), prompt `{judge.get('prompt')}` "
        f"(sha256 `{str(judge.get('prompt_sha256', ''))[:12]}...`). For every speech it compares the policy's "
        "answer with the reference's on each of the seven principles and overall, twice: once with the policy "
        "shown as A and once as B. A pair is a win or a loss only when both orders agree; a disagreement, or "
        "a tie in either order, counts as a tie (half a win). This cancels the judge's preference for a "
        "position. A comparison the judge could not answer in valid JSON after "
        f"{judge.get('max_attempts', '?')} attempts is left unscored (never given a default)."
    ]


def markdown(ev: dict, rounds: list[dict], figures: dict, samples: list | None = None) -> str:
    lines = ["# Evaluation report", ""]
    lines += [
        "Win rate = share of speeches where the policy's answer beats the reference's answer (ties count "
        "half), with a 95% bootstrap interval over speeches in brackets: [low, high]. 50% means no "
        "difference from the reference.",
        "",
    ]
    judge = ev.get("judge", {})
    lines += _judge_paragraph(judge) + [""]
    if ev.get("outcome"):
        lines += outcome_section(ev["outcome"], samples or [])
    if ev.get("safety"):
        lines += safety_section(ev["safety"])
    dev = ev.get("dev")
    if dev:
        lines += ["## Online rounds: dev split", ""]
        best = dev.get("best")
        lines += [
            f"{dev['reference']['speeches']} speeches ({100 * dev['fraction']:.0f}% of the training speeches, "
            "drawn by seed) were held out of the rounds. Before round 1 the starting policy (the SFT model in the "
            "default recipe; also the DPO reference) answered each greedily; after every "
            f"{dev['every_rounds']} round(s) the current policy answered the same speeches, and the reward "
            f"model judged. The best round by dev {dev['metric'].replace('_', ' ')} is kept as the run's best "
            "checkpoint.",
            "",
        ]
        if best:
            lines += [
                f"**Result: best round {best['round']}**, dev win rate vs the starting policy "
                f"{pct(best['win_rate'])}, dev mean reward {num(best['reward'])} (starting policy: "
                f"{num(dev['reference']['reward'])}). Best checkpoint: `{best.get('checkpoint')}`.",
                "",
            ]
        lines += [
            "| round | dev win rate vs start | W / T / L | dev mean reward | dev length (tokens) | "
            "sampled reward (round) | eval seconds |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| 0 (start) | 50% (itself) | - | {num(dev['reference']['reward'])} | "
            f"{dev['reference']['response_tokens']['mean']:.1f} | - | - |"
        ]
        for r in rounds:
            if "dev_win_rate" not in r:
                continue
            win = {"mean": r["dev_win_rate"], "lo": r["dev_win_rate_lo"], "hi": r["dev_win_rate_hi"], "n": 1}
            rew = {"mean": r["dev_reward_mean"], "lo": r["dev_reward_lo"], "hi": r["dev_reward_hi"], "n": 1}
            lines += [
                f"| {r['round']} | {pct(win)} | {r['dev_wins']} / {r['dev_ties']} / {r['dev_losses']} | "
                f"{num(rew)} | {r['dev_response_tokens']:.1f} | {r.get('reward_mean', float('nan')):+.3f} | "
                f"{r.get('seconds', {}).get('dev_eval', float('nan')):.1f} |"
            ]
        lines += [""]
    policies = ev.get("policies") or []
    if policies:
        lines += ["## Policies against the reference", ""]
        sp = ev.get("speeches", {})
        lines += [
            f"Speeches: {sp.get('count')} from `{sp.get('source')}`. Reference: {ev['reference']['description']}. "
            "Answers: "
            + "; ".join(f"{k.replace('_', ' ')}: {v['description']}" for k, v in ev.get("variants", {}).items())
            + ".",
            "",
        ]
        header = (
            "| policy | win rate (no length limit) | win rate (length-constrained) | W / T / L (no limit) | unscored |"
        )
        extra = judge.get("backend") == "reward"
        if extra:
            header += " mean reward policy / reference (no limit) |"
        lines += [header, "|" + " --- |" * (header.count("|") - 1)]
        for p in policies:
            u, c = p["results"].get("unconstrained", {}), p["results"].get("length_constrained", {})
            row = (
                f"| {p['name']} | {pct(u.get('win_rate'))} | {pct(c.get('win_rate'))} | "
                f"{u.get('wins', 0)} / {u.get('ties', 0)} / {u.get('losses', 0)} | {u.get('unscored', 0)} |"
            )
            if extra:
                row += f" {num(u.get('policy_reward'))} / {num(u.get('reference_reward'))} |"
            lines += [row]
        lines += [""]
        lengths = [
            (p["name"], p["results"].get(v, {}).get("length"), p["results"].get(v, {}).get("reference_length"), v)
            for p in policies
            for v in ("unconstrained", "length_constrained")
        ]
        lines += ["Mean answer length (policy / reference):", ""]
        lines += [
            f"- {name}, {v.replace('_', ' ')}: {num(pl, 1)} / {num(rl, 1)} {ev.get('length_unit', 'tokens')}"
            for name, pl, rl, v in lengths
            if pl
        ]
        lines += [""]
        if any(p["results"].get("unconstrained", {}).get("per_principle") for p in policies):
            lines += [
                "### Per-principle win rates (no length constraint)",
                "",
                "| principle | " + " | ".join(p["name"] for p in policies) + " |",
                "| --- |" + " --- |" * len(policies),
            ]
            for k in PRINCIPLES:
                lines += [
                    f"| {PRINCIPLE_NAMES[k]} | "
                    + " | ".join(
                        pct(p["results"].get("unconstrained", {}).get("per_principle", {}).get(k)) for p in policies
                    )
                    + " |"
                ]
            lines += [""]
        reasons = {}
        for p in policies:
            for v in p["results"].values():
                for reason, n in v.get("unscored_reasons", {}).items():
                    reasons[reason] = reasons.get(reason, 0) + n
        if reasons:
            lines += ["Unscored comparisons (left out of every rate above, never given a default):", ""]
            lines += [f"- {n}: {reason}" for reason, n in sorted(reasons.items(), key=lambda x: -x[1])] + [""]
    absolute = ev.get("absolute")
    if absolute:
        lines += [
            "## Absolute ratings (1-5 per principle, mean [95% interval])",
            "",
            "| model | " + " | ".join(PRINCIPLE_NAMES[k] for k in PRINCIPLES) + " | unscored |",
            "| --- |" + " --- |" * (len(PRINCIPLES) + 1),
        ]
        for name, a in absolute.items():
            lines += [
                f"| {name} | " + " | ".join(num(a.get(k), 2) for k in PRINCIPLES) + f" | {a.get('unscored', 0)} |"
            ]
        lines += [""]
    rm = ev.get("rm_metrics")
    if rm:
        lines += [
            "## Reward model on a preference test split",
            "",
            f"{rm['pairs']} pairs from {rm.get('source', '?')}. Accuracy: share of pairs where the chosen "
            "response gets the higher reward. AUC, ECE and Brier treat each pair in both orders, with the "
            "model's probability that the first is preferred = sigmoid(reward difference); ECE uses "
            f"{rm.get('ece_bins', 10)} equal-width bins. Higher accuracy/AUC and lower ECE/Brier are better "
            "(the paper's 8B reward model: 97.8% accuracy on its test split).",
            "",
            "| accuracy | AUC | ECE | Brier |",
            "| --- | --- | --- | --- |",
            f"| {100 * rm['accuracy']:.1f}% | {rm['auc']:.3f} | {rm['ece']:.3f} | {rm['brier']:.3f} |",
            "",
        ]
    if figures:
        lines += ["## Figures", ""]
        lines += [f"![{name}]({Path(path).name})" for name, path in figures.items()] + [""]
    lines += [
        "No client speech or response text reaches W&B or the logs; in this local file only the answers "
        "shown before and after, redacted."
        if samples
        else "No client speech or response text appears in this report, in W&B or in the logs."
    ]
    return "\n".join(lines) + "\n"


def write_report(ev: dict, rounds: list[dict], out_dir: Path, tracker=None, samples: list | None = None) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {}
    figures.update(
        plot_dev_rounds(
            [r for r in rounds if "dev_win_rate" in r], rounds, (ev.get("dev") or {}).get("reference"), out_dir
        )
    )
    figures.update(plot_policies(ev.get("policies") or [], out_dir))
    figures.update(plot_absolute(ev.get("absolute") or {}, out_dir))
    path = out_dir / "report.md"
    atomic.write_text(path, markdown(ev, rounds, figures, samples or []))
    if tracker is not None:
        log_to_wandb(tracker, ev, rounds, figures)
    return path


def log_to_wandb(tracker, ev: dict, rounds: list[dict], figures: dict) -> None:
    """The report's figures and tables (numbers only) in the run's W&B."""
    run = getattr(tracker, "wandb_run", None)
    if run is None:
        return
    import wandb

    payload = {f"eval/{name}": wandb.Image(str(path)) for name, path in figures.items()}
    dev_rows = [
        [
            r["round"],
            r["dev_win_rate"],
            r["dev_win_rate_lo"],
            r["dev_win_rate_hi"],
            r["dev_reward_mean"],
            r["dev_reward_lo"],
            r["dev_reward_hi"],
            r["dev_response_tokens"],
        ]
        for r in rounds
        if "dev_win_rate" in r
    ]
    if dev_rows:
        payload["eval/dev_rounds"] = wandb.Table(
            columns=["round", "win_rate", "win_lo", "win_hi", "reward", "reward_lo", "reward_hi", "tokens"],
            data=dev_rows,
        )
    policy_rows = [
        [p["name"], v, r["win_rate"]["mean"], r["win_rate"]["lo"], r["win_rate"]["hi"], r.get("unscored", 0)]
        for p in ev.get("policies") or []
        for v, r in p["results"].items()
        if r.get("win_rate")
    ]
    if policy_rows:
        payload["eval/win_rates"] = wandb.Table(
            columns=["policy", "variant", "win_rate", "lo", "hi", "unscored"], data=policy_rows
        )
    rm = ev.get("rm_metrics")
    if rm:
        payload["eval/rm_metrics"] = wandb.Table(
            columns=["pairs", "accuracy", "auc", "ece", "brier"],
            data=[[rm["pairs"], rm["accuracy"], rm["auc"], rm["ece"], rm["brier"]]],
        )
    if payload:
        run.log(payload)
    safety = ev.get("safety") or {}
    for entry in ([safety["reference"]] if safety.get("reference") else []) + safety.get("policies", []):
        run.summary[f"safety/{entry['name']}/pass_rate"] = entry["pass_rate"]["mean"]
        run.summary[f"safety/{entry['name']}/not_judged"] = entry["not_judged"]
        for category, rate in entry["categories"].items():  # rates only: never an answer or a reason
            run.summary[f"safety/{entry['name']}/{category}"] = rate["mean"]
        if "regressed" in entry:
            run.summary[f"safety/{entry['name']}/regressed"] = int(entry["regressed"])
    for key, value in (ev.get("outcome") or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            run.summary[f"outcome/{key}"] = value  # numbers only: never the answers
    best = (ev.get("dev") or {}).get("best")
    if best:
        run.summary["eval/best_round"] = best["round"]
        run.summary["eval/best_dev_win_rate"] = best["win_rate"]["mean"]
