"""Checks of the model section before any actor starts: the built model fits vLLM's CPU kernels and
its own context, and a pretrained checkpoint never gets the learning rates of a model built from
scratch."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from rlhf.paths import resolve_path

if TYPE_CHECKING:
    from rlhf.config import RunConfig

CPU_HEAD_DIMS = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)  # vLLM's CPU attention kernels


def validate_model(run: RunConfig) -> list[str]:
    errors = []
    model = run.model
    built = model.path is None and model.gguf is None  # the tiny model, built at start-up
    if built and model.tiny.head_dim not in CPU_HEAD_DIMS:
        errors.append(f"model.tiny.head_dim={model.tiny.head_dim}: vLLM's CPU attention supports 32, 64, 80, ..., 256")
    if built and model.max_prompt_len + model.max_response_len > model.tiny.max_position_embeddings:
        errors.append("model.max_prompt_len + model.max_response_len exceeds model.tiny.max_position_embeddings")
    return errors + pretrained_with_tiny_rates(run)


def pretrained_with_tiny_rates(run: RunConfig) -> list[str]:
    """model=tiny/small carry learning rates for a randomly initialised 2-layer model (SFT 1e-3): one
    step at that rate wrecks pretrained weights. A model.path under those presets must be a model
    this project built (config.json says `rlhf_built`), or the user must pick model=hf."""
    model = run.model
    if model.name not in ("tiny", "small") or model.path is None:
        return []
    config = resolve_path(model.path) / "config.json"
    hub_name = model.path.count("/") == 1 and not model.path.startswith(("/", ".", "~"))
    if config.is_file():
        try:
            if json.loads(config.read_text()).get("rlhf_built"):
                return []
        except ValueError:
            pass  # unreadable: treated as pretrained
    elif not hub_name:
        return []  # no such directory: the pipeline says so, naming the path
    return [
        f"model.path={model.path} is a pretrained checkpoint, but model={model.name}'s settings are in effect "
        f"(sft.lr={run.sft.lr}, online.lr={run.online.lr}: rates for a model built from scratch, which wreck "
        f"pretrained weights). Use `model=hf model.path={model.path}` (pretrained settings: small rates with "
        "warm-up, the paper's DPO settings), or model=smollm2"
    ]
