"""The report's sections on the run's outcome (final vs starting policy, with its guards) and on the
safety probes: numbers, ids and our own words only."""

from __future__ import annotations


def pct(est: dict | None) -> str:
    if not est or not est.get("n"):
        return "n/a"
    return f"{100 * est['mean']:.1f}% [{100 * est['lo']:.1f}, {100 * est['hi']:.1f}]"


def num(est: dict | None, digits: int = 3) -> str:
    if not est or not est.get("n"):
        return "n/a"
    return f"{est['mean']:.{digits}f} [{est['lo']:.{digits}f}, {est['hi']:.{digits}f}]"


def quote(text: str) -> str:
    return " ".join(text.split()) or "(empty)"


def outcome_section(outcome: dict, samples: list[dict]) -> list[str]:
    """The final policy against the starting one on held-out speeches, and a few answers side by side."""
    g = outcome["goals"]
    win = {"mean": outcome["win_rate"], "lo": outcome["win_rate_lo"], "hi": outcome["win_rate_hi"], "n": 1}

    def mark(ok: bool) -> str:
        return "met" if ok else "**missed**"

    lines = [
        "## Outcome: final policy against the starting policy",
        "",
        f"{outcome['speeches']} held-out speeches (the dev split and counsel-chat's val questions; no round "
        f"trained on them), answered {outcome['decoding']} with at most {outcome['max_tokens']} tokens by the "
        "policy the rounds started from and by the final policy; the reward model judges each pair.",
        "",
        "| measure | start | final | goal |",
        "| --- | --- | --- | --- |",
        f"| win rate of final over start | - | {pct(win)} ({outcome['wins']} / {outcome['ties']} / "
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
        f"{100 * outcome['repetition_rate']:.1f}% | - |",
        "",
    ]
    if not g["all_met"]:
        lines += [
            "The run missed at least one goal (marked above): read the win rate together with the guards; a "
            "reward gained through longer, cut-off or repetitive answers is not a better counsellor.",
            "",
        ]
    if samples:
        lines += [
            "### Answers before and after (held-out speeches)",
            "",
            "Local to this run directory: never logged or sent to W&B. E-mail addresses, phone numbers, "
            "URLs, handles and street addresses are redacted.",
            "",
        ]
        for number, item in enumerate(samples, 1):
            lines += [
                f"**Speech {number}.** {quote(item['speech'])}",
                "",
                f"*Start* (reward {item['reward_start']:+.2f}): {quote(item['start'])}",
                "",
                f"*Final* (reward {item['reward_final']:+.2f}): {quote(item['final'])}",
                "",
            ]
    return lines


def safety_section(safety: dict) -> list[str]:
    """Pass rates on the safety probes per category, policy against reference, regressions."""
    judge = (
        safety["judge"]
        if isinstance(safety["judge"], str)
        else (f"rules, then the LLM judge `{safety['judge'].get('chat', {}).get('model')}` per criterion")
    )
    lines = [
        "## Safety probes",
        "",
        f"{safety['probes']} synthetic client messages in {len(safety['categories'])} categories (suicidal "
        "ideation with indirect method-seeking, self-harm, delusions, mania, hallucinations, OCD reassurance, "
        "substance crisis, abuse disclosure, stigma vignettes; docs/safety.md), answered greedily. Decided by "
        f"{judge}. A probe passes when every check passes; one nothing could decide is *not judged* and left "
        "out of the rates (never counted as a pass). Rates: mean [95% bootstrap interval]. A regression is a "
        "pass rate below the reference's with the interval of the paired difference entirely below zero.",
        "",
    ]
    ref = safety.get("reference")
    columns = ([(ref["name"], ref)] if ref else []) + [(p["name"], p) for p in safety["policies"]]
    if not columns:
        return lines
    categories = list(columns[0][1]["categories"])
    lines += ["| category | " + " | ".join(name for name, _ in columns) + " |", "|---|" + "---|" * len(columns)]

    def cell(entry: dict, category: str | None = None) -> str:
        rate = entry["pass_rate"] if category is None else entry["categories"].get(category)
        if not rate or rate.get("mean") is None or rate["mean"] != rate["mean"]:  # None or NaN: nothing judged
            return "-"
        text = f"{100 * rate['mean']:.0f}%"
        if rate.get("lo") is not None:
            text += f" [{100 * rate['lo']:.0f}, {100 * rate['hi']:.0f}]"
        regressed = category in entry.get("regressed_categories", []) if category else entry.get("regressed")
        return f"**{text} regressed**" if regressed else text

    for category in categories:
        lines += [f"| {category.replace('_', ' ')} | " + " | ".join(cell(e, category) for _, e in columns) + " |"]
    lines += ["| **all** | " + " | ".join(cell(e) for _, e in columns) + " |"]
    lines += ["| judged / probes | " + " | ".join(f"{e['judged']} / {e['probes']}" for _, e in columns) + " |", ""]
    if not any(e["judged"] for _, e in columns):
        lines += [
            "No probe was decided: every probe has a criterion only an LLM judge decides, and no LLM judge "
            "was configured (rules only). Set `eval.judge` to an LLM judge (docs/safety.md) for pass rates.",
            "",
        ]
    if ref is None:
        lines += [
            "The reference (stored responses) has no answers to the probes: no comparison, no regression flag.",
            "",
        ]
    elif ref.get("not_judged"):
        lines += [
            f"Not judged at the start: {ref['not_judged']} of {ref['probes']} probes ("
            + "; ".join(f"{n}: {why}" for why, n in ref.get("not_judged_reasons", {}).items())
            + ").",
            "",
        ]
    if safety.get("gated_rounds"):
        lines += [
            f"Safety gate: round(s) {', '.join(map(str, safety['gated_rounds']))} regressed and were not "
            "eligible as the best checkpoint.",
            "",
        ]
    lines += ["Answers and the judge's reasons: `eval/safety/*.jsonl` in this run directory (not logged).", ""]
    return lines
