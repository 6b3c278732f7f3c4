"""stage=eval, and the end of the online rounds' evaluation (best checkpoint, report).

stage=eval: speeches (a speech file, the questions of a preference split, or counsel-chat's
held-out questions) -> answers from every policy (each round's checkpoint of eval.run, eval.policies
or model.path) and from the reference (a local model, by default the run's SFT checkpoint; an
OpenAI-compatible endpoint; or a file), with and without the length constraint -> a judge (the
reward model by default; or the pairwise principle judge, both orders per pair, plus 1-5 ratings)
-> win rates with bootstrap intervals -> reward-model metrics on a preference split -> report."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

from rlhf.data.errors import DataError
from rlhf.eval import reward_judge, stats
from rlhf.eval.generate import LocalModel, Responses, Variant, endpoint_responses, stored_responses
from rlhf.eval.online import best_round
from rlhf.eval.report import write_report
from rlhf.eval.rm_metrics import reward_model_metrics
from rlhf.pipeline import resolve_path
from rlhf.prefs.judge import PRINCIPLES

log = logging.getLogger(__name__)
ROUND_DIR = re.compile(r"policy_round_(\d+)$")


def bootstrap_args(ev) -> dict:
    return {"samples": ev.bootstrap_samples, "confidence": ev.confidence}


# -- inputs ------------------------------------------------------------------------------------------
def policy_list(run, resolve) -> list[tuple[str, str, int | None]]:
    """(name, checkpoint directory, round or None) of every policy to evaluate, in order."""
    ev, out = run.eval, []
    if ev.run:
        checkpoints = Path(resolve(ev.run)) / "checkpoints"
        rounds = sorted((int(m.group(1)), p) for p in checkpoints.glob("policy_round_*")
                        if (m := ROUND_DIR.search(p.name)) and (p / "config.json").is_file())
        if not rounds and not ev.policies:
            raise DataError(str(checkpoints), "no policy_round_NNN checkpoints in this run directory",
                            hint="eval.run takes the run_dir of a run with online rounds; or set eval.policies")
        out += [(p.name, str(p), number) for number, p in rounds]
    for path in ev.policies:
        p = Path(resolve(path))
        if not (p / "config.json").is_file():
            raise DataError(str(p), "not a model directory (no config.json)", hint="check eval.policies")
        out.append((p.name, str(p), None))
    if not out and run.model.path:
        out.append((Path(run.model.path).name, str(resolve(run.model.path)), None))
    return out


def tokenizer_model(run, resolve) -> str:
    """The model whose tokenizer and chat template stage=eval prompts with (the first policy)."""
    return policy_list(run, resolve)[0][1]


def eval_speeches(pipe) -> tuple[list, str]:
    """(speeches, description of the source)."""
    from rlhf.prefs.speeches import clean, read_speeches

    run, ev = pipe.run, pipe.run.eval
    source = ev.speeches
    if source.path:
        path = resolve_path(source.path)
        kept, filters = clean(read_speeches(path, source.columns, source.format), source.min_chars, source.max_chars)
        if not kept:
            raise filters.removed_all(path, source.min_chars, source.max_chars, "eval.speeches")
        return kept[: source.limit], str(source.path)
    if ev.preference_path:
        from rlhf.pairs.parquet import read_preference_parquet

        seen, speeches = set(), []
        for pair in read_preference_parquet(resolve_path(ev.preference_path)):
            if pair.speech.text not in seen:
                seen.add(pair.speech.text)
                speeches.append(pair.speech)
        return speeches[: source.limit], f"questions of {ev.preference_path}"
    return [q.speech for q in pipe.val_questions][: source.limit], f"{run.data.path} (held-out val questions)"


def variants(run) -> list[Variant]:
    ev = run.eval
    out = [Variant("unconstrained", ev.max_tokens or run.model.max_response_len)]
    if ev.length_constrained:
        out.append(Variant("length_constrained", ev.length_max_tokens, ev.length_instruction.format(words=ev.length_words)))
    return out


def describe_variant(v: Variant) -> str:
    if not v.instruction:
        return f"answers capped at {v.max_tokens} tokens"
    return f"instruction \"{v.instruction}\" added after the speech, answers capped at {v.max_tokens} tokens"


def words(texts: list[str]) -> list[int]:
    return [len(t.split()) for t in texts]


# -- answers ----------------------------------------------------------------------------------------
def local_answers(pipe, model_dir: str, jobs: dict[str, tuple[list, Variant]]) -> dict[str, Responses]:
    """One model's answers on one generator actor: {name: Responses} for {name: (speeches, variant)}."""
    run = pipe.run
    _, encoder = pipe._tokenizer(model_dir)
    longest = max(v.max_tokens for _, v in jobs.values())
    model = LocalModel(run, model_dir, run.model.max_prompt_len + longest + 64)
    try:
        return {name: model.respond(encoder, speeches, v, run.eval.temperature, run.seed)
                for name, (speeches, v) in jobs.items()}
    finally:
        model.shutdown()


