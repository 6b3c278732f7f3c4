"""Config for the benchmark's runs, composed from conf/ exactly as `python -m rlhf.launch` does."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def compose_run(overrides: list[str]):
    """(composed DictConfig, validated RunConfig) for Hydra-style overrides."""
    from hydra import compose, initialize_config_dir

    from rlhf.config import load_config

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=False)
    return cfg, load_config(cfg)
