"""model=smollm2: the packaged GGUF becomes an ordinary HF checkpoint that transformers and vLLM
load alike (conversion, shapes, chat template, greedy tokens equal between the two engines)."""

from __future__ import annotations

import json

import pytest
import torch

from rlhf.config import load_config
from tests.conftest import compose


@pytest.fixture(scope="module")
def smollm2_dir():
    from rlhf.models.gguf import convert
    from rlhf.pipeline import resolve_path

    run = load_config(compose(["model=smollm2"]))
    return convert(run.model.gguf, resolve_path(run.model.cache_dir) / run.model.name), run


def test_conversion_is_an_ordinary_hf_checkpoint(smollm2_dir):
    from transformers import AutoConfig, AutoTokenizer

    path, run = smollm2_dir
    config = AutoConfig.from_pretrained(path)
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads, config.num_key_value_heads,
            config.head_dim, config.vocab_size, config.tie_word_embeddings) == (30, 576, 9, 3, 64, 49152, True)
    assert not hasattr(config, "quantization_config") or config.quantization_config is None
    record = json.loads((path / "conversion.json").read_text())
    assert record["gguf_sha256"] == run.model.gguf.sha256 and record["licence"] == "Apache-2.0"
    assert "Apache License" in (path / "LICENSE").read_text()
    assert (path / "generation_config.json").is_file() and list(path.glob("*.safetensors"))

    tokenizer = AutoTokenizer.from_pretrained(path)
    text = tokenizer.apply_chat_template([{"role": "system", "content": "Be kind."},
                                         {"role": "user", "content": "I feel low."}],
                                        add_generation_prompt=True, tokenize=False)
    assert text.endswith("<|im_start|>assistant\n") and "<|im_start|>system\nBe kind.<|im_end|>" in text
    assert tokenizer.eos_token == "<|im_end|>"

    from rlhf.models.gguf import convert

    before = (path / "model.safetensors").stat().st_mtime
    convert(run.model.gguf, path)  # converted already: nothing is redone
    assert (path / "model.safetensors").stat().st_mtime == before


def test_a_different_gguf_is_refused(smollm2_dir, tmp_path):
    from dataclasses import replace

    from rlhf.data.errors import DataError
    from rlhf.models.gguf import convert

    _, run = smollm2_dir
    with pytest.raises(DataError, match="SHA-256"):
        convert(replace(run.model.gguf, sha256="0" * 64), tmp_path / "other")
    with pytest.raises(DataError, match="package not installed"):
        convert(replace(run.model.gguf, package="no_such_package_here", sha256="1" * 64), tmp_path / "other")


def test_vllm_greedy_tokens_equal_transformers(smollm2_dir):
    """fp32 on both sides: the converted checkpoint means the same model to vLLM and transformers."""
    import ray
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlhf.generation.vllm_generator import Generator
    from rlhf.training.batching import Encoder
    from rlhf.workers.group import create_group
    from rlhf.workers.ray_session import start_ray

    path, run = smollm2_dir
    tokenizer = AutoTokenizer.from_pretrained(path)
    encoder = Encoder(tokenizer, run.system_prompt, run.model.max_prompt_len, run.model.max_response_len)
    prompts = [encoder.prompt("I can't sleep before exams and my heart races."),
               encoder.prompt("My partner and I argue about money every week.")]
    start_ray(None, 2, None, False)
    group = create_group(Generator, 1, device_type="cpu", cpus=0.5, gpus=0, strategy="PACK",
                                 args_for=lambda i: ((str(path),), dict(device_type="cpu", threads=2, seed=0,
                                                                          dtype="float32", max_model_len=512)))
    try:
        samples = ray.get(group.actors[0].generate.remote(prompts, n=1, temperature=0.0, top_p=1.0, max_tokens=24))
    finally:
        group.shutdown()
        ray.shutdown()
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    for prompt, (sample,) in zip(prompts, samples):
        hf = model.generate(torch.tensor([prompt]), max_new_tokens=24, do_sample=False,
                            pad_token_id=tokenizer.pad_token_id)[0, len(prompt):].tolist()
        assert sample.token_ids == hf[: len(sample.token_ids)] and len(sample.token_ids) > 8
