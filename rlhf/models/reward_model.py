"""Reward models: a transformer backbone with a linear value head read at the last real token.

Our checkpoints use transformers' `...ForSequenceClassification` layout with one label (backbone under
`model.`, head `score.weight`), so plain `AutoModelForSequenceClassification` loads them too. They
also carry OpenRLHF's sequence-regression fields in config.json (`normalize_reward`, `mean`, `std`,
`value_head_prefix`), so OpenRLHF loads them with `--value_head_prefix score`. OpenRLHF's own
checkpoints (head `value_head.weight` by default, bf16, sharded with an index, e.g.
PsychoCounsel-Llama3-8B-Reward) load here without installing openrlhf: the head is found by name
and renamed, and rewards are normalised as (r - mean) / std when config.json says normalize_reward,
as OpenRLHF's reward model does in eval mode.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from transformers import AutoConfig, AutoModelForSequenceClassification

HEAD = "score"
OPENRLHF_HEADS = ("value_head", "score")


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, 1]: the last position whose attention mask is 1 (any padding side)."""
    return attention_mask.size(1) - 1 - attention_mask.long().fliplr().argmax(dim=1, keepdim=True)


def reward_at_last_token(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """One scalar per sequence: the value head at the last position whose attention mask is 1
    (works for left and right padding, as OpenRLHF does)."""
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    hidden = model.base_model(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids
    ).last_hidden_state
    values = getattr(model, HEAD)(hidden).squeeze(-1)
    return values.gather(1, last_token_index(attention_mask)).squeeze(1)


def shared_prompt_rewards(model, prompts: list[list[int]], responses: list[list[int]], pad_id: int) -> torch.Tensor:
    """`reward_at_last_token` of prompt + response sequences, each distinct prompt run once: its KV
    cache is kept and every response to it continues from there (a round scores K responses to each
    speech, so K - 1 of every K prompt runs are saved). Responses are at least one token (the EOS a
    judged response ends with)."""
    distinct: dict[tuple, int] = {}
    index = torch.tensor([distinct.setdefault(tuple(p), len(distinct)) for p in prompts])
    unique = list(distinct)
    start, width = max(map(len, unique)), max(map(len, responses))
    prompt_ids = torch.full((len(unique), start), pad_id, dtype=torch.long)
    prompt_mask = torch.zeros_like(prompt_ids)
    for row, prompt in enumerate(unique):
        prompt_ids[row, start - len(prompt) :] = torch.tensor(prompt)
        prompt_mask[row, start - len(prompt) :] = 1
    response_ids = torch.full((len(responses), width), pad_id, dtype=torch.long)
    response_mask = torch.zeros_like(response_ids)
    for row, response in enumerate(responses):
        response_ids[row, : len(response)] = torch.tensor(response)
        response_mask[row, : len(response)] = 1
    device = next(model.parameters()).device
    prompt_ids, prompt_mask, response_ids, response_mask, index = (
        t.to(device) for t in (prompt_ids, prompt_mask, response_ids, response_mask, index)
    )
    cache = model.base_model(
        input_ids=prompt_ids,
        attention_mask=prompt_mask,
        position_ids=(prompt_mask.cumsum(-1) - 1).clamp(min=0),
        use_cache=True,
    ).past_key_values
    cache.batch_select_indices(index)  # one copy of its prompt's cache per response
    positions = prompt_mask.sum(-1)[index][:, None] + torch.arange(width, device=device)[None]
    hidden = model.base_model(
        input_ids=response_ids,
        attention_mask=torch.cat([prompt_mask[index], response_mask], dim=1),
        position_ids=positions,
        past_key_values=cache,
    ).last_hidden_state
    values = getattr(model, HEAD)(hidden).squeeze(-1)
    return values.gather(1, response_mask.sum(-1, keepdim=True) - 1).squeeze(1)


def weight_files(model_dir: Path) -> list[Path]:
    """The checkpoint's safetensors files: those its index names when it is sharded (as
    save_pretrained writes large models, OpenRLHF's included), else every *.safetensors."""
    index = model_dir / "model.safetensors.index.json"
    if not index.is_file():
        return sorted(model_dir.glob("*.safetensors"))
    names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    missing = [name for name in names if not (model_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{model_dir}: shard(s) {missing} named in {index.name} are missing")
    return [model_dir / name for name in names]


def find_value_head(model_dir: str | Path) -> str:
    """The name of the checkpoint's value head (`score` or OpenRLHF's `value_head`)."""
    model_dir = Path(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    if config.get("value_head_prefix"):
        return config["value_head_prefix"]
    for shard in weight_files(model_dir):
        with safe_open(str(shard), framework="pt") as handle:
            for prefix in OPENRLHF_HEADS:
                if f"{prefix}.weight" in handle.keys():
                    return prefix
    raise FileNotFoundError(f"{model_dir}: no value head ({' or '.join(OPENRLHF_HEADS)}.weight) in its safetensors")


def load_reward_model(
    model_dir: str | Path, dtype: torch.dtype = torch.float32, trust_remote_code: bool = False, attention: str = "sdpa"
):
    """Load one of our reward checkpoints or an OpenRLHF one for scoring. Returns (model, mean, std):
    rewards are normalised as (r - mean) / std when the checkpoint says `normalize_reward`.
    `attention`: transformers' attn_implementation (rlhf.device.attention)."""
    model_dir = Path(model_dir)
    head = find_value_head(model_dir)
    config = AutoConfig.from_pretrained(model_dir, num_labels=1, trust_remote_code=trust_remote_code)
    if head == HEAD:
        model = AutoModelForSequenceClassification.from_pretrained(
            model_dir,
            config=config,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            use_safetensors=True,
            attn_implementation=attention,
        )
    else:
        model = AutoModelForSequenceClassification.from_config(
            config, dtype=dtype, trust_remote_code=trust_remote_code, attn_implementation=attention
        )
        state = {}
        for shard in weight_files(model_dir):
            with safe_open(str(shard), framework="pt") as handle:
                for key in handle.keys():
                    state[key.replace(f"{head}.", f"{HEAD}.", 1) if key.startswith(f"{head}.") else key] = (
                        handle.get_tensor(key)
                    )
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{model_dir}: weights do not match the architecture "
                f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
            )
    model.eval()
    normalize = bool(getattr(config, "normalize_reward", False))
    mean = float(getattr(config, "mean", 0.0)) if normalize else 0.0
    std = float(getattr(config, "std", 1.0)) if normalize else 1.0
    return model, mean, std


def reward_config_fields(mean: float, std: float, normalize: bool) -> dict:
    """What config.json of a reward checkpoint carries beyond the backbone's config."""
    return {"normalize_reward": normalize, "mean": mean, "std": std, "value_head_prefix": HEAD, "num_labels": 1}
