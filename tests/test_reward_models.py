"""Reward sources: our checkpoints, OpenRLHF-format checkpoints (no openrlhf installed), and a
remote /get_reward server on loopback, all scoring the same way."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests
import torch
import uvicorn
from safetensors.torch import load_file, save_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rlhf.models.reward_model import find_value_head, load_reward_model, reward_config_fields
from rlhf.scoring.remote import RemoteRewardClient, RemoteRewardError
from rlhf.scoring.reward_actor import RewardScorer
from rlhf.scoring.scorers import RemoteScorer
from rlhf.scoring.server import create_app
from rlhf.training.batching import Encoder

ITEMS = [("I can't sleep and I worry all the time.", "That sounds exhausting. What keeps you up?"),
         ("My partner and I argue every day.", "ok"),
         ("I feel worthless.", "Many people feel this way; tell me more about when it started.")]


@pytest.fixture(scope="module")
def reward_dir(tiny_model_dir, tmp_path_factory):
    """One of our reward checkpoints: the tiny backbone with a random head and normalisation."""
    out = tmp_path_factory.mktemp("rm")
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    for key, value in reward_config_fields(mean=0.5, std=2.0, normalize=True).items():
        setattr(model.config, key, value)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out


def openrlhf_copy(src, dst, head="value_head", normalize=True):
    """Rewrite a checkpoint the way OpenRLHF saves a reward model: head `value_head`, config with
    normalize_reward/mean/std and no value_head_prefix."""
    dst.mkdir()
    state = load_file(src / "model.safetensors")
    save_file({(k.replace("score.", f"{head}.") if k.startswith("score.") else k): v for k, v in state.items()},
              dst / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((src / "config.json").read_text())
    config.pop("value_head_prefix")
    config["architectures"] = ["LlamaForCausalLM"]
    config["normalize_reward"] = normalize
    (dst / "config.json").write_text(json.dumps(config))
    for path in src.iterdir():  # tokenizer files (incl. the chat template)
        if path.name not in ("model.safetensors", "config.json"):
            (dst / path.name).write_bytes(path.read_bytes())
    return dst


def scorer(path):
    return RewardScorer(str(path), device_type="cpu", threads=1, dtype="float32", batch_size=2,
                        system_prompt="Be kind.", max_prompt_len=128, max_response_len=64)


def test_our_checkpoint_loads_with_plain_transformers_and_ours(reward_dir):
    plain = AutoModelForSequenceClassification.from_pretrained(reward_dir)
    ours, mean, std = load_reward_model(reward_dir)
    assert (mean, std) == (0.5, 2.0)
    assert torch.equal(plain.score.weight, ours.score.weight)


def test_openrlhf_checkpoint_scores_like_ours(reward_dir, tmp_path):
    converted = openrlhf_copy(reward_dir, tmp_path / "openrlhf")
    assert find_value_head(converted) == "value_head"
    assert scorer(converted).score(ITEMS) == pytest.approx(scorer(reward_dir).score(ITEMS), abs=1e-5)


def test_normalisation_is_applied_only_when_the_checkpoint_says_so(reward_dir, tmp_path):
    raw = scorer(openrlhf_copy(reward_dir, tmp_path / "raw", normalize=False)).score(ITEMS)
    normalised = scorer(reward_dir).score(ITEMS)
    assert normalised == pytest.approx([(r - 0.5) / 2.0 for r in raw], abs=1e-5)


def test_a_shared_prompt_scores_like_full_sequences(reward_dir):
    """model.share_prompt in the reward actors: K responses to one speech continue from its prompt's
    KV cache and get the rewards their full sequences get."""
    items = [ITEMS[0], (ITEMS[0][0], "ok"), ITEMS[1], (ITEMS[0][0], "Tell me more."), ITEMS[2], ITEMS[2]]
    shared = RewardScorer(str(reward_dir), device_type="cpu", threads=1, dtype="float32", batch_size=4,
                          system_prompt="Be kind.", max_prompt_len=128, max_response_len=64, share_prompt=True)
    assert shared.score(items) == pytest.approx(scorer(reward_dir).score(items), abs=1e-5)


def test_a_compiled_scorer_scores_like_the_eager_one(reward_dir):
    """model.compile in the reward actors: the backbone runs through torch.compile (dynamic shapes),
    over batches of other sizes and widths, with the eager rewards."""
    items = [ITEMS[0], (ITEMS[0][0], "ok"), ITEMS[1], (ITEMS[0][0], "Tell me more."), ITEMS[2]]
    compiled = RewardScorer(str(reward_dir), device_type="cpu", threads=1, dtype="float32", batch_size=4,
                            system_prompt="Be kind.", max_prompt_len=128, max_response_len=64,
                            share_prompt=True, compile=True)
    assert compiled.model.base_model._compiled_call_impl is not None  # noqa: SLF001 - what .compile() sets
    eager = scorer(reward_dir)
    for batch in (items, items[1:4], ITEMS):
        assert compiled.score(batch) == pytest.approx(eager.score(batch), abs=1e-4)
    assert compiled.score_texts(["Be kind. I feel low. Tell me more."]) == pytest.approx(
        eager.score_texts(["Be kind. I feel low. Tell me more."]), abs=1e-4)


def test_reward_is_read_at_the_last_real_token_whatever_the_padding(reward_dir):
    scores = scorer(reward_dir)
    alone = [scores.score([item])[0] for item in ITEMS]
    assert scores.score(ITEMS) == pytest.approx(alone, abs=1e-5)  # batched with padding == one by one


def test_missing_value_head_is_a_clear_error(tiny_model_dir):
    with pytest.raises(FileNotFoundError, match="no value head"):
        find_value_head(tiny_model_dir)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(reward_dir):
    """The reward server on a loopback socket bound here (no other process can take the port between
    choosing and binding it), ready before any test uses it, or the fixture fails saying so."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(scorer(reward_dir)), log_level="error", lifespan="off"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not srv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            srv.should_exit = True
            pytest.fail(f"the reward server did not start on 127.0.0.1:{port} (thread alive: {thread.is_alive()})")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)
    sock.close()


def test_remote_server_speaks_openrlhf_api_and_matches_local_scores(server, reward_dir):
    local = scorer(reward_dir)
    answer = requests.post(f"{server}/get_reward", json={"query": [local.encoder.scoring_text(s, r) for s, r in ITEMS]},
                           timeout=30).json()
    assert set(answer) == {"rewards"} and len(answer["rewards"]) == len(ITEMS)
    encoder = Encoder(AutoTokenizer.from_pretrained(reward_dir), "Be kind.", 128, 64)
    remote = RemoteScorer(RemoteRewardClient(f"{server}/get_reward", batch_size=2), encoder)
    assert remote.score(ITEMS) == pytest.approx(local.score(ITEMS), abs=1e-5)


def test_remote_client_sends_the_key_as_a_header_only(server):
    client = RemoteRewardClient(f"{server}/get_reward", api_key="sk-not-a-real-key")
    assert client.session.headers["Authorization"] == "Bearer sk-not-a-real-key"
    assert len(client.get_rewards(["hello"])) == 1


def test_reward_server_binds_to_loopback_unless_told_otherwise():
    from rlhf.scoring.server import build_parser

    assert build_parser().parse_args(["--model", "m"]).host == "127.0.0.1"


def test_remote_client_retries_then_fails_clearly():
    port = free_port()
    client = RemoteRewardClient(f"http://127.0.0.1:{port}/get_reward", retries=2, backoff_s=0.01, timeout_s=1)
    with pytest.raises(RemoteRewardError, match="no answer after 3 attempts"):
        client.get_rewards(["hello"])
