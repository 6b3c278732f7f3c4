"""What a preference build reports: its console summary (counts and ratings only, never text) and
how far its judge can be trusted (rated again, and beside a plainly unhelpful control answer)."""

from __future__ import annotations

from dataclasses import replace

from rlhf.prefs.judge import Judge, Verdict


def summary_lines(summary: dict) -> list[str]:
    """The build's console summary: counts and ratings only, never text."""
    lines = []
    c, pairs = summary["counts"], summary["pairs"]
    lines.append("=== preference build ===")
    lines.append(f"pairs kept    : train {pairs['train']}, test {pairs['test']} -> {summary['files']['train']}")
    lines.append(
        f"responses     : {c['responses_planned']} planned, {c['responses_stored_before']} already stored, "
        f"{c['responses_new']} new, {c['responses_failed']} failed (retried on rerun), "
        f"{c['responses_unanswerable']} unanswerable"
    )
    lines.append(
        f"judgements    : {c['judgements_planned']} planned, {c['judgements_stored_before']} already stored, "
        f"{c['judgements_new']} new, {c['judgements_failed']} failed (retried on rerun)"
    )
    judged = c["scored"] + c["unscored"]
    lines.append(
        f"scored        : {c['scored']} of {judged} judged; unscored {c['unscored']} (no score was invented "
        f"or defaulted for them)"
    )
    for reason, number in c["unscored_reasons"].items():
        lines.append(f"  unscored    : {number:>6}  {reason}")
    if judged and c["unscored"] > judged / 2:
        lines.append(
            "  note        : most responses are unscored: this judge does not produce usable ratings. "
            "Configure a capable judge (prefs.judge: backend=openai, base_url, model)."
        )
    lines.append("mean ratings per responder (scored responses):" + ("" if summary["mean_ratings"] else " none scored"))
    for name, means in summary["mean_ratings"].items():
        principles = " ".join(f"{k[:4]}={v:.2f}" for k, v in means.items() if k not in ("scored", "score"))
        lines.append(f"  {name:<20} n={means['scored']:<5} score={means['score']:.2f}  {principles}")
    check = summary.get("judge_check")
    if check:
        lines.append(
            f"judge check   : {check['responses']} responses judged again: identical ratings "
            f"{100 * check['identical_share']:.0f}%, mean |difference| {check['mean_abs_diff']:.2f}; rated above "
            f"a dismissive control answer {100 * check['above_control_share']:.0f}% (a useful judge: near 100%); "
            f"all seven ratings equal {100 * check['flat_share']:.0f}%"
        )
    if not summary["complete"]:
        lines.append("incomplete    : some calls failed; rerun the same command (same run_dir) to finish them")
    return lines


# A plainly unhelpful answer: a judge that cannot rate real answers above it is not judging counselling.
CONTROL_ANSWER = "Stop complaining, everyone has problems. Just deal with it and move on."


def check_judge(judge: Judge, scored: list, aggregate: str) -> dict | None:
    """How much the judge's ratings can be trusted, on some of the scored responses (counts only):
    the same response judged again (consistency), the same speech with a dismissive control answer
    (can it tell them apart?), and how often all seven ratings are equal (a judge that does not rate
    principles separately). Not stored as data; reported in provenance.json and the summary."""
    if not scored:
        return None
    again = dict(judge.judge_many([(s.speech.text, s.text) for s in scored]))
    control = dict(judge.judge_many([(s.speech.text, CONTROL_ANSWER) for s in scored]))
    pairs = [
        (s.ratings, again[i].ratings)
        for i, s in enumerate(scored)
        if isinstance(again.get(i), Verdict) and again[i].ratings is not None
    ]
    diffs = [abs(a[k] - b[k]) for a, b in pairs for k in a]
    above = []
    for i, s in enumerate(scored):
        if isinstance(control.get(i), Verdict) and control[i].ratings is not None:
            real, bad = s.score(aggregate), replace(s, ratings=control[i].ratings).score(aggregate)
            above.append(1.0 if real > bad else 0.5 if real == bad else 0.0)
    return {
        "responses": len(scored),
        "repeated": len(pairs),
        "identical_share": sum(a == b for a, b in pairs) / len(pairs) if pairs else 0.0,
        "mean_abs_diff": sum(diffs) / len(diffs) if diffs else 0.0,
        "controls": len(above),
        "above_control_share": sum(above) / len(above) if above else 0.0,
        "flat_share": sum(len(set(s.ratings.values())) == 1 for s in scored) / len(scored),
    }
