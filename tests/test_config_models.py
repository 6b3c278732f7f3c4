"""Model presets: a pretrained checkpoint never runs with the tiny model's learning rates."""

from __future__ import annotations

import json

import pytest

from rlhf.config import ConfigError, load_config
from tests.conftest import compose


def pretrained_dir(tmp_path, built: bool = False):
    config = {"model_type": "llama", "vocab_size": 10}
    if built:
        config["rlhf_built"] = "tiny"
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


def test_a_pretrained_path_under_the_tiny_preset_is_refused_with_what_to_use(tmp_path):
    path = pretrained_dir(tmp_path)
    with pytest.raises(ConfigError, match=r"pretrained checkpoint.*sft\.lr=0\.001.*model=hf model\.path="):
        load_config(compose([f"model.path={path}"]))
    with pytest.raises(ConfigError, match="model=hf"):
        load_config(compose(["model.path=HuggingFaceTB/SmolLM2-135M-Instruct"]))  # a hub name: pretrained


def test_models_this_project_built_keep_the_tiny_rates(tmp_path, tiny_model_dir):
    assert json.loads((tiny_model_dir / "config.json").read_text())["rlhf_built"] == "tiny"
    run = load_config(compose([f"model.path={tiny_model_dir}"]))
    assert run.sft.lr == pytest.approx(1e-3)
    load_config(compose([f"model.path={pretrained_dir(tmp_path, built=True)}"]))


def test_the_hf_preset_gives_pretrained_settings(tmp_path):
    run = load_config(compose(["model=hf", f"model.path={pretrained_dir(tmp_path)}"]))
    assert run.sft.lr <= 1e-5 and run.sft.warmup_steps > 0 and run.sft.schedule == "cosine"
    assert run.online.lr == pytest.approx(5e-7) and run.online.beta == pytest.approx(0.1)
    with pytest.raises(ConfigError, match="missing required value"):
        load_config(compose(["model=hf"]))


def test_smollm2_preset_is_bf16_skips_sft_and_answers_whole():
    run = load_config(compose(["model=smollm2"]))
    assert run.device.dtype == "bfloat16" and run.stages == ("reward", "online_dpo")
    assert run.model.max_response_len >= 128 and run.online.samples_per_speech >= 4
    assert run.online.lr < 1e-4 and run.model.gguf.file.endswith(".gguf")


def test_recipe_order_is_checked():
    with pytest.raises(ConfigError, match="recipe="):
        load_config(compose(["recipe=[online_dpo,reward]"]))
    with pytest.raises(ConfigError, match="recipe="):
        load_config(compose(["recipe=[sft,eval]"]))
