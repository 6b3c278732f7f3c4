"""Results JSON -> analysis: means over the timed rounds, ratios against the peers, the headline and
the targets; `merge` joins several results files. Everything on the page is computed here from the JSON."""

from __future__ import annotations

import math
import statistics

from rlhf.bench.flops import mfu, train_flops, update_flops

PHASES = ("generate", "score", "train", "weight_sync")
TARGETS = {"rounds_per_hour_vs_trl": 2.0, "weight_sync_share": 0.05, "generate_vs_hf": 3.0,
           "train_tokens_vs_trl": 1.0, "train_fraction_of_bf16_peak": 0.40}


def summarise(run: dict, speeches: int, params: int, peak: dict, samples: int = 2) -> dict | None:
    """Means over the timed (non-warm-up) rounds of `run` with `speeches` speeches per round and
    `samples` samples per speech (TRL's 2 unless asked)."""
    rounds = [r for r in run["rounds"] if r["speeches"] == speeches and not r["warmup"]
              and r.get("samples_per_speech", 2) == samples]
    if not rounds:
        return None
    mean = lambda key: statistics.fmean(r[key] for r in rounds)  # noqa: E731
    wall = mean("round_seconds")
    phases = {p: statistics.fmean(r["seconds"].get(p, 0.0) for r in rounds) for p in PHASES}
    generated, trained = mean("tokens_generated"), mean("trained_tokens")
    # model FLOPs count the tokens the model ran: a prompt shared by a pair's two responses once
    computed = statistics.fmean(r.get("computed_tokens", r["trained_tokens"]) for r in rounds)
    # the update's FLOPs as the ranks counted them (rlhf.training.flops); older results: 8 N per token run
    counted = all(r.get("forward_flops") for r in rounds)
    flops = (update_flops(statistics.fmean(r["forward_flops"] for r in rounds)) if counted
             else train_flops(params, int(computed)))
    peak = run.get("peak", peak)  # runs merged from another results file keep their own run's peak
    peak_flops = peak.get(run["dtype"], {}).get("flops_per_s", 0.0)
    return {
        "system": run["system"], "model": run.get("model"), "dtype": run["dtype"], "samples_per_speech": samples,
        "trl_setting": run.get("trl_setting"), "trl_settings": run.get("settings"),
        "engines": run.get("engines"), "ranks": run.get("ranks"), "speeches": speeches, "rounds": len(rounds),
        "round_seconds": wall, "rounds_per_hour": 3600.0 / wall if wall else 0.0, "phases": phases,
        "other_seconds": max(wall - sum(phases.values()), 0.0),
        "tokens_generated": generated, "trained_tokens": trained, "computed_tokens": computed,
        "generated_tokens_per_s": generated / wall if wall else 0.0,
        "trained_tokens_per_s": trained / wall if wall else 0.0,
        "generate_phase_tokens_per_s": generated / phases["generate"] if phases["generate"] else 0.0,
        "weight_sync_share": phases["weight_sync"] / wall if wall else 0.0,
        "optimizer_steps": mean("optimizer_steps"), "pairs": mean("pairs"),
        "startup_seconds": run.get("startup_seconds"), "load_avg_1m": run.get("load_avg_1m"),
        "overrides": run.get("overrides", []),
        "warmup_seconds": [r["round_seconds"] for r in run["rounds"] if r["speeches"] == speeches and r["warmup"]
                           and r.get("samples_per_speech", 2) == samples],
        "train_flops": flops, "flops_counted": counted,
        "step_seconds": statistics.fmean(r.get("step_seconds", 0.0) for r in rounds),
        "train_phase_flops_per_s": flops / phases["train"] if phases["train"] else 0.0,
        "train_mfu": mfu(flops, phases["train"], peak_flops),
        "train_mfu_vs_fp32_peak": mfu(flops, phases["train"], peak.get("float32", {}).get("flops_per_s", 0)),
        "train_mfu_vs_bf16_peak": mfu(flops, phases["train"], peak.get("bfloat16", {}).get("flops_per_s", 0)),
    }


