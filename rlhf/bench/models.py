"""The checkpoints both systems start from: a policy (built by the tiny builder for model=tiny or
model=small; the converted pretrained checkpoint for model=smollm2) and a reward model on the same
backbone with a fresh one-label head. Throughput does not depend on how well they are trained, so
the SFT and reward stages are not run."""

from __future__ import annotations

from pathlib import Path


def count_params(model_dir: str | Path) -> int:
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    import torch

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def build_checkpoints(run, out_dir: Path) -> tuple[str, str]:
    """Policy and reward-model directories for `run.model` (a RunConfig's model section)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rlhf.data.counsel_chat import read_questions
    from rlhf.models.reward_model import reward_config_fields
    from rlhf.models.tiny import build_tiny_model
    from rlhf.pipeline import resolve_path

    policy, reward = out_dir / "policy", out_dir / "reward_model"
    if run.model.gguf is not None:  # a packaged pretrained model (model=smollm2): its converted checkpoint
        from rlhf.models.gguf import convert

        policy = convert(run.model.gguf, resolve_path(run.model.cache_dir) / run.model.name)
    elif not (policy / "config.json").exists():
        questions = read_questions(resolve_path(run.data.path), "train")
        texts = [q.speech.text for q in questions] + [a.text for q in questions for a in q.answers]
        build_tiny_model(policy, texts, run.model.tiny, run.seed)
    if not (reward / "config.json").exists():
        torch.manual_seed(run.seed + 1)
        model = AutoModelForSequenceClassification.from_pretrained(policy, num_labels=1, use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(policy)
        model.config.pad_token_id = tokenizer.pad_token_id
        for key, value in reward_config_fields(0.0, 1.0, False).items():
            setattr(model.config, key, value)
        model.save_pretrained(reward, safe_serialization=True)
        tokenizer.save_pretrained(reward)
    return str(policy), str(reward)
