"""The evaluation report: run_dir/eval/report.md with the PNG figures beside it (rlhf.eval.figures),
and the same figures and tables in W&B (through the run's Tracker). Numbers only: no client speech
or response text."""

from __future__ import annotations

from pathlib import Path

from rlhf import atomic
from rlhf.eval.figures import PRINCIPLE_NAMES, plot_absolute, plot_dev_rounds, plot_policies
from rlhf.prefs.judge import PRINCIPLES


def _pct(est: dict | None) -> str:
    if not est or not est.get("n"):
        return "n/a"
    return f"{100 * est['mean']:.1f}% [{100 * est['lo']:.1f}, {100 * est['hi']:.1f}]"


def _num(est: dict | None, digits: int = 3) -> str:
    if not est or not est.get("n"):
        return "n/a"
    return f"{est['mean']:.{digits}f} [{est['lo']:.{digits}f}, {est['hi']:.{digits}f}]"


# -- the Markdown -----------------------------------------------------------------------------------
def _judge_paragraph(judge: dict) -> list[str]:
    if judge.get("backend") == "reward":
        return [f"**Judge: the reward model** (`{judge.get('model', '?')}`), not a language-model judge. No principle "
                "judge was configured (`eval.judge.backend=reward`, the default on a CPU machine), so the policy's "
                "answer wins a pair when the reward model scores it above the reference's answer to the same "
                "speech; equal rewards are a tie (counted as half a win). The reward model judges one answer at "
                "a time, so there is no position bias to cancel and there are no per-principle results."]
    return [f"**Judge: `{judge.get('model', '?')}`** ({judge.get('backend')}), prompt `{judge.get('prompt')}` "
            f"(sha256 `{str(judge.get('prompt_sha256', ''))[:12]}...`). For every speech it compares the policy's "
            "answer with the reference's on each of the seven principles and overall, twice: once with the policy "
            "shown as A and once as B. A pair is a win or a loss only when both orders agree; a disagreement, or "
            "a tie in either order, counts as a tie (half a win). This cancels the judge's preference for a "
            "position. A comparison the judge could not answer in valid JSON after "
            f"{judge.get('max_attempts', '?')} attempts is left unscored (never given a default)."]


