"""Entry point: `python -m rlhf.launch [group=option ...] [key=value ...]`.

With no arguments: build a tiny model and tokenizer from the shipped counsel-chat text, SFT warm
start, reward model on upvote-derived pairs, then online DPO rounds on Ray (vLLM generators, a
reward scorer, DeepSpeed ZeRO-3 trainers), all on this machine with no network.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from rlhf.config import ConfigError, compose, load_config
from rlhf.data.errors import DataError
from rlhf.summary import summary_lines

log = logging.getLogger(__name__)
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token file written under ~
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def run_job(cfg: DictConfig) -> None:
    """One Hydra job: check the config, run the stages, print the summary."""
    try:
        pipeline = execute(cfg)
    except (ConfigError, DataError) as err:
        log.error("error: %s", err)
        sys.exit(2)
    for line in summary_lines(pipeline.summary()):
        log.info(line)


def execute(cfg: DictConfig):
    """The job's work on a composed config (tests call it with rlhf.config.compose): check it, run
    the stages, return the finished Pipeline. A config or data mistake raises ConfigError or
    DataError, before any actor starts where it can be seen up front; run_job turns those into
    exit status 2."""
    from rlhf.pipeline import Pipeline

    resolved = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    run = load_config(cfg)
    run.tracking.group = run.tracking.group or sweep_name()
    pipeline = Pipeline(run, resolved)
    pipeline.execute()
    return pipeline


def sweep_name() -> str | None:
    """In a Hydra multirun, the sweep directory's name: the W&B group of its runs (None in a single
    run, and outside a Hydra job)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    return Path(hydra_cfg.sweep.dir).name if hydra_cfg.mode == RunMode.MULTIRUN else None


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
