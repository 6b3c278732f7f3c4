"""A reward checkpoint written the way OpenRLHF writes one (PsychoCounsel-Llama3-8B-Reward's format),
scored without openrlhf installed. The checkpoint is saved by a class of OpenRLHF's shape (the
backbone under `model.`, a bias-free `value_head`, mean/std buffers from config.json applied in eval
mode when `normalize_reward`) with transformers' save_pretrained in bf16, sharded with an index, as
OpenRLHF's save_model does; that class's own forward is the reference the loader must match."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, LlamaModel, LlamaPreTrainedModel

from rlhf.models.reward_model import find_value_head, load_reward_model
from rlhf.scoring.reward_actor import RewardScorer

MEAN, STD = 0.75, 2.5
TEXTS = ["<|user|>\nI can't sleep and I worry all the time.<|end|>\n<|assistant|>\nWhat keeps you up at night?",
         "<|user|>\nMy partner and I argue every day.<|end|>\n<|assistant|>\nok",
         "<|user|>\nI feel worthless.<|end|>\n<|assistant|>\nMany people feel this way; when did it start?"]


class RewardModel(LlamaPreTrainedModel):
    """OpenRLHF's reward model for a Llama backbone (openrlhf.models.model._get_reward_model)."""

    def __init__(self, config):
        super().__init__(config)
        self.model = LlamaModel(config)
        self.value_head = nn.Linear(config.hidden_size, 1, bias=False)
        self.register_buffer("mean", torch.tensor([float(getattr(config, "mean", 0.0))]), persistent=False)
        self.register_buffer("std", torch.tensor([float(getattr(config, "std", 1.0))]), persistent=False)
        self.post_init()  # transformers' own set-up of a PreTrainedModel (required by transformers 5)

    def forward(self, input_ids, attention_mask):
        position_ids = attention_mask.long().cumsum(-1) - 1
        position_ids.masked_fill_(attention_mask == 0, 1)
        hidden = self.model(input_ids, attention_mask=attention_mask, position_ids=position_ids).last_hidden_state
        values = self.value_head(hidden).squeeze(-1)
        eos = attention_mask.size(1) - 1 - attention_mask.long().fliplr().argmax(dim=1, keepdim=True)
        reward = values.gather(dim=1, index=eos).squeeze(1)
        if not self.training and self.config.normalize_reward:
            reward = (reward - self.mean) / self.std
        return reward

    @classmethod
    def load(cls, model_dir, dtype=torch.float32) -> RewardModel:
        """from_pretrained, then the buffers set from config.json as OpenRLHF's __init__ sets them
        (transformers 5 builds a model on the meta device, where __init__'s values are lost)."""
        model = cls.from_pretrained(model_dir, dtype=dtype)
        model.mean.fill_(float(getattr(model.config, "mean", 0.0)))
        model.std.fill_(float(getattr(model.config, "std", 1.0)))
        return model