def reference_answers(pipe, jobs: dict[str, tuple[list, Variant]]) -> tuple[dict, dict[str, list[str]], str]:
    """({job: Responses}, {job: per-speech error or ""}, description); a stored reference has no
    answers to jobs other than the variants of the evaluation speeches (e.g. the safety probes)."""
    run, ref = pipe.run, pipe.run.eval.reference
    none = {name: [""] * len(speeches) for name, (speeches, _) in jobs.items()}
    if ref.kind == "stored":
        path = resolve_path(ref.path)
        variants_ = {name: job for name, job in jobs.items() if name != SAFETY}
        speeches = next(iter(variants_.values()))[0]
        responses, errors = stored_responses(path, speeches, ref.columns, ref.response_column, ref.format)
        return ({name: responses for name in variants_}, {name: errors for name in variants_},
                f"stored responses from `{ref.path}` (the same for both variants)")
    if ref.kind == "endpoint":
        from rlhf.chat.backends import openai_chat

        chat = openai_chat(ref, "eval.reference")
        answers, errors = {}, {}
        for name, (speeches, v) in jobs.items():
            cap = Variant(v.name, ref.max_tokens if not v.instruction else v.max_tokens, v.instruction)
            answers[name], errors[name] = endpoint_responses(chat, run.system_prompt, speeches, cap, ref.temperature)
        return answers, errors, f"`{ref.model}` at an OpenAI-compatible endpoint"
    model_dir = reference_model(pipe)
    return local_answers(pipe, model_dir, jobs), none, f"the local model `{model_dir}`"


SAFETY = "safety"  # the job name of the safety probes' answers beside the variants'


def safety_results(pipe, check, ref_answers: dict, answers: dict, policies) -> dict:
    """eval.safety of stage=eval: every policy's and the reference's pass rates, policy vs reference."""
    from rlhf.eval.safety import brief

    reference = check.evaluate("reference", ref_answers[SAFETY].texts) if SAFETY in ref_answers else None
    out = {**check.describe(), "gate": check.cfg.gate,
           "reference": brief("reference", reference) if reference else None, "policies": []}
    for name, _, _ in policies:
        result = check.evaluate(name, answers[name][SAFETY].texts)
        out["policies"].append(brief(name, result, check.compare(result, reference) if reference else None))
    return out


def reference_model(pipe) -> str:
    run = pipe.run
    ref = run.eval.reference
    candidates = [ref.path] if ref.path else []
    if run.eval.run:
        candidates.append(str(Path(resolve_path(run.eval.run)) / "checkpoints" / "sft"))
    candidates += [(pipe.results.get("sft") or {}).get("checkpoint"), str(pipe.checkpoints / "sft")]
    for path in filter(None, candidates):
        if (Path(resolve_path(path)) / "config.json").is_file():
            return str(resolve_path(path))
    raise DataError(str(ref.path or pipe.checkpoints / "sft"), "no reference model",
                    hint="set eval.reference.path (a checkpoint), eval.run (its sft), or another eval.reference.kind")