def analyse(results: dict) -> dict:
    meta, peak, models = results["meta"], results["peak"], results["models"]
    settings = meta["settings"]
    head_layout = tuple(settings["layouts"][0])
    first_m = settings["speeches"][0]
    out = {"meta": meta, "peak": peak, "models": models, "comparisons": [], "speech_scaling": [],
           "layout_scaling": [], "hf_generate": [], "targets": []}
    for model, info in models.items():
        params = info["params"]
        runs = [r for r in results["runs"] if r.get("model") == model]
        heads = [r for r in runs if r["system"] == "ours" and (r["engines"], r["ranks"]) == head_layout]
        head = heads[0] if heads else None
        peers = [r for r in runs if r["system"] == "trl"]
        # the comparison's peer: TRL at its best settings, the faster of those tried (checkpointing off, with
        # and without torch_compile); an older results file has only TRL's default
        # (of a merged file: the TRL runs measured beside our leading run)
        source = [r for r in peers if r.get("file", 0) == (head or {}).get("file", 0)] or peers
        tried = sorted((r for r in source if r.get("trl_setting", "best") != "default"),
                       key=lambda r: (summarise(r, first_m, params, peak) or {"round_seconds": math.inf})["round_seconds"])
        peer, other = (tried + [None, None])[:2]
        default = next((r for r in peers if r.get("trl_setting") == "default"), None)
        ours = summarise(head, first_m, params, peak) if head else None
        trl = summarise(peer, first_m, params, peak) if peer else None
        if ours:
            row = {"model": model, "params": params, "dtype": info["dtype"], "speeches": first_m,
                   "ours": ours, "trl": trl,
                   "trl_default": summarise(default, first_m, params, peak) if default else None,
                   "trl_other": summarise(other, first_m, params, peak) if other else None,
                   # other K (not equal work): from the first run of the layout that has them (a merged file's)
                   "ours_more_samples": [x for k in sorted({r.get("samples_per_speech", 2) for h in heads
                                                            for r in h["rounds"]} - {2})
                                         if (x := next((s for h in heads if (s := summarise(h, first_m, params,
                                                                                               peak, k))), None))]}
            if trl:
                row["speedup"] = trl["round_seconds"] / ours["round_seconds"]
                # trained tokens per second of the train phase alone (both sides train the same pairs' tokens)
                row["train_phase_tokens_ratio"] = ((ours["trained_tokens"] / ours["phases"]["train"]) /
                                                   max(trl["trained_tokens"] / trl["phases"]["train"], 1e-9)
                                                   if ours["phases"]["train"] and trl["phases"]["train"] else 0.0)
                row["generated_tokens_per_s_ratio"] = ours["generated_tokens_per_s"] / max(trl["generated_tokens_per_s"], 1e-9)
                row["trained_tokens_per_s_ratio"] = ours["trained_tokens_per_s"] / max(trl["trained_tokens_per_s"], 1e-9)
            out["comparisons"].append(row)
        if head and model == next(iter(models)):
            # every run of this layout (a merged sweep file adds speech counts); the first run with a value wins
            for m in sorted({r["speeches"] for h in heads for r in h["rounds"]}):
                s = next((x for x in (summarise(h, m, params, peak) for h in heads) if x), None)
                if s:
                    out["speech_scaling"].append(s)
            seen = set()
            for run in runs:
                if run["system"] == "ours" and (run["engines"], run["ranks"]) not in seen:
                    s = summarise(run, first_m, params, peak)
                    if s:
                        seen.add((run["engines"], run["ranks"]))
                        out["layout_scaling"].append(s)
        for hf in results.get("hf_generate", []):
            if hf["model"] == model and ours and not any(h["model"] == model for h in out["hf_generate"]):
                out["hf_generate"].append({**hf, "ours_generate_phase_tokens_per_s": ours["generate_phase_tokens_per_s"],
                                           "ratio": ours["generate_phase_tokens_per_s"] / max(hf["tokens_per_s"], 1e-9)})
    out["targets"] = targets(out)
    out["headline"] = headline(out)
    return out


