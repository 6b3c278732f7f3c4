"""Results JSON -> analysis (rlhf.bench.analysis) -> PNG (here) and docs/benchmark.md (rlhf.bench.page).
Every figure on the page comes from the JSON; nothing is typed in by hand."""

from __future__ import annotations

import os
from pathlib import Path

from rlhf.bench.analysis import PHASES, analyse, merge
from rlhf.bench.page import page

__all__ = ["analyse", "console_summary", "merge", "page", "plot", "main"]


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
    analysis = analyse(merged)
    if len(loaded) > 1:
        merged["headline"] = analysis["headline"]  # the page's headline, as the benchmark writes it
        path.write_text(json.dumps(merged, indent=1))
    png = path.with_suffix(".png")
    plot(analysis, png)
    Path(args.doc).write_text(page(analysis, json_path=path, png_path=png, doc_path=Path(args.doc)))
    print(console_summary(analysis))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