def write_openrlhf_checkpoint(tiny_model_dir, out):
    """The tiny backbone with a value head, saved as OpenRLHF saves a reward model trained with
    --normalize_reward: bf16, config.json with normalize_reward/mean/std, safetensors in shards."""
    config = LlamaConfig.from_pretrained(tiny_model_dir)
    config.normalize_reward, config.mean, config.std = True, MEAN, STD
    torch.manual_seed(0)
    model = RewardModel(config)
    model.model.load_state_dict(LlamaForCausalLM.from_pretrained(tiny_model_dir).model.state_dict())
    nn.init.normal_(model.value_head.weight, std=0.5)  # wide enough that the texts' rewards differ
    model.to(torch.bfloat16).save_pretrained(out, max_shard_size="600KB", safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def openrlhf_dir(tiny_model_dir, tmp_path_factory):
    return write_openrlhf_checkpoint(tiny_model_dir, tmp_path_factory.mktemp("openrlhf-rm"))


def reference_rewards(model_dir, texts: list[str]) -> list[float]:
    """What OpenRLHF's /get_reward answers: its class's forward on the texts with EOS appended,
    right-padded, in float32."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = RewardModel.load(model_dir).eval()
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for t in texts]
    input_ids = torch.full((len(ids), max(map(len, ids))), tokenizer.pad_token_id)
    mask = torch.zeros_like(input_ids)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)], mask[row, : len(seq)] = torch.tensor(seq), 1
    with torch.no_grad():
        return model(input_ids, mask).tolist()


def scorer(path, dtype="float32") -> RewardScorer:
    return RewardScorer(str(path), device_type="cpu", threads=1, dtype=dtype, batch_size=2,
                        system_prompt="", max_prompt_len=128, max_response_len=64)


def test_the_checkpoint_is_written_as_openrlhf_writes_it(openrlhf_dir):
    index = json.loads((openrlhf_dir / "model.safetensors.index.json").read_text())
    shards = sorted(openrlhf_dir.glob("model-*.safetensors"))
    assert len(shards) >= 2 and set(index["weight_map"].values()) == {s.name for s in shards}
    assert "value_head.weight" in index["weight_map"] and "score.weight" not in index["weight_map"]
    assert all(name.startswith(("model.", "value_head.")) for name in index["weight_map"])
    config = json.loads((openrlhf_dir / "config.json").read_text())
    assert (config["normalize_reward"], config["mean"], config["std"]) == (True, MEAN, STD)
    assert config["dtype" if "dtype" in config else "torch_dtype"] == "bfloat16"
    assert "value_head_prefix" not in config


def test_a_sharded_openrlhf_checkpoint_scores_as_openrlhf_does(openrlhf_dir):
    assert find_value_head(openrlhf_dir) == "value_head"
    expected = reference_rewards(openrlhf_dir, TEXTS)
    assert max(expected) - min(expected) > 0.05  # distinct rewards: a misplaced head would show
    assert scorer(openrlhf_dir).score_texts(TEXTS) == pytest.approx(expected, abs=1e-4)
    # batched with padding == one by one
    assert [scorer(openrlhf_dir).score_texts([t])[0] for t in TEXTS] == pytest.approx(expected, abs=1e-4)


def test_its_normalisation_is_applied_as_openrlhf_applies_it(openrlhf_dir):
    model, mean, std = load_reward_model(openrlhf_dir)
    assert (mean, std) == (MEAN, STD)
    raw = RewardModel.load(openrlhf_dir).train()  # training mode: no normalisation
    tokenizer = AutoTokenizer.from_pretrained(openrlhf_dir)
    ids = tokenizer(TEXTS[0], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    with torch.no_grad():
        value = raw(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long)).item()
    assert scorer(openrlhf_dir).score_texts(TEXTS[:1])[0] == pytest.approx((value - MEAN) / STD, abs=1e-4)


def test_its_bf16_weights_load_unchanged_in_bf16(openrlhf_dir):
    from safetensors import safe_open

    model, _, _ = load_reward_model(openrlhf_dir, dtype=torch.bfloat16)
    index = json.loads((openrlhf_dir / "model.safetensors.index.json").read_text())
    with safe_open(str(openrlhf_dir / index["weight_map"]["value_head.weight"]), framework="pt") as shard:
        head = shard.get_tensor("value_head.weight")
    assert head.dtype == torch.bfloat16 and torch.equal(model.score.weight, head)
    assert model.model.embed_tokens.weight.dtype == torch.bfloat16
    expected = reference_rewards(openrlhf_dir, TEXTS)
    assert scorer(openrlhf_dir, "bfloat16").score_texts(TEXTS) == pytest.approx(expected, abs=0.1)


def test_a_missing_shard_is_named(openrlhf_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(openrlhf_dir, broken)
    index = json.loads((broken / "model.safetensors.index.json").read_text())
    lost = index["weight_map"]["value_head.weight"]
    (broken / lost).unlink()  # e.g. a download cut short
    with pytest.raises(FileNotFoundError, match=f"shard\\(s\\) \\['{lost}'\\] named in model.safetensors.index.json"):
        load_reward_model(broken)
