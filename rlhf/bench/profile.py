"""python -m rlhf.bench.profile: where the train phase of one online round spends its time
(docs/benchmark.md, "Where the train phase's time goes").

The work is the levers' (rlhf.bench.levers): `--pairs` DPO pairs shaped like a round's, one pass
(reference log-probabilities, the optimizer steps, the metric pass after the steps). It runs on
each side in this process once to warm up, once timed and once under torch's profiler:

- **eager**: the model in plain PyTorch, an unsharded copy with AdamW on its own weights, the same
  losses and micro-batches: the most this code could get from removing ZeRO-3's overhead;
- **compiled** (with `--sides`): the eager side through torch.compile, what generated kernels buy;
- **ZeRO-3** (and, with `--sides`, **zero3_compiled**: the same with model.compile): a real TrainerRank, DeepSpeed ZeRO-3 at world size 1 (the *1 rank x 2 threads*
  layout: no traffic between ranks, but every gather/release hook and the fp32 master weights).

Each operator's own time (self CPU time) is put in a category (matmul, attention, log-softmax, ...);
model FLOPs (rlhf.bench.flops) over the unprofiled pass's seconds give the share of the bf16 matmul
peak measured in the same run. Results go to a JSON file that `python -m rlhf.bench.report` puts on
the page."""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import time
from collections import defaultdict
from dataclasses import asdict, replace
from pathlib import Path

from rlhf.bench.common import REPO_ROOT, compose_run, machine
from rlhf.bench.levers import pairs_like_a_round, preset

log = logging.getLogger(__name__)

# operator name -> category, first match wins (prefixes of torch's operator names)
CATEGORIES = (
    ("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear")),
    ("attention", ("aten::_scaled_dot_product", "aten::scaled_dot_product")),
    ("log-softmax", ("aten::_log_softmax", "aten::log_softmax")),
    ("optimizer", ("aten::_foreach_", "aten::_fused_adam", "aten::addcdiv", "aten::addcmul", "aten::lerp")),
    ("copies and casts", ("aten::copy_", "aten::_to_copy", "aten::to", "aten::clone", "aten::cat", "aten::contiguous",
                          "aten::fill_", "aten::zero_", "aten::zeros", "aten::empty", "aten::narrow", "aten::slice",
                          "aten::view", "aten::as_strided", "aten::set_", "aten::resize_")),
    ("collectives", ("gloo", "c10d::", "record_param_comms")),  # the CPU run: gloo
    # torch.compile's generated kernels run inside these regions and do not report themselves
    ("generated kernels", ("CompiledFunction", "Torch-Compiled Region", "## Call CompiledFxGraph", "cpp_fused")),
)


def category(name: str) -> str:
    for label, prefixes in CATEGORIES:
        if name.startswith(prefixes):
            return label
    return "elementwise and other operators" if name.startswith("aten::") else "other recorded"


def train_pass(reference_fn, step_fn, metric_fn, pairs: list, plan: list, metric_pairs: int) -> None:
    """The train phase of a round: reference log-probabilities once, the steps, metrics after (the round
    reads the metrics before from vLLM's sampling log-probabilities)."""
    items = reference_fn(pairs)
    probe = items[:metric_pairs]
    for step in plan(items):
        step_fn(step)
    metric_fn(probe)


def steps_of(optim):
    """items -> the micro-batches of each optimizer step, for a world of one rank (both sides)."""
    from rlhf.training.batching import accumulation_steps, plan_steps

    return lambda items: [s[0] for s in plan_steps(items, 1, optim.micro_batch, accumulation_steps(optim, 1), 1, 0)]


