"""After the online rounds: the best round by the dev metric, the outcome on held-out speeches, the
safety probes per evaluated round, reward-model metrics, and the report."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from rlhf.eval.judging import rm_metrics
from rlhf.eval.online import best_round
from rlhf.eval.report import write_report
from rlhf.scoring.sources import source_of

if TYPE_CHECKING:
    from rlhf.stages.context import RunContext

log = logging.getLogger(__name__)


def finish_online(ctx: RunContext, dev_eval, outcome: dict | None = None, samples: list | None = None) -> dict:
    """After the online rounds: the best round by the dev metric, reward-model metrics, the outcome
    on held-out speeches, the report (with `samples`, a few answers before and after, local only)."""
    run, rounds = ctx.run, ctx.results["rounds"]
    gate = run.eval.safety.gate
    best = best_round(rounds, run.eval.dev_metric, gate) if dev_eval is not None else None
    dev = (
        None
        if dev_eval is None
        else {
            "fraction": run.eval.dev_fraction,
            "every_rounds": run.eval.every_rounds,
            "metric": run.eval.dev_metric,
            "reference": dev_eval.reference_summary(),
            "best": None,
        }
    )
    gated = [r["round"] for r in rounds if gate and r.get("safety_regressed")]
    if gated:
        which = "; ".join(
            f"round {r['round']} ({', '.join(r.get('safety_regressed_categories') or ['overall'])})"
            for r in rounds
            if r["round"] in gated
        )
        log.warning(
            "safety gate: %s regressed on the safety probes against the starting policy and cannot be the best "
            "checkpoint; best: %s",
            which,
            f"round {best['round']}" if best else "none (no evaluated round passed the gate)",
        )
    if best is not None:
        dev["best"] = {
            "round": best["round"],
            "checkpoint": best.get("checkpoint"),
            "win_rate": {
                "mean": best["dev_win_rate"],
                "lo": best["dev_win_rate_lo"],
                "hi": best["dev_win_rate_hi"],
                "n": best["dev_speeches"],
            },
            "reward": {
                "mean": best["dev_reward_mean"],
                "lo": best["dev_reward_lo"],
                "hi": best["dev_reward_hi"],
                "n": best["dev_speeches"],
            },
        }
    results = {"judge": {"backend": "reward", "model": source_of(run).describe(ctx)}, "dev": dev}
    if outcome is not None:
        results["outcome"] = outcome
    if dev_eval is not None and dev_eval.safety is not None and dev_eval.safety_reference is not None:
        results["safety"] = online_safety(dev_eval, rounds, best, gated)
    try:
        results["rm_metrics"] = rm_metrics(ctx, ctx.scorer)
    except Exception as err:  # the metrics are extra; the rounds' results stand without them
        log.warning("reward-model metrics failed (%s)", type(err).__name__)
    results["report"] = str(write_report(results, rounds, ctx.run_dir / "eval", ctx.tracker, samples=samples))
    return results


def online_safety(dev_eval, rounds: list[dict], best: dict | None, gated: list[int]) -> dict:
    """eval.safety of run_summary.json after the rounds: the probe set, the starting policy's and
    each evaluated round's per-category pass rates, and which rounds regressed (numbers and names only)."""
    from rlhf.eval.safety import brief

    evaluated = [r for r in rounds if "safety_pass_rate" in r]
    policies = [
        {
            "name": f"round {r['round']}",
            "round": r["round"],
            "probes": r["safety_judged"] + r["safety_not_judged"],
            "judged": r["safety_judged"],
            "not_judged": r["safety_not_judged"],
            "passed": r["safety_judged"] - r["safety_failed"],
            "failed": r["safety_failed"],
            "pass_rate": {
                "mean": r["safety_pass_rate"],
                "lo": r["safety_pass_rate_lo"],
                "hi": r["safety_pass_rate_hi"],
                "n": r["safety_judged"],
            },
            "categories": dict(r["safety_categories"]),
            "regressed": r["safety_regressed"],
            "regressed_categories": r["safety_regressed_categories"],
        }
        for r in evaluated
    ]
    return {
        **dev_eval.safety.describe(),
        "gate": dev_eval.safety.cfg.gate,
        "reference": brief("start", dev_eval.safety_reference),
        "policies": policies,
        "final_regressed": bool(policies and policies[-1]["regressed"]),
        "best_round_regressed": bool(best and best.get("safety_regressed")),
        "gated_rounds": gated,
    }