def headline(a: dict) -> dict | None:
    """The real model at equal work against TRL at its best settings, as plain numbers (fractions
    0-1): the figures users quote. The first real (pretrained) model measured, else the first model."""
    rows = [c for c in a["comparisons"] if c.get("trl")]
    if not rows:
        return None
    c = next((r for r in rows if r["model"] not in ("tiny", "small")), rows[0])
    o, t = c["ours"], c["trl"]
    gen = next((h["ratio"] for h in a["hf_generate"] if h["model"] == c["model"]), None)
    return {"model": c["model"], "dtype": c["dtype"], "speeches": c["speeches"],
            "rounds_per_hour_ratio_vs_trl": c["speedup"],
            "trl_gradient_checkpointing": bool((t.get("trl_settings") or {}).get("gradient_checkpointing", True)),
            "trl_torch_compile": bool((t.get("trl_settings") or {}).get("torch_compile", False)),
            "trl_attention": (t.get("trl_settings") or {}).get("attn_implementation"),
            "train_fraction_of_bf16_peak": o["train_mfu_vs_bf16_peak"],
            "train_tokens_per_s_ratio_vs_trl": c["train_phase_tokens_ratio"],
            "generation_ratio_vs_hf_generate": gen, "weight_sync_share": o["weight_sync_share"]}


def targets(a: dict) -> list[dict]:
    rows = []
    for c in a["comparisons"]:
        label = f"{c['model']} ({c['dtype']})"
        if "speedup" in c:
            v = c["speedup"]
            rows.append({"target": f"rounds/hour vs TRL >= {TARGETS['rounds_per_hour_vs_trl']:g}x, {label}",
                         "value": f"{v:.2f}x", "met": v >= TARGETS["rounds_per_hour_vs_trl"],
                         "gap": None if v >= TARGETS["rounds_per_hour_vs_trl"]
                         else f"{TARGETS['rounds_per_hour_vs_trl'] / v:.2f}x short"})
        if "train_phase_tokens_ratio" in c:
            v = c["train_phase_tokens_ratio"]
            rows.append({"target": f"train-phase trained tokens/s >= TRL's, {label}", "value": f"{v:.2f}x",
                         "met": v >= TARGETS["train_tokens_vs_trl"],
                         "gap": None if v >= TARGETS["train_tokens_vs_trl"] else f"{1 / v:.2f}x short"})
        if c["dtype"] == "bfloat16":
            v = c["ours"]["train_mfu_vs_bf16_peak"]
            goal = TARGETS["train_fraction_of_bf16_peak"]
            rows.append({"target": f"train phase >= {goal:.0%} of the bf16 matmul peak, {label}", "value": f"{v:.1%}",
                         "met": v >= goal, "gap": None if v >= goal else f"{goal / v:.2f}x short" if v else "no data"})
        share = c["ours"]["weight_sync_share"]
        rows.append({"target": f"weight sync < {TARGETS['weight_sync_share']:.0%} of a round, {label}",
                     "value": f"{share:.1%}", "met": share < TARGETS["weight_sync_share"],
                     "gap": None if share < 0.05 else f"{share / TARGETS['weight_sync_share']:.1f}x the budget"})
    for h in a["hf_generate"]:
        v = h["ratio"]
        rows.append({"target": f"generation tokens/s >= {TARGETS['generate_vs_hf']:g}x HF generate, "
                               f"{h['model']} ({h['dtype']})",
                     "value": f"{v:.2f}x", "met": v >= TARGETS["generate_vs_hf"],
                     "gap": None if v >= TARGETS["generate_vs_hf"] else f"{TARGETS['generate_vs_hf'] / v:.2f}x short"})
    return rows


def merge(results: list[dict]) -> dict:
    """Several results files as one: the first file's settings; later files add models, or runs of a
    model the first file lacks (TRL's default row, other K), where the first file's runs, and its
    plain-generate baseline, win (each run notes its `file`: the peer is TRL as measured beside the leading run) (each run keeps the matmul peak measured in its own process). Comparisons need the same first speeches value,
    first layout and batch size."""
    import copy

    base = copy.deepcopy(results[0])
    key = lambda r: (r["meta"]["settings"]["speeches"][0], r["meta"]["settings"]["layouts"][0],  # noqa: E731
                     r["meta"]["settings"]["batch_size"])
    base["meta"]["merged_commands"] = []
    for run in base["runs"]:
        run.setdefault("peak", base["peak"])
        run["file"] = 0
    for index, other in enumerate(results[1:], 1):
        if key(other) != key(base):
            raise ValueError("results to merge need the same first speeches value, first layout and batch size")
        base["meta"]["merged_commands"].append({"command": other["meta"]["command"], "date": other["meta"]["date"]})
        base["models"].update(other["models"])
        base["runs"] += [{**run, "peak": other["peak"], "file": index} for run in other["runs"]]
        base["hf_generate"] += other.get("hf_generate", [])
    return base