def profiled(run_pass) -> dict:
    """One warm-up pass, one timed pass, one pass under the profiler: seconds and seconds per category."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    run_pass()
    start = time.perf_counter()
    run_pass()
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run_pass()
    profiled_seconds = time.perf_counter() - start
    by_category: dict[str, float] = defaultdict(float)
    top = []
    for event in prof.key_averages():
        # the profiler's own annotations (ProfilerStep, user ranges) nest other operators: skip them
        if event.key.startswith(("ProfilerStep", "[memory]")):
            continue
        self_s = event.self_cpu_time_total / 1e6
        by_category[category(event.key)] += self_s
        top.append((event.key, self_s, event.count))
    top.sort(key=lambda t: -t[1])
    # time of the profiled pass in no operator: Python, hooks' own code, the profiler itself
    by_category["outside operators"] = max(0.0, profiled_seconds - sum(by_category.values()))
    return {"seconds": seconds, "profiled_seconds": profiled_seconds, "threads": torch.get_num_threads(),
            "categories": dict(by_category),
            "top_operators": [{"name": n, "self_s": s, "calls": c} for n, s, c in top[:15]]}


def zero3_side(run, policy: str, pairs: list, pad_id: int, metric_pairs: int, compiled: bool = False) -> dict:
    """The real trainer rank, alone in a ZeRO-3 world of one (gloo on this host); `compiled`: with
    model.compile (the warm-up pass compiles)."""
    import torch

    from rlhf.training.batching import accumulation_steps
    from rlhf.training.trainer import TrainerRank

    optim = run.online
    rank = TrainerRank(0, 1, run.device.type, 2, run.seed)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    rank.init_process_group("127.0.0.1", port)
    rank.load("dpo", policy, settings=asdict(optim), accumulation=accumulation_steps(optim, 1),
              dtype=run.device.dtype, reference_dir=policy, gradient_checkpointing=run.model.gradient_checkpointing,
              attention=str(run.model.attention), share_prompt=run.model.share_prompt, zero=vars(run.device.zero),
              compile=compiled)
    micro = optim.micro_batch

    def reference(items):
        ordered = sorted(items, key=len)
        chunks = [ordered[i : i + micro] for i in range(0, len(ordered), micro)]
        sums = [pair for chunk in rank.reference_logprobs(chunks, pad_id) for pair in chunk]
        return [replace(p, reference=(sum(c), sum(r))) for p, (c, r) in zip(ordered, sums)]

    def metrics(items):
        rank.evaluate([items[i : i + micro] for i in range(0, len(items), micro)], pad_id)

    try:
        return profiled(lambda: train_pass(reference, lambda s: rank.train_step(s, pad_id), metrics, pairs, steps_of(optim),
                                           metric_pairs))
    finally:
        rank.shutdown()
        torch.set_num_threads(2)


def eager_side(run, policy: str, pairs: list, pad_id: int, metric_pairs: int, compiled: bool = False) -> dict:
    """The same pass in plain PyTorch: one unsharded policy, a frozen reference, AdamW; `compiled`:
    both models through torch.compile (inductor's generated kernels; the warm-up pass compiles)."""
    import torch
    from transformers import AutoModelForCausalLM

    from rlhf import device
    from rlhf.training import losses
    from rlhf.training.batching import collate_pairs, collate_shared

    optim = run.online
    collate = collate_shared if run.model.share_prompt else collate_pairs  # the trainer rank's layout
    torch.set_num_threads(2)
    dtype = device.torch_dtype(run.device.dtype)
    load = dict(dtype=dtype, use_safetensors=True, attn_implementation=str(run.model.attention))
    model = AutoModelForCausalLM.from_pretrained(policy, **load)
    reference_model = AutoModelForCausalLM.from_pretrained(policy, **load).eval()
    model.config.use_cache = reference_model.config.use_cache = False
    opt = torch.optim.AdamW(model.parameters(), lr=optim.lr, weight_decay=optim.weight_decay, foreach=True)
    if compiled:  # dynamic: every micro-batch has its own padded width
        model, reference_model = (torch.compile(m, dynamic=True) for m in (model, reference_model))
    settings, micro = asdict(optim), optim.micro_batch
    dpo = losses.LOSSES["dpo"]

    @torch.no_grad()
    def reference(items):
        ordered, out = sorted(items, key=len), []
        for i in range(0, len(ordered), micro):
            chunk = ordered[i : i + micro]
            logprobs, mask = losses.pair_logprobs(reference_model, collate(chunk, pad_id))
            sums = (logprobs.float() * mask).sum(-1).tolist()
            out += [replace(p, reference=(sums[j], sums[j + len(chunk)])) for j, p in enumerate(chunk)]
        return out

    @torch.no_grad()
    def metrics(items):
        model.eval()
        for i in range(0, len(items), micro):
            chunk = items[i : i + micro]
            dpo.compute(losses.Batch(model, collate(chunk, pad_id), chunk, settings, None))

    def step(micro_batches):
        model.train()
        for chunk in micro_batches:
            loss, _ = dpo.compute(losses.Batch(model, collate(chunk, pad_id), chunk, settings, None))
            (loss / len(micro_batches)).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), optim.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return profiled(lambda: train_pass(reference, step, metrics, pairs, steps_of(optim), metric_pairs))