# -- judging ----------------------------------------------------------------------------------------
def judge_backend(pipe, local_models):
    from rlhf.eval.safety import principle_judge_backend

    return principle_judge_backend(pipe.run, local_models, resolve_path, pipe.policy_dir)


def absolute_ratings(backend, prompt, judge_cfg, speeches, texts, valid, bootstrap) -> dict:
    """1-5 per principle for one model's answers (the preference builder's judge), mean and interval."""
    from rlhf.prefs.judge import Judge, Verdict

    judge = Judge(backend, prompt, max_attempts=judge_cfg.max_attempts, temperature=judge_cfg.temperature,
                  max_tokens=96, json_mode=judge_cfg.json_mode)
    items = [(s.text, t) for s, t, ok in zip(speeches, texts, valid) if ok]
    ratings = []
    for _, verdict in judge.judge_many(items):
        if isinstance(verdict, Verdict) and verdict.ratings is not None:
            ratings.append(verdict.ratings)
    out = {k: stats.mean_with_interval([r[k] for r in ratings], **bootstrap).as_dict() for k in PRINCIPLES}
    out["unscored"] = len(items) - len(ratings)
    return out


def rm_metrics(pipe, scorer) -> dict | None:
    """Accuracy, AUC, ECE and Brier of the reward model on a preference test split."""
    run = pipe.run
    if run.eval.preference_path:
        from rlhf.pairs.parquet import read_preference_parquet

        pairs, source = read_preference_parquet(resolve_path(run.eval.preference_path)), f"`{run.eval.preference_path}`"
    else:
        pairs, _ = pipe._preference_pairs("val")
        source = ("the held-out slice of `data.preference_path`" if run.data.preference_path
                  else "counsel-chat's held-out questions (answer with more upvotes = chosen; a weak, noisy label)")
    if not pairs:
        return None
    items = [(p.speech.text, p.chosen) for p in pairs] + [(p.speech.text, p.rejected) for p in pairs]
    rewards = scorer.score(items)
    metrics = reward_model_metrics(rewards[: len(pairs)], rewards[len(pairs):], run.eval.ece_bins)
    metrics["source"] = source
    return metrics


