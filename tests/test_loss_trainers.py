"""A registered loss runs on the ZeRO-3 trainer ranks by name: IPO, chosen by one config line,
trains the policy against its frozen reference (computed once per pass) across the Ray boundary."""

from __future__ import annotations

import math
import random
from contextlib import contextmanager

import pytest
import ray

from rlhf.config import load_config
from rlhf.training.batching import EncodedPair
from rlhf.workers.factory import trainer_group
from rlhf.workers.ray_session import start_ray
from tests.conftest import compose


@contextmanager
def loaded_group(tiny_model_dir, tmp_path, overrides: list[str], loss: str | None = None):
    """8 random pairs and a 2-rank trainer group with `loss` (default: the run's) loaded, policy = reference."""
    run = load_config(compose([f"run_dir={tmp_path}", "online.batch_size=8", "online.micro_batch=2",
                               f"model.path={tiny_model_dir}", *overrides]))
    rng = random.Random(0)
    ids = lambda n: [rng.randrange(10, 400) for _ in range(n)]  # noqa: E731
    pairs = [EncodedPair(ids(6), ids(4), ids(4)) for _ in range(8)]
    start_ray(None, 2, None, False)
    group = trainer_group(run)
    try:
        group.load(loss or run.online.loss, str(tiny_model_dir), run.online, reference_dir=str(tiny_model_dir))
        yield group, pairs
    finally:
        group.shutdown()
        ray.shutdown()


def test_ipo_trains_on_the_trainer_group(tiny_model_dir, tmp_path):
    with loaded_group(tiny_model_dir, tmp_path, ["online.loss=ipo", "online.beta=0.5"]) as (group, pairs):
        referenced, _ = group.with_reference(pairs, pad_id=0)
        before = group.evaluate(referenced, pad_id=0)
        for step in group.plan(referenced, epochs=3, seed=0):
            group.train_step(step, pad_id=0)
        after = group.evaluate(referenced, pad_id=0)
    # policy == reference at first: margin 0, loss (0 - 1/(2 x 0.5))^2 = 1
    assert math.isclose(before["loss"], 1.0, rel_tol=1e-3) and abs(before["implicit_margin"]) < 1e-3
    assert after["loss"] < before["loss"] and after["implicit_margin"] > 0


@pytest.mark.parametrize("persistence", [1_000_000_000, 0])  # a CPU's default (weights whole), GPUs' (sharded)
def test_a_refreshed_reference_is_the_trained_policy(tiny_model_dir, tmp_path, persistence):
    """online.refresh_reference: after some DPO steps the policy has moved from the reference; once
    refreshed, the reference's log-probabilities are the policy's (DPO's implicit margin is 0 again),
    whether the ranks keep the weights whole or sharded."""
    overrides = ["online.loss=dpo", "online.lr=1e-3", f"device.zero.param_persistence_threshold={persistence}"]
    with loaded_group(tiny_model_dir, tmp_path, overrides) as (group, pairs):
        referenced, _ = group.with_reference(pairs, pad_id=0)
        for step in group.plan(referenced, epochs=2, seed=0):
            group.train_step(step, pad_id=0)
        trained = group.evaluate(referenced, pad_id=0)
        group.refresh_reference()
        refreshed, _ = group.with_reference(pairs, pad_id=0)
        after = group.evaluate(refreshed, pad_id=0)
    assert trained["implicit_margin"] > 0.01
    assert abs(after["implicit_margin"]) < 1e-4 and math.isclose(after["loss"], math.log(2), rel_tol=1e-3)


@pytest.mark.parametrize("loss", ["dpo", "bradley_terry"])  # a policy with its reference; a reward model
def test_a_compiled_trainer_group_trains_as_the_uncompiled_one(tiny_model_dir, tmp_path, loss):
    """model.compile: the ranks' models run through torch.compile with ZeRO-3's per-module hooks
    removed (weights whole); the same steps give the uncompiled group's metrics, so the gradients
    still reach the sharded optimizer."""
    results = {}
    for compiled in (False, True):
        overrides = ["online.lr=1e-3", f"model.compile={compiled}"]
        with loaded_group(tiny_model_dir, tmp_path, overrides, loss) as (group, pairs):
            if loss == "dpo":
                pairs, _ = group.with_reference(pairs, pad_id=0)
            before = group.evaluate(pairs, pad_id=0)
            for step in group.plan(pairs, epochs=2, seed=0):
                group.train_step(step, pad_id=0)
            results[compiled] = before, group.evaluate(pairs, pad_id=0)
            assert ray.get([a.compiled.remote() for a in group.actors]) == [compiled, compiled]
            # gathering the full weights (as the weight sync does) leaves them partitioned; the next pass gathers
            ray.get([a.full_state_dict.remote() for a in group.actors])
            assert group.evaluate(pairs, pad_id=0)["loss"] == pytest.approx(results[compiled][1]["loss"], rel=1e-5)
    (before, after), (_, compiled_after) = results[False], results[True]
    assert after["loss"] < before["loss"] - 0.01  # the steps moved the model
    assert math.isclose(compiled_after["loss"], after["loss"], rel_tol=1e-3, abs_tol=1e-5)


def test_gradients_all_reduced_train_as_reduce_scattered_ones(tiny_model_dir, tmp_path):
    """device.zero.reduce_scatter=false (a CPU's default): one all-reduce of the contiguous gradient
    buffer, each rank keeping its shard, gives the reduce-scatter's steps. Also: the reference
    log-probabilities of a batch come back in the pairs' order, each as its pair alone gets it."""
    results = {}
    for reduce_scatter in (True, False):
        overrides = ["online.loss=dpo", "online.lr=1e-3", f"device.zero.reduce_scatter={reduce_scatter}"]
        with loaded_group(tiny_model_dir, tmp_path, overrides) as (group, pairs):
            referenced, tokens = group.with_reference(pairs, pad_id=0)
            if reduce_scatter:
                alone = [group.with_reference([pair], pad_id=0)[1][0] for pair in pairs]
                assert all(a == pytest.approx(b, abs=1e-4) for pair_tokens, alone_tokens in zip(tokens, alone)
                           for a, b in zip(pair_tokens, alone_tokens))
            for step in group.plan(referenced, epochs=2, seed=0):
                group.train_step(step, pad_id=0)
            results[reduce_scatter] = group.evaluate(referenced, pad_id=0)
    assert results[True]["implicit_margin"] > 0.01  # the steps moved the policy
    assert results[False]["loss"] == pytest.approx(results[True]["loss"], rel=1e-3, abs=1e-5)
    assert results[False]["implicit_margin"] == pytest.approx(results[True]["implicit_margin"], rel=1e-2, abs=1e-4)


def test_compile_refuses_partitioned_weights(tiny_model_dir, tmp_path):
    overrides = ["online.loss=dpo", "model.compile=true", "device.zero.param_persistence_threshold=0"]
    with pytest.raises(Exception, match="model.compile needs every parameter whole"):
        with loaded_group(tiny_model_dir, tmp_path, overrides):
            pass