def markdown(ev: dict, rounds: list[dict], figures: dict, samples: list | None = None) -> str:
    lines = ["# Evaluation report", ""]
    lines += ["Win rate = share of speeches where the policy's answer beats the reference's answer (ties count "
              "half), with a 95% bootstrap interval over speeches in brackets: [low, high]. 50% means no "
              "difference from the reference.", ""]
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
        lines += [f"{dev['reference']['speeches']} speeches ({100 * dev['fraction']:.0f}% of the training speeches, "
                  "drawn by seed) were held out of the rounds. Before round 1 the starting policy (the SFT model in the "
                  "default recipe; also the DPO reference) answered each greedily; after every "
                  f"{dev['every_rounds']} round(s) the current policy answered the same speeches, and the reward "
                  f"model judged. The best round by dev {dev['metric'].replace('_', ' ')} is kept as the run's best "
                  "checkpoint.", ""]
        if best:
            lines += [f"**Result: best round {best['round']}**, dev win rate vs the starting policy "
                      f"{_pct(best['win_rate'])}, dev mean reward {_num(best['reward'])} (starting policy: "
                      f"{_num(dev['reference']['reward'])}). Best checkpoint: `{best.get('checkpoint')}`.", ""]
        lines += ["| round | dev win rate vs start | W / T / L | dev mean reward | dev length (tokens) | "
                  "sampled reward (round) | eval seconds |", "| --- | --- | --- | --- | --- | --- | --- |"]
        lines += [f"| 0 (start) | 50% (itself) | - | {_num(dev['reference']['reward'])} | "
                  f"{dev['reference']['response_tokens']['mean']:.1f} | - | - |"]
        for r in rounds:
            if "dev_win_rate" not in r:
                continue
            win = {"mean": r["dev_win_rate"], "lo": r["dev_win_rate_lo"], "hi": r["dev_win_rate_hi"], "n": 1}
            rew = {"mean": r["dev_reward_mean"], "lo": r["dev_reward_lo"], "hi": r["dev_reward_hi"], "n": 1}
            lines += [f"| {r['round']} | {_pct(win)} | {r['dev_wins']} / {r['dev_ties']} / {r['dev_losses']} | "
                      f"{_num(rew)} | {r['dev_response_tokens']:.1f} | {r.get('reward_mean', float('nan')):+.3f} | "
                      f"{r.get('seconds', {}).get('dev_eval', float('nan')):.1f} |"]
        lines += [""]
    policies = ev.get("policies") or []
    if policies:
        lines += ["## Policies against the reference", ""]
        sp = ev.get("speeches", {})
        lines += [f"Speeches: {sp.get('count')} from `{sp.get('source')}`. Reference: {ev['reference']['description']}. "
                  "Answers: " + "; ".join(f"{k.replace('_', ' ')}: {v['description']}" for k, v in
                                          ev.get("variants", {}).items()) + ".", ""]
        header = "| policy | win rate (no length limit) | win rate (length-constrained) | W / T / L (no limit) | unscored |"
        extra = judge.get("backend") == "reward"
        if extra:
            header += " mean reward policy / reference (no limit) |"
        lines += [header, "|" + " --- |" * (header.count("|") - 1)]
        for p in policies:
            u, c = p["results"].get("unconstrained", {}), p["results"].get("length_constrained", {})
            row = (f"| {p['name']} | {_pct(u.get('win_rate'))} | {_pct(c.get('win_rate'))} | "
                   f"{u.get('wins', 0)} / {u.get('ties', 0)} / {u.get('losses', 0)} | {u.get('unscored', 0)} |")
            if extra:
                row += f" {_num(u.get('policy_reward'))} / {_num(u.get('reference_reward'))} |"
            lines += [row]
        lines += [""]
        lengths = [(p["name"], p["results"].get(v, {}).get("length"), p["results"].get(v, {}).get("reference_length"), v)
                   for p in policies for v in ("unconstrained", "length_constrained")]
        lines += ["Mean answer length (policy / reference):", ""]
        lines += [f"- {name}, {v.replace('_', ' ')}: {_num(pl, 1)} / {_num(rl, 1)} {ev.get('length_unit', 'tokens')}"
                  for name, pl, rl, v in lengths if pl]
        lines += [""]
        if any(p["results"].get("unconstrained", {}).get("per_principle") for p in policies):
            lines += ["### Per-principle win rates (no length constraint)", "",
                      "| principle | " + " | ".join(p["name"] for p in policies) + " |",
                      "| --- |" + " --- |" * len(policies)]
            for k in PRINCIPLES:
                lines += [f"| {PRINCIPLE_NAMES[k]} | " + " | ".join(
                    _pct(p["results"].get("unconstrained", {}).get("per_principle", {}).get(k)) for p in policies) + " |"]
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
        lines += ["## Absolute ratings (1-5 per principle, mean [95% interval])", "",
                  "| model | " + " | ".join(PRINCIPLE_NAMES[k] for k in PRINCIPLES) + " | unscored |",
                  "| --- |" + " --- |" * (len(PRINCIPLES) + 1)]
        for name, a in absolute.items():
            lines += [f"| {name} | " + " | ".join(_num(a.get(k), 2) for k in PRINCIPLES) + f" | {a.get('unscored', 0)} |"]
        lines += [""]
    rm = ev.get("rm_metrics")
    if rm:
        lines += ["## Reward model on a preference test split", "",
                  f"{rm['pairs']} pairs from {rm.get('source', '?')}. Accuracy: share of pairs where the chosen "
                  "response gets the higher reward. AUC, ECE and Brier treat each pair in both orders, with the "
                  "model's probability that the first is preferred = sigmoid(reward difference); ECE uses "
                  f"{rm.get('ece_bins', 10)} equal-width bins. Higher accuracy/AUC and lower ECE/Brier are better "
                  "(the paper's 8B reward model: 97.8% accuracy on its test split).", "",
                  "| accuracy | AUC | ECE | Brier |", "| --- | --- | --- | --- |",
                  f"| {100 * rm['accuracy']:.1f}% | {rm['auc']:.3f} | {rm['ece']:.3f} | {rm['brier']:.3f} |", ""]
    if figures:
        lines += ["## Figures", ""]
        lines += [f"![{name}]({Path(path).name})" for name, path in figures.items()] + [""]
    lines += ["No client speech or response text reaches W&B or the logs; in this local file only the answers "
              "shown before and after, redacted." if samples else
              "No client speech or response text appears in this report, in W&B or in the logs."]
    return "\n".join(lines) + "\n"


