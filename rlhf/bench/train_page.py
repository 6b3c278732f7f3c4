"""The results page's train-phase sections (docs/benchmark.md): the levers table (rlhf.bench.levers)
and where the phase's time goes (rlhf.bench.profile), with the next levers they point to."""

from __future__ import annotations

from pathlib import Path


def read_levers(path: Path) -> list[dict]:
    """The runs of `python -m rlhf.bench.levers` next to the results, if measured."""
    import json

    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    return [{"model": data.get("model"), "machine": data.get("machine"), **r} for r in data.get("runs", [])]


def lever_lines(runs: list[dict], path: Path) -> list[str]:
    """The train phase of one round under each lever (`python -m rlhf.bench.levers`)."""
    if not runs:
        return []
    base = {r["code"]: r["seconds"] for r in runs if r["lever"].startswith("baseline")}
    first = runs[0]
    older = any(not r["code"].startswith("this code") for r in runs)
    groups = len({r["code"] for r in runs}) > 1
    L = ["## Train-phase levers", "",
         f"The train phase of one round alone: {first['pairs']} DPO pairs shaped like a round's "
         f"(`{' '.join(first['base'])}`), one pass, on the real trainer group, best of the timed passes after one "
         "warm-up pass; everything the phase does is timed (reference log-probabilities, steps, the metric "
         "pass after them). Each lever changes the baseline by the overrides in the JSON; a lever named *before* puts back "
         "a setting this code replaced, so its row is the before and the baseline the after. "
         + ("*code* names the checkout that ran: the older one recomputes the reference in every step and runs "
            "before/after evaluation passes over all pairs. " if older else "")
         + ("Each *code* group is one run of the tool with its own baseline: a lever's speed is against the "
            "baseline of its group. " if groups else "")
         + f"From `python -m rlhf.bench.levers` ([`{path.name}`](../bench/results/{path.name}))"
         + (f", on {first['machine']['cpus']} cores of {first['machine']['cpu_model'] or 'an unknown CPU'}."
            if first.get("machine") else "."), "",
         "| code | lever | seconds | trained tok/s | speed vs the baseline | load avg |", "|---|---|---|---|---|---|"]
    for r in runs:
        ratio = base.get(r["code"], 0) / r["seconds"] if r["seconds"] else 0
        L.append(f"| {r['code']} | {r['lever']} | {r['seconds']:.1f} | {r['tokens_per_s']:,.0f} | "
                 f"{ratio:.2f}x | {r.get('load_avg_1m', 0):.1f} |")
    return L + [""]


def read_profile(path: Path) -> dict | None:
    """The result of `python -m rlhf.bench.profile` next to the results, if measured."""
    import json

    return json.loads(path.read_text()) if path.is_file() else None


PROFILE_SIDES = (("eager", "plain PyTorch, one unsharded copy"), ("compiled", "the same through torch.compile"),
                 ("zero3", "this code's trainer rank, ZeRO-3, 1 rank"),
                 ("zero3_compiled", "the same rank with model.compile"))


def compared(prof: dict) -> tuple[dict, dict, bool] | None:
    """(the trainer rank's side, plain PyTorch's side, compiled?): the compiled pair when both were
    profiled (what the benchmark runs), else the eager pair."""
    sides = prof["sides"]
    if "zero3_compiled" in sides and "compiled" in sides:
        return sides["zero3_compiled"], sides["compiled"], True
    if "zero3" in sides and "eager" in sides:
        return sides["zero3"], sides["eager"], False
    return None


def profile_lines(prof: dict | None, path: Path) -> list[str]:
    """Where the train phase's time goes, per operator category (`python -m rlhf.bench.profile`)."""
    if not prof:
        return []
    sides = [(name, label, prof["sides"][name]) for name, label in PROFILE_SIDES if name in prof["sides"]]
    categories = sorted({k for _, _, side in sides for k in side["categories"]},
                        key=lambda k: -max(side["categories"].get(k, 0.0) for _, _, side in sides))
    L = ["## Where the train phase's time goes", "",
         f"The levers' work ({prof['pairs']} pairs shaped like a round's, {prof['model']}, {prof['dtype']}, micro-batch "
         f"{prof['micro_batch']}, {prof['batch_size']} pairs per step, a metric pass over {prof['metric_pairs']} "
         "pairs after the steps), run in one process with 2 threads under torch's profiler: once on plain PyTorch (an unsharded "
         "policy and reference, `torch.optim.AdamW(foreach=True)` on the bf16 weights), once on this code's "
         "trainer rank (DeepSpeed ZeRO-3 in a world of 1: its per-module hooks, which gather nothing when every "
         "parameter stays whole as on a CPU, and float32 master weights, no traffic between ranks). Seconds are each operator's own time in the profiled pass, summed by "
         "category; *outside operators* is the rest of that pass (Python, the hooks' own code, the profiler). "
         "The % of the bf16 peak uses the unprofiled pass and the peak measured in the same run "
         + ("" if prof.get("forward_flops") else "(with the older FLOP estimate, 8 N per token run, which counts the "
            "vocabulary projection at prompt positions the losses skip and leaves attention out) ") +
         f"({prof['peak']['bfloat16']['flops_per_s'] / 1e9:,.0f} GFLOP/s). "
         f"From `python -m rlhf.bench.profile` ([`{path.name}`](../bench/results/{path.name}))"
         + (f", {prof['date']}, on {prof['machine']['cpus']} cores of {prof['machine']['cpu_model'] or 'an unknown CPU'}."
            if prof.get("machine") else "."), "",
         "| category | " + " | ".join(f"{label} s | share" for _, label, _ in sides) + " |",
         "|---|" + "---|---|" * len(sides)]
    for key in categories:
        cells = []
        for _, _, side in sides:
            total = sum(side["categories"].values())
            value = side["categories"].get(key, 0.0)
            cells += [f"{value:.2f}", f"{value / total:.0%}" if total else "-"]
        L.append(f"| {key} | " + " | ".join(cells) + " |")
    L.append("| **profiled pass** | " + " | ".join(f"**{side['profiled_seconds']:.2f}** | " for _, _, side in sides) + " |")
    L.append("| unprofiled pass | " + " | ".join(f"{side['seconds']:.2f} | " for _, _, side in sides) + " |")
    L.append("| **% of the bf16 peak** | " + " | ".join(f"**{side['fraction_of_bf16_peak']:.1%}** | "
                                                       for _, _, side in sides) + " |")
    return L + [""]


