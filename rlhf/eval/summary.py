"""The evaluation's lines in the run's closing summary (rlhf.summary): numbers and names only."""

from __future__ import annotations


def summary_lines(results: dict) -> list[str]:
    """The evaluation's lines in the run's final summary (rlhf.launch)."""

    def pct(est):
        return f"{100 * est['mean']:.1f}% [{100 * est['lo']:.1f}, {100 * est['hi']:.1f}]" if est.get("n") else "n/a"

    lines = []
    judge = results.get("judge", {})
    who = "reward model" if judge.get("backend") == "reward" else f"{judge.get('model')} (principles, both orders)"
    outcome = results.get("outcome")
    if outcome:
        met = outcome["goals"]
        lines.append(
            f"outcome       : final vs starting policy on {outcome['speeches']} held-out speeches: win rate "
            f"{100 * outcome['win_rate']:.1f}% [{100 * outcome['win_rate_lo']:.1f}, "
            f"{100 * outcome['win_rate_hi']:.1f}] (judge: reward model), length x{outcome['length_ratio']:.2f}, "
            f"distinct-2 {outcome['distinct2_start']:.3f} -> {outcome['distinct2_final']:.3f}, truncated "
            f"{100 * outcome['truncated_share_start']:.0f}% -> {100 * outcome['truncated_share']:.0f}%; goals "
            f"{'met' if met['all_met'] else 'missed'}"
        )
    safety = results.get("safety") or {}
    policies = safety.get("policies", [])
    if policies and "round" in policies[-1]:
        policies = policies[-1:]  # the online rounds: the last evaluated round
    for policy in policies:
        lines.append(safety_line(safety, policy))
    dev = results.get("dev")
    if dev:
        best = dev.get("best")
        if best:
            lines.append(
                f"dev eval      : best round {best['round']}: win rate vs start {pct(best['win_rate'])} "
                f"(95% CI, {dev['reference']['speeches']} held-out speeches, judge: {who})"
            )
            lines.append(f"best policy   : {best.get('checkpoint')}")
        elif safety.get("gated_rounds"):
            lines.append(
                "dev eval      : no best round: every evaluated round regressed on the safety probes "
                f"(round(s) {', '.join(map(str, safety['gated_rounds']))}; eval.safety.gate=true)"
            )
        else:
            lines.append("dev eval      : no round was evaluated")
        if best and safety.get("gated_rounds"):
            lines.append(
                f"safety gate   : round(s) {', '.join(map(str, safety['gated_rounds']))} regressed on the safety "
                "probes and could not be the best"
            )
    for p in results.get("policies", []):
        for variant, r in p["results"].items():
            lines.append(
                f"eval          : {p['name']} {variant.replace('_', ' ')}: win rate {pct(r['win_rate'])} vs "
                f"reference (judge: {who}, unscored {r['unscored']})"
            )
    rm = results.get("rm_metrics")
    if rm:
        lines.append(
            f"reward model  : held-out accuracy {rm['accuracy']:.3f}, AUC {rm['auc']:.3f}, "
            f"ECE {rm['ece']:.3f}, Brier {rm['brier']:.3f} ({rm['pairs']} pairs)"
        )
    if results.get("report"):
        lines.append(f"eval report   : {results['report']}")
    return lines


def safety_line(safety: dict, policy: dict) -> str:
    """One policy on the safety probes against its reference (none for a stored reference)."""
    ref, probes = safety.get("reference"), safety["probes"]

    def rate(entry: dict) -> str:
        return f"{100 * entry['pass_rate']['mean']:.0f}%" if entry["pass_rate"].get("n") else "n/a"

    if isinstance(safety["judge"], str):  # rules only: a rule decides a probe only by failing it
        text = f"{policy['name']}: {policy['failed']} of {probes} probes failed a rule"
        text += f" ({ref['name']}: {ref['failed']})" if ref else ""
        text += f", {policy['not_judged']} not judged (rules only; an LLM eval.judge decides the rest)"
    else:
        text = f"{policy['name']}: pass rate {rate(policy)} ({policy['judged']} of {probes} judged)"
        text += f" vs {ref['name']} {rate(ref)} ({ref['judged']} judged)" if ref else ""
        text += "; rules + LLM judge"
    if ref is None:
        text += "; no reference answers, no comparison"
    elif policy.get("regressed"):
        text += "; REGRESSED in " + ", ".join(policy["regressed_categories"] or ["overall"])
    else:
        text += "; no regression"
    return "safety        : " + text
