"""python -m rlhf.bench.levers: the train phase of one online round, alone, under each setting that
can make it faster (docs/benchmark.md, "Train-phase levers").

The work is fixed: `--pairs` DPO pairs with prompt and response lengths drawn like a round's (seeded),
one pass, the real trainer group (Ray actors, DeepSpeed ZeRO-3, the model's checkpoint). Each lever is
a set of config overrides, started fresh; its time covers everything the train phase does (reference
log-probabilities, the optimizer steps, the metric pass after them). Seconds and trained tokens per
second are written to a JSON file that `python -m rlhf.bench.report` puts on the results page.

Run against an older checkout (PYTHONPATH=<its root>) the same script times that code's train phase,
which is how the page shows what the code-level changes bought."""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

from rlhf.bench.common import REPO_ROOT, compose_run, machine

LEVERS = {  # name -> overrides on top of the model preset
    "baseline (2 ranks x 1 thread)": [],
    "1 rank x 2 threads": ["cluster.trainer.ranks=1", "cluster.trainer.threads=2", "cluster.trainer.cpus_per_rank=1"],
    "ZeRO-3 persistence threshold 1e5": ["device.zero.param_persistence_threshold=100000"],
    "ZeRO-3 overlap_comm": ["device.zero.overlap_comm=true"],
    "micro-batch 2": ["online.micro_batch=2"],
    "gradient checkpointing, micro-batch 8": ["model.gradient_checkpointing=true", "online.micro_batch=8"],
    # the settings this code replaced, as levers: their cost is the before/after
    "before: metric passes over every pair": ["online.metric_pairs=32"],
    "before: float32": ["device.dtype=float32"],
    "before: per-operation AdamW": ["device.zero.fused_optimizer=false"],
    "before: each pair's prompt run twice": ["model.share_prompt=false"],
    "before: ZeRO-3 gathers every parameter": ["device.zero.param_persistence_threshold=0"],
    "before: gradients reduce-scattered": ["device.zero.reduce_scatter=true"],
    "before: a metric pass over 8 pairs": ["online.metric_pairs=8"],
    "eager attention": ["model.attention=eager"],
    "torch.compile": ["model.compile=true"],
    "torch.compile + eager attention": ["model.compile=true", "model.attention=eager"],
    "torch.compile + eager attention + host memory kept": [
        "model.compile=true", "model.attention=eager", "device.keep_host_memory=true"],
}


def pairs_like_a_round(count: int, max_prompt: int, max_response: int, seed: int = 0, vocab: int = 30000):
    """Token-id pairs shaped like a round's: prompts of 60-100% of the prompt budget, responses of
    40-100% of the response budget (random ids below `vocab`: the arithmetic does not depend on them)."""
    from rlhf.training.batching import EncodedPair

    rng = random.Random(seed)
    ids = lambda n: [rng.randrange(100, vocab) for _ in range(n)]  # noqa: E731
    return [EncodedPair(ids(rng.randint(int(0.6 * max_prompt), max_prompt)),
                        ids(rng.randint(int(0.4 * max_response), max_response)),
                        ids(rng.randint(int(0.4 * max_response), max_response))) for _ in range(count)]


def time_train_phase(group, pairs: list, pad_id: int, metric_pairs: int) -> dict:
    """The train phase as the round runs it, with whatever the loaded code offers."""
    start = time.perf_counter()
    if hasattr(group, "with_reference"):  # reference log-probs once per pass; metrics after the steps
        items, _ = group.with_reference(pairs, pad_id)
        probe = items[:metric_pairs]
        for step in group.plan(items, 1, 0):
            group.train_step(step, pad_id)
        if probe:
            group.evaluate(probe, pad_id)
    else:  # older code: reference forward in every step, before/after passes over all pairs
        group.evaluate(pairs, pad_id)
        for step in group.plan(pairs, 1, 0):
            group.train_step(step, pad_id)
        group.evaluate(pairs, pad_id)
    return {"seconds": time.perf_counter() - start}


def measure(base: list[str], overrides: list[str], pairs: int, repeats: int) -> dict:
    import ray

    from rlhf import cluster
    from rlhf.training.group import TrainerGroup

    _, run = compose_run(["stage=online_dpo", "reward.path=/unused", "tracking.wandb=false", *base, *overrides])
    policy = run.model.path
    cluster.start_ray(None, 2, None, False)
    group = TrainerGroup(run)
    try:
        group.load("dpo", str(policy), run.online, reference_dir=str(policy))
        data = pairs_like_a_round(pairs, run.model.max_prompt_len, run.model.max_response_len)
        tokens = sum(2 * len(p.prompt) + len(p.chosen) + len(p.rejected) for p in data)
        times = [time_train_phase(group, data, 0, getattr(run.online, "metric_pairs", 8))["seconds"]
                 for _ in range(repeats + 1)][1:]  # the first pass warms up kernels and allocations
    finally:
        group.shutdown()
        ray.shutdown()
    seconds = min(times)
    return {"overrides": overrides, "seconds": seconds, "all_seconds": times, "trained_tokens": tokens,
            "tokens_per_s": tokens / seconds, "load_avg_1m": os.getloadavg()[0]}


def preset(model: str) -> list[str]:
    """The model preset with its checkpoint's path filled in (converted or built once)."""
    from rlhf.bench.models import build_checkpoints

    _, run = compose_run([f"model={model}", "stage=online_dpo", "model.path=/unused", "reward.path=/unused"])
    policy, _ = build_checkpoints(run, Path(os.environ.get("TMPDIR", "/tmp")) / f"levers-{model}")
    return [f"model={model}", f"model.path={policy}"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m rlhf.bench.levers", description=__doc__)
    p.add_argument("--model", default="smollm2", help="model preset; its converted or built checkpoint is used")
    p.add_argument("--base", default="", help="overrides that replace the preset, e.g. for older code without it: "
                                               "'model.path=DIR device.dtype=bfloat16 model.max_prompt_len=256 ...'")
    p.add_argument("--pairs", type=int, default=32, help="pairs in the round (default 32)")
    p.add_argument("--repeats", type=int, default=2, help="timed passes per lever (after one warm-up)")
    p.add_argument("--levers", help="comma list of lever names (default all)")
    p.add_argument("--label", default="this code", help="what code ran (e.g. a commit)")
    p.add_argument("--out", default=str(REPO_ROOT / "bench" / "results" / "levers.json"))
    args = p.parse_args(argv)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    chosen = [name.strip() for name in args.levers.split(",")] if args.levers else list(LEVERS)
    out_path = Path(args.out)
    results = json.loads(out_path.read_text()) if out_path.is_file() else {"model": args.model, "runs": []}
    if results.get("machine", machine()) != machine():
        p.error(f"{out_path} holds runs of another machine ({results['machine']['cpu_model']}); use another --out")
    results["machine"] = machine()
    base = args.base.split() if args.base else preset(args.model)
    for name in chosen:
        row = {"lever": name, "code": args.label, "pairs": args.pairs, "base": base,
               **measure(base, LEVERS[name], args.pairs, args.repeats)}
        print(f"{args.label} | {name}: {row['seconds']:.1f}s, {row['tokens_per_s']:.0f} trained tokens/s", flush=True)
        results["runs"] = [r for r in results["runs"] if (r["lever"], r["code"]) != (name, args.label)] + [row]
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