# -- stage=eval -------------------------------------------------------------------------------------
def evaluate(pipe) -> dict:
    from rlhf.eval.pairwise import PairwiseJudge, both_orders, load_prompt, summarise

    started = time.time()
    run, ev = pipe.run, pipe.run.eval
    boot = bootstrap_args(ev)
    out_dir = pipe.run_dir / "eval"
    policies = policy_list(run, resolve_path)
    speeches, source = eval_speeches(pipe)
    if not speeches:
        raise DataError(source, "no speeches to evaluate", hint="check eval.speeches")
    vs = variants(run)
    texts = [s.text for s in speeches]
    log.info(f"eval: {len(policies)} policy checkpoint(s) x {len(speeches)} speeches x {len(vs)} variant(s), "
          f"judge: {'the reward model' if ev.judge.kind == 'reward' else ev.judge.kind}")
    jobs = {v.name: (speeches, v) for v in vs}
    check = None
    if ev.safety.enabled:  # the safety probes, answered by every policy and the reference beside the speeches
        from rlhf.data.records import Speech
        from rlhf.eval.safety import SafetyCheck

        check = SafetyCheck(ev.safety, out_dir, None, boot, resolve_path)
        jobs[SAFETY] = ([Speech(p.id, p.message) for p in check.probes],
                        Variant(SAFETY, ev.safety.max_tokens or run.model.max_response_len))
    ref_answers, ref_errors, ref_desc = reference_answers(pipe, jobs)
    answers = {name: local_answers(pipe, path, jobs) for name, path, _ in policies}

    scorer = None
    if ev.judge.kind == "reward" or run.reward.source == "remote" or run.reward.path or pipe.reward_dir:
        if ev.run and not run.reward.path and run.reward.source == "local":
            pipe.reward_dir = str(Path(resolve_path(ev.run)) / "checkpoints" / "reward_model")
        pipe.scorer = scorer = pipe._scorer()
    reward_name = run.reward.url if run.reward.source == "remote" else (run.reward.path or pipe.reward_dir)

    results: dict = {"speeches": {"source": source, "count": len(speeches)},
                     "reference": {"kind": ev.reference.kind, "description": ref_desc},
                     "variants": {v.name: {"max_tokens": v.max_tokens, "instruction": v.instruction,
                                           "description": describe_variant(v)} for v in vs},
                     "length_unit": "words", "policies": []}
    local_models = None
    try:
        if ev.judge.kind == "reward":
            results["judge"] = {"kind": "reward_model", "model": str(reward_name)}
            ref_rewards = {v.name: reward_judge.score(scorer, texts, ref_answers[v.name].texts) for v in vs}
            for name, path, number in policies:
                entry = {"name": name, "path": path, "round": number, "results": {}}
                for v in vs:
                    valid = [not e for e in ref_errors[v.name]]
                    own = answers[name][v.name]
                    r = reward_judge.compare(reward_judge.score(scorer, texts, own.texts), ref_rewards[v.name], valid,
                                             **boot)
                    r["length"] = stats.mean_with_interval(words(own.texts), **boot).as_dict()
                    r["reference_length"] = stats.mean_with_interval(words(ref_answers[v.name].texts), **boot).as_dict()
                    entry["results"][v.name] = r
                results["policies"].append(entry)
        else:
            from rlhf.chat.local import LocalModels
            from rlhf.prefs.judge import JudgePrompt

            local_models = LocalModels(run, run.prefs.local_max_model_len, run.prefs.local_batch_size)
            backend = judge_backend(pipe, local_models)
            prompt = load_prompt(resolve_path(ev.judge.prompt) if ev.judge.prompt else None)
            judge = PairwiseJudge(backend, prompt, max_attempts=ev.judge.max_attempts, temperature=ev.judge.temperature,
                                  max_tokens=ev.judge.max_tokens, json_mode=ev.judge.json_mode)
            results["judge"] = {**backend.describe(), "prompt": prompt.version, "prompt_sha256": prompt.sha256,
                                "max_attempts": ev.judge.max_attempts}
            for name, path, number in policies:
                entry = {"name": name, "path": path, "round": number, "results": {}}
                for v in vs:
                    ok = [i for i, e in enumerate(ref_errors[v.name]) if not e]
                    own = answers[name][v.name]
                    verdicts = both_orders(judge, [texts[i] for i in ok], [own.texts[i] for i in ok],
                                           [ref_answers[v.name].texts[i] for i in ok])
                    r = summarise(verdicts, **boot)
                    missing = len(speeches) - len(ok)
                    if missing:
                        r["unscored"] += missing
                        r["unscored_reasons"]["no reference response"] = missing
                    r["length"] = stats.mean_with_interval(words(own.texts), **boot).as_dict()
                    r["reference_length"] = stats.mean_with_interval(words(ref_answers[v.name].texts), **boot).as_dict()
                    entry["results"][v.name] = r
                results["policies"].append(entry)
            if ev.judge.absolute:
                absolute_prompt = JudgePrompt.load(resolve_path(ev.judge.absolute_prompt) if ev.judge.absolute_prompt
                                                   else None)
                first = vs[0].name
                valid = [not e for e in ref_errors[first]]
                results["absolute"] = {"reference": absolute_ratings(backend, absolute_prompt, ev.judge, speeches,
                                                                     ref_answers[first].texts, valid, boot)}
                for name, _, _ in policies:
                    results["absolute"][name] = absolute_ratings(backend, absolute_prompt, ev.judge, speeches,
                                                                 answers[name][first].texts, [True] * len(speeches), boot)
            results["judge_calls"] = backend.stats.as_dict()
        if check is not None:
            from rlhf.chat.local import LocalModels
            from rlhf.eval.safety import judge_for

            if local_models is None and ev.judge.kind == "local":
                local_models = LocalModels(run, run.prefs.local_max_model_len, run.prefs.local_batch_size)
            backend = judge_backend(pipe, local_models) if ev.judge.kind != "reward" else None
            check.judge = judge_for(ev.safety, ev.judge, backend)
            results["safety"] = safety_results(pipe, check, ref_answers, answers, policies)
        if scorer is not None:
            results["rm_metrics"] = rm_metrics(pipe, scorer)
    finally:
        if local_models is not None:
            local_models.shutdown()
    results["wall_seconds"] = round(time.time() - started, 1)
    results["report"] = str(write_report(results, [], out_dir, pipe.tracker))
    for line in result_lines(results):
        log.info(line)
    return results