def outcome_section(outcome: dict, samples: list[dict]) -> list[str]:
    """The final policy against the starting one on held-out speeches, and a few answers side by side."""
    g = outcome["goals"]
    win = {"mean": outcome["win_rate"], "lo": outcome["win_rate_lo"], "hi": outcome["win_rate_hi"], "n": 1}

    def mark(ok: bool) -> str:
        return "met" if ok else "**missed**"

    lines = ["## Outcome: final policy against the starting policy", "",
             f"{outcome['speeches']} held-out speeches (the dev split and counsel-chat's val questions; no round "
             f"trained on them), answered {outcome['decoding']} with at most {outcome['max_tokens']} tokens by the "
             "policy the rounds started from and by the final policy; the reward model judges each pair.", "",
             "| measure | start | final | goal |", "| --- | --- | --- | --- |",
             f"| win rate of final over start | - | {_pct(win)} ({outcome['wins']} / {outcome['ties']} / "
             f"{outcome['losses']} W/T/L) | at least {100 * g['win_rate_at_least']:.0f}%: {mark(g['win_rate_met'])} |",
             f"| mean reward | {outcome['reward_start']:+.3f} | {outcome['reward_final']:+.3f} | - |",
             f"| mean answer tokens | {outcome['mean_tokens_start']:.1f} | {outcome['mean_tokens_final']:.1f} "
             f"(x{outcome['length_ratio']:.2f}) | x{g['length_ratio_within'][0]:.2f} to "
             f"x{g['length_ratio_within'][1]:.2f}: {mark(g['length_ratio_met'])} |",
             f"| distinct-2 | {outcome['distinct2_start']:.3f} | {outcome['distinct2_final']:.3f} | down by at most "
             f"{100 * g['distinct2_drop_at_most']:.0f}% (here {100 * g['distinct2_drop']:+.1f}%): "
             f"{mark(g['distinct2_met'])} |",
             f"| answers cut at the token limit | {100 * outcome['truncated_share_start']:.0f}% | "
             f"{100 * outcome['truncated_share']:.0f}% | - |",
             f"| repeated 4-grams within an answer | {100 * outcome['repetition_rate_start']:.1f}% | "
             f"{100 * outcome['repetition_rate']:.1f}% | - |", ""]
    if not g["all_met"]:
        lines += ["The run missed at least one goal (marked above): read the win rate together with the guards; a "
                  "reward gained through longer, cut-off or repetitive answers is not a better counsellor.", ""]
    if samples:
        lines += ["### Answers before and after (held-out speeches)", "",
                  "Local to this run directory: never logged or sent to W&B. E-mail addresses, phone numbers, "
                  "URLs, handles and street addresses are redacted.", ""]
        for number, item in enumerate(samples, 1):
            lines += [f"**Speech {number}.** {_quote(item['speech'])}", "",
                      f"*Start* (reward {item['reward_start']:+.2f}): {_quote(item['start'])}", "",
                      f"*Final* (reward {item['reward_final']:+.2f}): {_quote(item['final'])}", ""]
    return lines


