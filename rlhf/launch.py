"""Entry point: `python -m rlhf.launch [group=option ...] [key=value ...]`.

With no arguments: build a tiny model and tokenizer from the shipped counsel-chat text, SFT warm
start, reward model on upvote-derived pairs, then online DPO rounds on Ray (vLLM generators, a
reward scorer, DeepSpeed ZeRO-3 trainers), all on this machine with no network.
"""

from __future__ import annotations

import json
import os
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from rlhf.config import ConfigError, load_config
from rlhf.data.errors import DataError

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token file written under ~
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def print_summary(summary: dict) -> None:
    print("\n=== run summary ===")
    print(f"run directory : {summary['run_dir']}")
    print(f"layout        : {summary['trainer_ranks']} ZeRO-{summary['zero_stage']} trainer ranks, "
          f"{summary['generator_engines']} vLLM engine(s), reward: {summary['reward_source']} "
          f"({summary['reward_actors']} actor(s)), device {summary['device']}")
    for stage in ("sft", "reward_model", "offline_dpo"):
        if stage in summary:
            print(f"{stage:<14}: {json.dumps({k: v for k, v in summary[stage].items() if k != 'pair_derivation'}, default=str)}")
    rewards = summary.get("reward_per_round", [])
    if rewards:
        moves = " -> ".join(f"{r:+.3f}" for r in rewards)
        print(f"reward / round: {moves}  (mean reward of the round's samples, from the policy before that round's update)")
        print(f"final policy  : {summary.get('online_dpo', {}).get('final_policy')}")
    evaluation = summary.get("eval")
    if evaluation:
        from rlhf.eval.run import summary_lines

        for line in summary_lines(evaluation):
            print(line)
    print(f"metrics       : {summary['run_dir']}/metrics.jsonl, run_summary.json")
    print(f"W&B           : {summary.get('wandb') or 'off'}")
    print(f"wall time     : {summary['wall_seconds']:.0f}s")


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from rlhf.pipeline import Pipeline

    resolved = OmegaConf.to_container(cfg, resolve=True)
    try:
        run = load_config(cfg)
        pipeline = Pipeline(run, resolved)
        pipeline.execute()
    except (ConfigError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print_summary(pipeline.summary())


if __name__ == "__main__":
    main()