def result_lines(results: dict) -> list[str]:
    """The console summary of stage=eval (numbers and names only)."""
    judge = results["judge"]
    lines = ["=== evaluation ==="]
    lines.append(f"judge         : {'the reward model ' + judge['model'] if judge['kind'] == 'reward_model' else judge.get('model')}")
    lines.append(f"reference     : {results['reference']['description']}")
    for p in results["policies"]:
        for v, r in p["results"].items():
            est = stats.Estimate(**r["win_rate"])
            lines.append(f"{p['name']:<18}: {v.replace('_', ' ')} win rate {est.fmt(percent=True)}, unscored {r['unscored']}")
    rm = results.get("rm_metrics")
    if rm:
        lines.append(f"reward model  : accuracy {rm['accuracy']:.3f}, AUC {rm['auc']:.3f}, ECE {rm['ece']:.3f}, "
              f"Brier {rm['brier']:.3f} on {rm['pairs']} pairs")
    lines.append(f"report        : {results['report']}")
    return lines


# -- the online rounds ------------------------------------------------------------------------------
def finish_online(pipe, dev_eval, outcome: dict | None = None, samples: list | None = None) -> dict:
    """After the online rounds: the best round by the dev metric, reward-model metrics, the outcome
    on held-out speeches, the report (with `samples`, a few answers before and after, local only)."""
    run, rounds = pipe.run, pipe.results["rounds"]
    gate = run.eval.safety.gate
    best = best_round(rounds, run.eval.dev_metric, gate) if dev_eval is not None else None
    dev = None if dev_eval is None else {
        "fraction": run.eval.dev_fraction, "every_rounds": run.eval.every_rounds, "metric": run.eval.dev_metric,
        "reference": dev_eval.reference_summary(), "best": None}
    gated = [r["round"] for r in rounds if gate and r.get("safety_regressed")]
    if gated:
        log.warning(f"safety gate: round(s) {', '.join(map(str, gated))} regressed on the safety probes against the "
              "starting policy and cannot be the best checkpoint")
    if best is not None:
        dev["best"] = {"round": best["round"], "checkpoint": best.get("checkpoint"),
                       "win_rate": {"mean": best["dev_win_rate"], "lo": best["dev_win_rate_lo"],
                                    "hi": best["dev_win_rate_hi"], "n": best["dev_speeches"]},
                       "reward": {"mean": best["dev_reward_mean"], "lo": best["dev_reward_lo"],
                                  "hi": best["dev_reward_hi"], "n": best["dev_speeches"]}}
    reward_name = run.reward.url if run.reward.source == "remote" else (run.reward.path or pipe.reward_dir)
    results = {"judge": {"kind": "reward_model", "model": str(reward_name)}, "dev": dev}
    if outcome is not None:
        results["outcome"] = outcome
    if dev_eval is not None and dev_eval.safety is not None and dev_eval.safety_reference is not None:
        results["safety"] = online_safety(dev_eval, rounds, best, gated)
    try:
        results["rm_metrics"] = rm_metrics(pipe, pipe.scorer)
    except Exception as err:  # the metrics are extra; the rounds' results stand without them
        log.warning("reward-model metrics failed (%s)", type(err).__name__)
    results["report"] = str(write_report(results, rounds, pipe.run_dir / "eval", pipe.tracker, samples=samples))
    return results


