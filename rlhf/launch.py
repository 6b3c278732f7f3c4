"""Entry point: `python -m rlhf.launch [group=option ...] [key=value ...]`.

With no arguments: build a tiny model and tokenizer from the shipped counsel-chat text, SFT warm
start, reward model on upvote-derived pairs, then online DPO rounds on Ray (vLLM generators, a
reward scorer, DeepSpeed ZeRO-3 trainers), all on this machine with no network.
"""

from __future__ import annotations

import json
import logging
import os
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from rlhf.config import ConfigError, compose, load_config
from rlhf.data.errors import DataError

log = logging.getLogger(__name__)
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token file written under ~
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def summary_lines(summary: dict) -> list[str]:
    """The run's closing summary at the console (numbers and paths only)."""
    lines = ["=== run summary ===", f"run directory : {summary['run_dir']}"]
    started = [f"{summary['trainer_ranks']} ZeRO-{summary['zero_stage']} trainer ranks" if summary["trainer_ranks"]
               else "", f"{summary['generator_engines']} vLLM engine(s)" if summary["generator_engines"] else "",
               f"{summary['reward_actors']} reward actor(s)" if summary["reward_actors"] else ""]
    if any(started):  # only what this run started (stage=build_prefs starts no trainer group)
        lines.append(f"layout        : {', '.join(filter(None, started))}, reward source {summary['reward_source']}, "
                     f"device {summary['device']}")
    for stage in ("sft", "reward_model", "offline_dpo"):
        if stage in summary:
            fields = {k: v for k, v in summary[stage].items() if k != "pair_derivation"}
            lines.append(f"{stage:<14}: {json.dumps(fields, default=str)}")
    rewards = summary.get("reward_per_round", [])
    if rewards:
        moves = " -> ".join(f"{r:+.3f}" for r in rewards)
        lines.append(f"reward / round: {moves}  (mean reward of the round's samples, from the policy before that "
                     "round's update)")
        lines.append(f"final policy  : {summary.get('online_dpo', {}).get('final_policy')}")
    evaluation = summary.get("eval")
    if evaluation:
        from rlhf.eval.run import summary_lines as eval_lines

        lines += eval_lines(evaluation)
    lines.append(f"metrics       : {summary['run_dir']}/metrics.jsonl, run_summary.json")
    lines.append(f"W&B           : {summary.get('wandb') or 'off'}")
    lines.append(f"wall time     : {summary['wall_seconds']:.0f}s")
    return lines


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def run_job(cfg: DictConfig) -> None:
    """One Hydra job: check the config, run the stages, print the summary."""
    from rlhf.pipeline import Pipeline

    resolved = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    try:
        run = load_config(cfg)
        pipeline = Pipeline(run, resolved)
        pipeline.execute()
    except (ConfigError, DataError) as err:
        log.error("error: %s", err)
        sys.exit(2)
    for line in summary_lines(pipeline.summary()):
        log.info(line)


def check_overrides(args: list[str]) -> None:
    """A single run's overrides against the schema before Hydra starts the job, so that a wrong type
    or an unknown key is reported like every other config mistake (exit status 2, the key named)
    rather than as a Hydra error. Runs with Hydra's own flags (--multirun, --cfg, --help, ...) or
    hydra.* overrides are left to Hydra."""
    if any(a.startswith("-") or a.startswith(("hydra.", "hydra/", "+hydra", "~hydra")) for a in args):
        return
    try:
        compose(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    """`python -m rlhf.launch` and the rlhf-launch console script."""
    check_overrides(sys.argv[1:])
    run_job()


if __name__ == "__main__":
    main()
