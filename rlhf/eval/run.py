"""stage=eval: speeches (rlhf.eval.inputs) -> answers from every policy and from the reference, with
and without the length constraint (rlhf.eval.answers) -> a judge (the reward model by default; or
the pairwise principle judge, both orders per pair, plus 1-5 ratings) -> win rates with bootstrap
intervals -> safety probes -> reward-model metrics on a preference split -> report."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rlhf.choices import JudgeBackend
from rlhf.data.errors import DataError
from rlhf.eval import reward_judge, stats
from rlhf.eval.answers import SAFETY, local_answers, reference_answers, safety_results
from rlhf.eval.generate import Variant
from rlhf.eval.inputs import bootstrap_args, describe_variant, eval_speeches, policy_list, variants, words
from rlhf.eval.judging import absolute_ratings, judge_backend, rm_metrics
from rlhf.eval.report import write_report
from rlhf.logs import progress
from rlhf.paths import resolve_path
from rlhf.scoring.sources import source_of

if TYPE_CHECKING:
    from rlhf.stages.context import RunContext

log = logging.getLogger(__name__)


def evaluate(ctx: RunContext) -> dict:
    started = time.time()
    run, ev = ctx.run, ctx.run.eval
    boot = bootstrap_args(ev)
    out_dir = ctx.run_dir / "eval"
    policies = policy_list(run)
    speeches, source = eval_speeches(run, ctx.val_questions)
    if not speeches:
        raise DataError(source, "no speeches to evaluate", hint="check eval.speeches")
    vs = variants(run)
    log.info(
        "eval: %d policy checkpoint(s) x %d speeches x %d variant(s), judge: %s",
        len(policies),
        len(speeches),
        len(vs),
        "the reward model" if ev.judge.backend == JudgeBackend.reward else ev.judge.backend,
    )
    jobs = {v.name: (speeches, v) for v in vs}
    check = None
    if ev.safety.enabled:  # the safety probes, answered by every policy and the reference beside the speeches
        from rlhf.data.records import Speech
        from rlhf.eval.safety import SafetyCheck

        check = SafetyCheck(ev.safety, out_dir, None, boot)
        jobs[SAFETY] = (
            [Speech(p.id, p.message) for p in check.probes],
            Variant(SAFETY, ev.safety.max_tokens or run.model.max_response_len),
        )
    with progress(len(policies) + 1, "eval: answering", "model") as bar:
        ref_answers, ref_errors, ref_desc = reference_answers(ctx, jobs)
        bar.update(1)
        answers = {}
        for name, path, _ in policies:
            answers[name] = local_answers(run, path, jobs)
            bar.update(1)

    reward, scorer = source_of(run), None
    if ev.judge.backend == JudgeBackend.reward or reward.available(ctx):
        if ev.run and not run.reward.path:  # eval.run's own reward model
            ctx.reward_dir = str(Path(resolve_path(ev.run)) / "checkpoints" / "reward_model")
        ctx.scorer = scorer = reward.start(ctx)
    results: dict = {
        "speeches": {"source": source, "count": len(speeches)},
        "reference": {"source": ev.reference.source, "description": ref_desc},
        "variants": {
            v.name: {"max_tokens": v.max_tokens, "instruction": v.instruction, "description": describe_variant(v)}
            for v in vs
        },
        "length_unit": "words",
        "policies": [],
    }
    answered = Answered([s.text for s in speeches], answers, ref_answers, ref_errors, vs, policies, boot)
    local_models = None
    try:
        if ev.judge.backend == JudgeBackend.reward:
            results["judge"] = {"backend": "reward", "model": reward.describe(ctx)}
            results["policies"] = answered.by_reward(scorer)
        else:
            from rlhf.chat.local import LocalModels

            local_models = LocalModels(run, run.prefs.local_max_model_len, run.prefs.local_batch_size)
            results.update(answered.by_principles(ctx, judge_backend(ctx, local_models), speeches))
        if check is not None:
            from rlhf.chat.local import LocalModels
            from rlhf.eval.safety import judge_for

            if local_models is None and ev.judge.backend == JudgeBackend.local:
                local_models = LocalModels(run, run.prefs.local_max_model_len, run.prefs.local_batch_size)
            backend = judge_backend(ctx, local_models) if ev.judge.backend != JudgeBackend.reward else None
            check.judge = judge_for(ev.safety, ev.judge, backend)
            results["safety"] = safety_results(check, ref_answers, answers, policies, ref_errors)
        if scorer is not None:
            results["rm_metrics"] = rm_metrics(ctx, scorer)
    finally:
        if local_models is not None:
            local_models.shutdown()
    results["wall_seconds"] = round(time.time() - started, 1)
    results["report"] = str(write_report(results, [], out_dir, ctx.tracker))
    for line in result_lines(results):
        log.info(line)
    return results


class Answered:
    """Every policy's and the reference's answers, judged per policy and variant."""

    def __init__(self, texts, answers, ref_answers, ref_errors, vs, policies, boot):
        self.texts, self.answers, self.ref_answers, self.ref_errors = texts, answers, ref_answers, ref_errors
        self.vs, self.policies, self.boot = vs, policies, boot

    def _lengths(self, result: dict, own, variant) -> dict:
        result["length"] = stats.mean_with_interval(words(own.texts), **self.boot).as_dict()
        result["reference_length"] = stats.mean_with_interval(
            words(self.ref_answers[variant].texts), **self.boot
        ).as_dict()
        return result

    def by_reward(self, scorer) -> list[dict]:
        """Win rates by reward: the policy's answer against the reference's, scored one at a time."""
        texts, boot = self.texts, self.boot
        ref_rewards = {v.name: reward_judge.score(scorer, texts, self.ref_answers[v.name].texts) for v in self.vs}
        entries = []
        with progress(len(self.policies) * len(self.vs), "eval: scoring", "answer set") as bar:
            for name, path, number in self.policies:
                entry = {"name": name, "path": path, "round": number, "results": {}}
                for v in self.vs:
                    valid = [not e for e in self.ref_errors[v.name]]
                    own = self.answers[name][v.name]
                    r = reward_judge.compare(
                        reward_judge.score(scorer, texts, own.texts), ref_rewards[v.name], valid, **boot
                    )
                    entry["results"][v.name] = self._lengths(r, own, v.name)
                    bar.update(1)
                entries.append(entry)
        return entries

    def by_principles(self, ctx: RunContext, backend, speeches) -> dict:
        """Win rates by the pairwise principle judge (both orders per pair), and 1-5 ratings."""
        from rlhf.eval.pairwise import PairwiseJudge, both_orders, load_prompt, summarise
        from rlhf.prefs.judge import JudgePrompt

        judge_cfg, texts, boot = ctx.run.eval.judge, self.texts, self.boot
        prompt = load_prompt(resolve_path(judge_cfg.prompt) if judge_cfg.prompt else None)
        judge = PairwiseJudge(
            backend,
            prompt,
            max_attempts=judge_cfg.max_attempts,
            temperature=judge_cfg.temperature,
            max_tokens=judge_cfg.max_tokens,
            json_mode=judge_cfg.json_mode,
        )
        out = {
            "judge": {
                **backend.describe(),
                "prompt": prompt.version,
                "prompt_sha256": prompt.sha256,
                "max_attempts": judge_cfg.max_attempts,
            },
            "policies": [],
        }
        with progress(len(self.policies) * len(self.vs), "eval: judging", "answer set") as bar:
            for name, path, number in self.policies:
                entry = {"name": name, "path": path, "round": number, "results": {}}
                for v in self.vs:
                    ok = [i for i, e in enumerate(self.ref_errors[v.name]) if not e]
                    own = self.answers[name][v.name]
                    verdicts = both_orders(
                        judge,
                        [texts[i] for i in ok],
                        [own.texts[i] for i in ok],
                        [self.ref_answers[v.name].texts[i] for i in ok],
                    )
                    r = summarise(verdicts, **boot)
                    missing = len(texts) - len(ok)
                    if missing:
                        r["unscored"] += missing
                        r["unscored_reasons"]["no reference response"] = missing
                    entry["results"][v.name] = self._lengths(r, own, v.name)
                    bar.update(1)
                out["policies"].append(entry)
        if judge_cfg.absolute:
            absolute_prompt = JudgePrompt.load(
                resolve_path(judge_cfg.absolute_prompt) if judge_cfg.absolute_prompt else None
            )
            first = self.vs[0].name
            valid = [not e for e in self.ref_errors[first]]
            out["absolute"] = {
                "reference": absolute_ratings(
                    backend, absolute_prompt, judge_cfg, speeches, self.ref_answers[first].texts, valid, boot
                )
            }
            for name, _, _ in self.policies:
                out["absolute"][name] = absolute_ratings(
                    backend,
                    absolute_prompt,
                    judge_cfg,
                    speeches,
                    self.answers[name][first].texts,
                    [True] * len(speeches),
                    boot,
                )
        out["judge_calls"] = backend.stats.as_dict()
        return out


def result_lines(results: dict) -> list[str]:
    """The console summary of stage=eval (numbers and names only)."""
    judge = results["judge"]
    who = "the reward model " + judge["model"] if judge["backend"] == "reward" else judge.get("model")
    lines = ["=== evaluation ===", f"judge         : {who}", f"reference     : {results['reference']['description']}"]
    for p in results["policies"]:
        for v, r in p["results"].items():
            est = stats.Estimate(**r["win_rate"])
            lines.append(
                f"{p['name']:<18}: {v.replace('_', ' ')} win rate {est.fmt(percent=True)}, unscored {r['unscored']}"
            )
    rm = results.get("rm_metrics")
    if rm:
        lines.append(
            f"reward model  : accuracy {rm['accuracy']:.3f}, AUC {rm['auc']:.3f}, ECE {rm['ece']:.3f}, "
            f"Brier {rm['brier']:.3f} on {rm['pairs']} pairs"
        )
    lines.append(f"report        : {results['report']}")
    return lines