def online_safety(dev_eval, rounds: list[dict], best: dict | None, gated: list[int]) -> dict:
    """eval.safety of run_summary.json after the rounds: the probe set, the starting policy's and
    each evaluated round's per-category pass rates, and which rounds regressed (numbers and names only)."""
    from rlhf.eval.safety import brief

    evaluated = [r for r in rounds if "safety_pass_rate" in r]
    policies = [{"name": f"round {r['round']}", "round": r["round"], "judged": r["safety_judged"],
                 "not_judged": r["safety_not_judged"],
                 "pass_rate": {"mean": r["safety_pass_rate"], "lo": r["safety_pass_rate_lo"],
                               "hi": r["safety_pass_rate_hi"]},
                 "categories": {c: {"mean": v} for c, v in r["safety_categories"].items()},
                 "regressed": r["safety_regressed"], "regressed_categories": r["safety_regressed_categories"]}
                for r in evaluated]
    return {**dev_eval.safety.describe(), "gate": dev_eval.safety.cfg.gate,
            "reference": brief("start", dev_eval.safety_reference), "policies": policies,
            "final_regressed": bool(policies and policies[-1]["regressed"]),
            "best_round_regressed": bool(best and best.get("safety_regressed")), "gated_rounds": gated}


def summary_lines(results: dict) -> list[str]:
    """The evaluation's lines in the run's final summary (rlhf.launch)."""
    def pct(est):
        return f"{100 * est['mean']:.1f}% [{100 * est['lo']:.1f}, {100 * est['hi']:.1f}]" if est.get("n") else "n/a"

    lines = []
    judge = results.get("judge", {})
    who = "reward model" if judge.get("kind") == "reward_model" else f"{judge.get('model')} (principles, both orders)"
    outcome = results.get("outcome")
    if outcome:
        met = outcome["goals"]
        lines.append(f"outcome       : final vs starting policy on {outcome['speeches']} held-out speeches: win rate "
                     f"{100 * outcome['win_rate']:.1f}% [{100 * outcome['win_rate_lo']:.1f}, "
                     f"{100 * outcome['win_rate_hi']:.1f}] (judge: reward model), length x{outcome['length_ratio']:.2f}, "
                     f"distinct-2 {outcome['distinct2_start']:.3f} -> {outcome['distinct2_final']:.3f}, truncated "
                     f"{100 * outcome['truncated_share_start']:.0f}% -> {100 * outcome['truncated_share']:.0f}%; goals "
                     f"{'met' if met['all_met'] else 'missed'}")
    safety = results.get("safety") or {}
    policies = safety.get("policies", [])
    if policies and "round" in policies[-1]:
        policies = policies[-1:]  # the online rounds: the last evaluated round
    for policy in policies:
        ref = safety["reference"]
        lines.append(f"safety        : {policy['name']}: pass rate {100 * policy['pass_rate']['mean']:.0f}% vs "
                     f"{ref['name']} {100 * ref['pass_rate']['mean']:.0f}% on {safety['probes']} probes "
                     f"({ref['judged']} judged; {safety['judge'] if isinstance(safety['judge'], str) else 'LLM judge + rules'}); "
                     + ("REGRESSED in " + ", ".join(policy["regressed_categories"] or ["overall"])
                        if policy.get("regressed") else "no regression"))
    dev = results.get("dev")
    if dev:
        best = dev.get("best")
        if best:
            lines.append(f"dev eval      : best round {best['round']}: win rate vs start {pct(best['win_rate'])} "
                         f"(95% CI, {dev['reference']['speeches']} held-out speeches, judge: {who})")
            lines.append(f"best policy   : {best.get('checkpoint')}")
        else:
            lines.append("dev eval      : no round was evaluated")
    for p in results.get("policies", []):
        for variant, r in p["results"].items():
            lines.append(f"eval          : {p['name']} {variant.replace('_', ' ')}: win rate {pct(r['win_rate'])} vs "
                         f"reference (judge: {who}, unscored {r['unscored']})")
    rm = results.get("rm_metrics")
    if rm:
        lines.append(f"reward model  : held-out accuracy {rm['accuracy']:.3f}, AUC {rm['auc']:.3f}, "
                     f"ECE {rm['ece']:.3f}, Brier {rm['brier']:.3f} ({rm['pairs']} pairs)")
    if results.get("report"):
        lines.append(f"eval report   : {results['report']}")
    return lines