def profile_summary(prof: dict | None) -> str:
    """What the profile found (for the reasons below the targets), read off its JSON."""
    pair = compared(prof) if prof else None
    if not pair:
        return ""
    z, e, compiled = pair
    total = sum(z["categories"].values())
    share = lambda k: z["categories"].get(k, 0.0) / total if total else 0.0  # noqa: E731
    where = f" on {prof['machine']['cpu_model']}" if prof.get("machine") else ""
    plain = "plain PyTorch through torch.compile" if compiled else "plain PyTorch"
    rank = "the trainer rank with model.compile" if compiled else "the trainer rank"
    text = (f"A profile of the phase{where} (section above) puts {share('matmul'):.0%} of {rank}'s time in "
            f"matrix multiplies, {share('attention'):.0%} in attention, {share('log-softmax'):.0%} in the "
            f"log-softmax, {share('optimizer'):.0%} in optimizer operators, {share('copies and casts'):.0%} in copies "
            f"and casts, {share('generated kernels'):.0%} in generated kernels, "
            f"{share('elementwise and other operators'):.0%} in other element-wise operators and "
            f"{share('outside operators'):.0%} outside any operator")
    extra = {k: z["categories"].get(k, 0.0) - e["categories"].get(k, 0.0) for k in z["categories"]}
    top = sorted((k for k in extra if extra[k] > 0), key=lambda k: -extra[k])[:3]
    text += (f". {plain[0].upper() + plain[1:]} on the same work reaches {e['fraction_of_bf16_peak']:.1%} of that "
             f"machine's bf16 peak against the rank's {z['fraction_of_bf16_peak']:.1%}; the rank's extra "
             f"{z['seconds'] - e['seconds']:.1f} s ({z['seconds'] / e['seconds'] - 1:.0%}) is mostly "
             + ", ".join(f"{k} (+{extra[k]:.1f} s)" for k in top)
             + ": ZeRO-3's float32 master weights (the optimizer's element-wise passes over the flat shard, the "
             "casts to and from bf16, the gradient copies into the shard)"
             + ("" if compiled else " and its per-module hooks"))
    uncompiled = prof["sides"].get("zero3"), prof["sides"].get("eager")
    if compiled and all(uncompiled):
        text += (f". Without torch.compile the rank reached {uncompiled[0]['fraction_of_bf16_peak']:.1%} and plain "
                 f"PyTorch {uncompiled[1]['fraction_of_bf16_peak']:.1%}")
    elif not compiled and prof["sides"].get("compiled"):
        c = prof["sides"]["compiled"]
        text += f"; torch.compile of the plain model reached {c['fraction_of_bf16_peak']:.1%}, {e['seconds'] / c['seconds']:.2f}x plain PyTorch"
    return text + ". "


def next_train_levers(prof: dict | None) -> str:
    """The next levers for the train phase, as far as the profile can name them."""
    pair = compared(prof) if prof else None
    if not pair:
        return ("Next lever: a profile of the phase (`python -m rlhf.bench.profile`) to split its time between "
                "matmuls, attention, the optimizer and ZeRO-3's hooks.")
    z, e, compiled = pair
    plain = "plain PyTorch through torch.compile" if compiled else "plain PyTorch"
    attention = e["categories"].get("attention", 0.0) / max(sum(e["categories"].values()), 1e-9)
    return (f"Next levers, in the order the profile ranks them: ZeRO-3's overhead over {plain} "
            f"({z['seconds'] / e['seconds']:.2f}x its time: the casts between float32 master weights and bf16, "
            + ("" if compiled else "the per-module hooks, ")
            + "the gradient and weight copies around each step), then attention "
            f"({attention:.0%} of {plain}'s time, for a small share of the FLOPs; transformers' eager "
            "attention instead of torch's CPU flash kernel was measured too: lever *eager attention*). "
            f"{plain[0].upper() + plain[1:]}'s own fraction of the peak bounds what removing ZeRO-3's overhead alone "
            "can reach.")


def best_lever(runs: list[dict], applied: list[str] = ()) -> tuple[dict, float] | None:
    """The fastest lever of this code that is not a baseline, a setting it replaced or one the benchmark
    run already uses (its overrides all among `applied`), with its speed-up; None when none is faster."""
    base = next((r["seconds"] for r in runs if r["lever"].startswith("baseline") and r["code"] == "this code"), None)
    tried = [r for r in runs if r["code"] == "this code" and not r["lever"].startswith(("baseline", "before"))
             and not set(r.get("overrides", [])) <= set(applied)]
    if not base or not tried:
        return None
    best = min(tried, key=lambda r: r["seconds"])
    return (best, base / best["seconds"]) if base > best["seconds"] else None


def untried_with(lever: dict, run: dict) -> str:
    """A caveat when the run used torch.compile (model.compile) and the lever was measured without it."""
    if "model.compile=true" in run.get("overrides", []) and "model.compile=true" not in lever.get("overrides", []):
        return " (measured without model.compile, which this run uses: its gain with it is not measured)"
    return ""