def safety_section(safety: dict) -> list[str]:
    """Pass rates on the safety probes per category, policy against reference, regressions."""
    judge = safety["judge"] if isinstance(safety["judge"], str) else (
        f"rules, then the LLM judge `{safety['judge'].get('backend', {}).get('model')}` per criterion")
    lines = ["## Safety probes", "",
             f"{safety['probes']} synthetic client messages in {len(safety['categories'])} categories (suicidal "
             "ideation with indirect method-seeking, self-harm, delusions, mania, hallucinations, OCD reassurance, "
             "substance crisis, abuse disclosure, stigma vignettes; docs/safety.md), answered greedily. Decided by "
             f"{judge}. A probe passes when every check passes; one nothing could decide is *not judged* and left "
             "out of the rates (never counted as a pass). Rates: mean [95% bootstrap interval]. A regression is a "
             "pass rate below the reference's with the interval of the paired difference entirely below zero.", ""]
    ref = safety.get("reference")
    columns = ([(ref["name"], ref)] if ref else []) + [(p["name"], p) for p in safety["policies"]]
    if not columns:
        return lines
    categories = list(columns[0][1]["categories"])
    lines += ["| category | " + " | ".join(name for name, _ in columns) + " |", "|---|" + "---|" * len(columns)]

    def cell(entry: dict, category: str | None = None) -> str:
        rate = entry["pass_rate"] if category is None else entry["categories"].get(category)
        if not rate or rate.get("mean") is None:
            return "-"
        text = f"{100 * rate['mean']:.0f}%"
        if rate.get("lo") is not None:
            text += f" [{100 * rate['lo']:.0f}, {100 * rate['hi']:.0f}]"
        regressed = category in entry.get("regressed_categories", []) if category else entry.get("regressed")
        return f"**{text} regressed**" if regressed else text

    for category in categories:
        lines += [f"| {category.replace('_', ' ')} | " + " | ".join(cell(e, category) for _, e in columns) + " |"]
    lines += ["| **all** | " + " | ".join(cell(e) for _, e in columns) + " |", ""]
    if ref is None:
        lines += ["The reference (stored responses) has no answers to the probes: no comparison, no regression flag.", ""]
    elif ref.get("not_judged"):
        lines += [f"Not judged at the start: {ref['not_judged']} of {ref['probes']} probes ("
                  + "; ".join(f"{n}: {why}" for why, n in ref.get("not_judged_reasons", {}).items()) + ").", ""]
    if safety.get("gated_rounds"):
        lines += [f"Safety gate: round(s) {', '.join(map(str, safety['gated_rounds']))} regressed and were not "
                  "eligible as the best checkpoint.", ""]
    lines += ["Answers and the judge's reasons: `eval/safety/*.jsonl` in this run directory (not logged).", ""]
    return lines


def _quote(text: str) -> str:
    return " ".join(text.split()) or "(empty)"


def write_report(ev: dict, rounds: list[dict], out_dir: Path, tracker=None, samples: list | None = None) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {}
    figures.update(plot_dev_rounds([r for r in rounds if "dev_win_rate" in r], rounds,
                                   (ev.get("dev") or {}).get("reference"), out_dir))
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
    dev_rows = [[r["round"], r["dev_win_rate"], r["dev_win_rate_lo"], r["dev_win_rate_hi"], r["dev_reward_mean"],
                 r["dev_reward_lo"], r["dev_reward_hi"], r["dev_response_tokens"]] for r in rounds if "dev_win_rate" in r]
    if dev_rows:
        payload["eval/dev_rounds"] = wandb.Table(columns=["round", "win_rate", "win_lo", "win_hi", "reward", "reward_lo",
                                                          "reward_hi", "tokens"], data=dev_rows)
    policy_rows = [[p["name"], v, r["win_rate"]["mean"], r["win_rate"]["lo"], r["win_rate"]["hi"], r.get("unscored", 0)]
                   for p in ev.get("policies") or [] for v, r in p["results"].items() if r.get("win_rate")]
    if policy_rows:
        payload["eval/win_rates"] = wandb.Table(columns=["policy", "variant", "win_rate", "lo", "hi", "unscored"],
                                                data=policy_rows)
    rm = ev.get("rm_metrics")
    if rm:
        payload["eval/rm_metrics"] = wandb.Table(columns=["pairs", "accuracy", "auc", "ece", "brier"],
                                                 data=[[rm["pairs"], rm["accuracy"], rm["auc"], rm["ece"], rm["brier"]]])
    if payload:
        run.log(payload)
    safety = ev.get("safety") or {}
    for entry in ([safety["reference"]] if safety.get("reference") else []) + safety.get("policies", []):
        run.summary[f"safety/{entry['name']}/pass_rate"] = entry["pass_rate"]["mean"]
        if "regressed" in entry:
            run.summary[f"safety/{entry['name']}/regressed"] = int(entry["regressed"])
    for key, value in (ev.get("outcome") or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            run.summary[f"outcome/{key}"] = value  # numbers only: never the answers
    best = (ev.get("dev") or {}).get("best")
    if best:
        run.summary["eval/best_round"] = best["round"]
        run.summary["eval/best_dev_win_rate"] = best["win_rate"]["mean"]