def meta_model(path: str):
    """The checkpoint's model on the meta device: its shapes, without its weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))


def forward_flops_of(model, pairs: list, share_prompt: bool) -> int:
    """Forward FLOPs of the pairs as the trainer ranks count them (rlhf.training.flops)."""
    from rlhf.training.batching import collate_pairs, collate_shared
    from rlhf.training.flops import ModelShape, forward_flops

    shape = ModelShape.of(model)
    collate = collate_shared if share_prompt else collate_pairs
    return sum(forward_flops(shape, collate([pair], 0)) for pair in pairs)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m rlhf.bench.profile", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2", help="model preset; its converted or built checkpoint is used")
    p.add_argument("--pairs", type=int, default=32, help="pairs in the round (default 32, as the levers)")
    p.add_argument("--sides", default="eager,zero3",
                   help="comma list of eager, compiled (plain PyTorch through torch.compile), zero3, zero3_compiled "
                        "(the trainer rank with model.compile)")
    p.add_argument("--out", default=str(REPO_ROOT / "bench" / "results" / "profile.json"))
    args = p.parse_args(argv)
    unknown = set(args.sides.split(",")) - {"eager", "compiled", "zero3", "zero3_compiled"}
    if unknown:
        p.error(f"unknown --sides {sorted(unknown)}; expected eager, compiled, zero3, zero3_compiled")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    from rlhf.bench import flops, peak

    base = preset(args.model)
    _, run = compose_run(["stage=online_dpo", "reward.path=/unused", "tracking.wandb=false", *base])
    policy = str(run.model.path)
    model = meta_model(policy)
    params, vocab = sum(t.numel() for t in model.parameters()), model.config.vocab_size  # tied embeddings once
    pairs = pairs_like_a_round(args.pairs, run.model.max_prompt_len, run.model.max_response_len,
                               vocab=min(30000, vocab))
    tokens = sum(len(p) for p in pairs)
    forward = forward_flops_of(model, pairs, run.model.share_prompt)
    # model FLOPs count the tokens the model runs: with model.share_prompt, a pair's prompt once
    computed = sum(len(p.prompt) + len(p.chosen) + len(p.rejected) for p in pairs) if run.model.share_prompt else tokens
    metric_pairs = run.online.metric_pairs
    result = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "model": args.model, "dtype": run.device.dtype, "pairs": args.pairs, "trained_tokens": tokens,
              "computed_tokens": computed, "forward_flops": forward, "share_prompt": run.model.share_prompt,
              "params": params, "metric_pairs": metric_pairs, "micro_batch": run.online.micro_batch,
              "batch_size": run.online.batch_size, "base": base, "sides": {}}
    sides = {"eager": eager_side, "compiled": lambda *a: eager_side(*a, compiled=True), "zero3": zero3_side,
             "zero3_compiled": lambda *a: zero3_side(*a, compiled=True)}
    # ZeRO-3 last, compiled first: without model.compile DeepSpeed replaces torch's linear function in the
    # process when it loads
    for name in sorted(args.sides.split(","), key=lambda n: (n.startswith("zero3"), n == "zero3")):
        side = sides[name]
        log.info("profiling the train phase: %s", name)
        out = side(run, policy, pairs, 0, metric_pairs)
        out["load_avg_1m"] = os.getloadavg()[0]
        out["model_flops_per_s"] = flops.update_flops(forward) / out["seconds"]
        result["sides"][name] = out
    result["peak"] = peak.measure(2)
    bf16 = result["peak"]["bfloat16"]["flops_per_s"]
    for name, out in result["sides"].items():
        out["fraction_of_bf16_peak"] = out["model_flops_per_s"] / bf16
        log.info("%s: %.1f s, %.1f%% of the bf16 peak; %s", name, out["seconds"], 100 * out["fraction_of_bf16_peak"],
                 ", ".join(f"{k} {v:.1f}s" for k, v in sorted(out["categories"].items(), key=lambda kv: -kv[1])))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
