"""The collective weight sync (sync.method=collective) on CPU, with gloo in NCCL's place: the same
group creation, bucket protocol and per-worker receive as on GPUs, and the group rebuilt after an
engine restart and after a trainer-group rebuild. Each time, the engine's greedy tokens must equal
transformers' greedy tokens on the trainer's current weights (written out as a checkpoint)."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
import ray
import torch

from rlhf.config import load_config
from rlhf.controller import OnlineDPO
from rlhf.pipeline import Pipeline
from rlhf.stages.online_dpo import recover_trainers, start_generators
from tests.conftest import compose

TOKENS = 12


@pytest.fixture(scope="module")
def pipe(tiny_model_dir, tmp_path_factory):
    run = load_config(compose([
        f"run_dir={tmp_path_factory.mktemp('sync')}", "stage=sft", f"model.path={tiny_model_dir}",
        "tracking.wandb=false", "sync.method=collective", "eval.every_rounds=0"]))
    pipe = Pipeline(run, {})
    pipe.start()
    yield pipe
    pipe.shutdown()
    ray.shutdown()


def hf_greedy(model_dir: str, prompts: list[list[int]]) -> list[list[int]]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    out = []
    for prompt in prompts:
        ids = model.generate(torch.tensor([prompt]), max_new_tokens=TOKENS, do_sample=False,
                             eos_token_id=model.config.eos_token_id, pad_token_id=model.config.pad_token_id)
        out.append(ids[0, len(prompt):].tolist())
    return out


def engine_greedy(pipe, prompts: list[list[int]]) -> list[list[int]]:
    samples = ray.get(pipe.ctx.generators.actors[0].generate.remote(prompts, n=1, temperature=0.0, top_p=1.0,
                                                                max_tokens=TOKENS))
    return [s[0].token_ids for s in samples]


def trainer_greedy(pipe, name: str, prompts: list[list[int]]) -> list[list[int]]:
    """Greedy tokens of the trainer group's current weights, through a checkpoint and transformers."""
    return hf_greedy(pipe.ctx.save_model(name), prompts)


def variant(model_dir: Path, out: Path, seed: int) -> str:
    """The model with noise on every weight: other greedy tokens, same architecture and tokenizer."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(model_dir, out)
    weights = load_file(out / "model.safetensors")
    generator = torch.Generator().manual_seed(seed)
    save_file({k: v + 0.05 * torch.randn(v.shape, generator=generator) for k, v in weights.items()},
              out / "model.safetensors", metadata={"format": "pt"})
    return str(out)


def load_trainers(pipe, model_dir: str) -> None:
    pipe.ctx.trainers.load("nll", model_dir, pipe.run.sft)


def controller(pipe) -> OnlineDPO:
    """The online loop's recovery and sync, without rounds (no scorer, no data)."""
    ctx = pipe.ctx
    return OnlineDPO(online=pipe.run.online, trainers=ctx.trainers, generators=ctx.generators, scorer=None,
                     encoder=ctx.encoder, speeches=[], tracker=ctx.tracker, save_policy=None,
                     device_type=pipe.run.device.type, seed=0, recover_trainers=lambda: recover_trainers(ctx))


def test_collective_sync_survives_an_engine_restart_and_a_trainer_rebuild(pipe, tiny_model_dir, tmp_path):
    prompts = [pipe.ctx.encoder.prompt(q.speech.text) for q in pipe.ctx.val_questions[:3]]
    start = hf_greedy(str(tiny_model_dir), prompts)

    load_trainers(pipe, variant(tiny_model_dir, tmp_path / "v1", seed=1))
    trained = trainer_greedy(pipe, "trained", prompts)
    assert trained != start, "the trainers' weights must give other greedy tokens, or the test proves nothing"

    pipe.ctx.generators = start_generators(pipe.ctx, str(tiny_model_dir))
    assert pipe.results["weight_sync"]["method"] == "collective"
    assert pipe.results["weight_sync"]["backend"] == "gloo"
    plan = pipe.ctx.generators.sync
    assert plan.groups_built == 1
    loop = controller(pipe)
    assert engine_greedy(pipe, prompts) == start
    loop._sync()
    assert engine_greedy(pipe, prompts) == trained

    # An engine restarts (Ray re-runs its constructor: the starting checkpoint, no group): the
    # generate phase's recovery rebuilds the group and syncs the trainer's weights again.
    os.kill(pipe.ctx.generators.where()[0]["pid"], signal.SIGKILL)
    assert loop._recover_generators(ray.exceptions.ActorDiedError())
    assert plan.groups_built == 2
    assert engine_greedy(pipe, prompts) == trained

    # An engine restarts between phases, unnoticed: the next sync fails, waits for it, rebuilds the
    # group and syncs again.
    load_trainers(pipe, variant(tiny_model_dir, tmp_path / "v2", seed=2))
    trained_more = trainer_greedy(pipe, "trained_more", prompts)
    assert trained_more not in (trained, start)
    os.kill(pipe.ctx.generators.where()[0]["pid"], signal.SIGKILL)
    loop._sync()
    assert plan.groups_built >= 3
    assert engine_greedy(pipe, prompts) == trained_more

    # A trainer rank dies: the group is rebuilt from the online stage's start (no round completed
    # here, so the starting policy), its new rank 0 joins a new broadcast group with the engine,
    # and the sync brings the engine back to the rebuilt trainers' weights.
    pipe.ctx.online_init = str(tiny_model_dir)
    built = plan.groups_built
    os.kill(pipe.ctx.trainers.group.where()[1]["pid"], signal.SIGKILL)
    assert loop._recover_trainers(ray.exceptions.ActorDiedError())
    assert plan.groups_built == built + 1
    assert loop.trainers is pipe.ctx.trainers
    loop._sync()
    assert engine_greedy(pipe, prompts) == start == trainer_greedy(pipe, "rebuilt", prompts)
