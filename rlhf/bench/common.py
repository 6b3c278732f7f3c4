"""Config for the benchmark's runs, composed from conf/ exactly as `python -m rlhf.launch` does."""

from __future__ import annotations

import os
import platform
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def compose_run(overrides: list[str]):
    """(composed DictConfig, validated RunConfig) for Hydra-style overrides."""
    from hydra import compose, initialize_config_dir

    from rlhf.config import load_config

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=False)
    return cfg, load_config(cfg)


def machine() -> dict:
    """What the figures were measured on (results pages compare runs of one machine only)."""
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpus": os.cpu_count(), "cpu_model": cpu, "memory_gib": round(mem, 1), "gpus": 0,
            "platform": platform.platform(), "python": platform.python_version()}
