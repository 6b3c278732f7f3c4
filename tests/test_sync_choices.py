"""What each device and layout gets, without starting anything: the sync method `auto` picks, the
combinations the config refuses, and the vLLM engine arguments (executor, CUDA graphs)."""

from __future__ import annotations

import pytest

from rlhf import device
from rlhf.config import ConfigError, load_config
from rlhf.sync.weight_sync import resolve_method
from tests.conftest import compose


@pytest.mark.parametrize("kind, colocate, expected", [
    ("cpu", False, "object_store"), ("gpu", False, "collective"), ("gpu", True, "cuda_ipc")])
def test_auto_picks_the_method_for_the_device(kind, colocate, expected):
    assert resolve_method("auto", kind, colocate) == expected
    assert resolve_method("collective", kind, colocate) == "collective"


def test_backends_are_named_by_the_device_module():
    assert device.sync_backend("cpu", "collective") == "gloo"
    assert device.sync_backend("gpu", "collective") == "nccl"
    assert device.sync_backend("cpu", "object_store") == "ray"
    assert not device.loads_weights_per_bucket("cpu") and device.loads_weights_per_bucket("gpu")


@pytest.mark.parametrize("overrides, message", [
    (["sync.method=nccl"], "sync.method='nccl' must be one of"),
    (["sync.method=cuda_ipc"], "sync.method=cuda_ipc needs device=gpu and a colocated layout"),
    (["device=gpu", "cluster=gpu_1x8", "model=llama3_8b", "sync.method=collective"],
     "sync.method=collective cannot connect a trainer rank and a vLLM worker on the same GPU"),
])
def test_impossible_methods_are_refused_before_anything_starts(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(compose(overrides))


def test_collective_and_tensor_parallel_2_validate_on_cpu():
    run = load_config(compose(["sync.method=collective", "cluster.generator.tensor_parallel=2"]))
    assert (run.sync.method, run.cluster.generator.tensor_parallel) == ("collective", 2)


def test_engine_arguments():
    cpu = device.vllm_engine_args("cpu", 1, 0.5)
    assert cpu["enforce_eager"] and "distributed_executor_backend" not in cpu
    # Tensor parallel: vLLM's multiprocessing executor inside the actor on both devices (its Ray
    # executor refuses a placement-group bundle holding more than one GPU).
    assert device.vllm_engine_args("cpu", 2, 0.5)["distributed_executor_backend"] == "mp"
    gpu = device.vllm_engine_args("gpu", 2, 0.9)
    assert gpu["distributed_executor_backend"] == "mp" and gpu["tensor_parallel_size"] == 2
    assert gpu["enforce_eager"] is False  # CUDA graphs on GPUs
    assert device.vllm_engine_args("gpu", 1, 0.35, sleep_mode=True)["enable_sleep_mode"]
