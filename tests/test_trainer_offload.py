"""Trainer memory settings on the ZeRO-3 trainer group, run on CPU through the code GPUs run:

- device.zero.offload_states: between training phases each rank moves its AdamW moments, fp32
  master weights and gradient buffers to host memory and back (what a colocated layout does while
  vLLM generates). Training through offload/reload must give exactly the weights and losses of
  training without it, and a step taken while offloaded must fail at once.
- device.zero.offload_optimizer: DeepSpeed's ZeRO-Offload (optimizer state and step in host
  memory) trains the same model.

bfloat16, so the fp32 master weights are a copy of their own (in a float32 model they are the
weights themselves, which stay on the device)."""

from __future__ import annotations

import random

import pytest
import ray
import torch

from rlhf.config import load_config
from rlhf.training.batching import EncodedPair
from rlhf.workers.factory import trainer_group
from rlhf.workers.ray_session import start_ray
from tests.conftest import compose

STEPS = 3


@pytest.fixture(scope="module")
def setup(tiny_model_dir, tmp_path_factory):
    run = load_config(
        compose(
            [
                f"run_dir={tmp_path_factory.mktemp('offload')}",
                f"model.path={tiny_model_dir}",
                "device.dtype=bfloat16",
                "online.batch_size=4",
                "online.micro_batch=2",
                "online.lr=1e-3",
            ]
        )
    )
    rng = random.Random(0)
    ids = lambda n: [rng.randrange(10, 400) for _ in range(n)]  # noqa: E731
    pairs = [EncodedPair(ids(6), ids(5), ids(4)) for _ in range(8)]
    start_ray(None, 2, None, False)
    group = trainer_group(run)
    yield run, group, pairs, str(tiny_model_dir)
    group.shutdown()
    ray.shutdown()


def train(group, model_dir, run, pairs, zero: dict, around_step=None):
    """Load a fresh policy (and reference) with these ZeRO settings, take STEPS optimizer steps;
    (per-step losses, the final weights, the AdamW class each rank built)."""
    group.zero = {**vars(run.device.zero), **zero}
    group.load("dpo", model_dir, run.online, reference_dir=model_dir)
    referenced, _ = group.with_reference(pairs, pad_id=0)
    losses = []
    for step in group.plan(referenced, epochs=STEPS, seed=0)[:STEPS]:
        if around_step:
            around_step(group, referenced)
        losses.append(group.train_step(step, pad_id=0)["loss"])
    weights = ray.get(group.state_dict(64 << 20))
    optimizers = ray.get(
        [a.__ray_call__.remote(lambda rank: type(rank.engine.optimizer.optimizer).__name__) for a in group.actors]
    )
    return losses, weights, optimizers


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_offloading_states_between_steps_trains_exactly_as_keeping_them(setup):
    run, group, pairs, model_dir = setup
    plain_losses, plain_weights, optimizers = train(group, model_dir, run, pairs, {})
    assert optimizers == ["AdamW", "AdamW"]  # the device module's choice on CPU: torch's AdamW

    moved, failures = [], []

    def generate_in_between(g, referenced):
        """What a colocated round does around generation: states out, forward passes still work
        (the weights stay), a step without reload is refused, states back."""
        moved.append(g.offload_states())
        g.evaluate(referenced[:4], pad_id=0)
        try:
            g.train_step(g.plan(referenced, 1, 0)[0], pad_id=0)
        except Exception as err:  # noqa: BLE001 - the rank's refusal, across the Ray boundary
            failures.append(str(err))
        g.reload_states()

    group.offload = True
    try:
        losses, weights, _ = train(group, model_dir, run, pairs, {}, around_step=generate_in_between)
    finally:
        group.offload = False
    assert losses == plain_losses
    assert same_weights(weights, plain_weights)
    # per rank, its half of the parameters: before the first step only the fp32 master weights
    # (4 B) exist, since torch's AdamW creates its moments (8 B) lazily, at the first step
    params = sum(t.numel() for t in plain_weights.values())
    assert moved[0] >= 4 * params / 2, (moved, params)
    assert all(m >= 12 * params / 2 for m in moved[1:]), (moved, params)
    assert len(failures) == STEPS and all("reload_states" in f for f in failures)


def test_zero_offload_of_the_optimizer_trains_the_same_model(setup):
    run, group, pairs, model_dir = setup
    plain_losses, plain_weights, _ = train(group, model_dir, run, pairs, {})
    losses, weights, optimizers = train(group, model_dir, run, pairs, {"offload_optimizer": True})
    assert optimizers == ["AdamW", "AdamW"]
    assert losses == pytest.approx(plain_losses, rel=1e-6)
    assert all(torch.allclose(weights[k].float(), plain_weights[k].float(), atol=1e-2) for k in weights)
