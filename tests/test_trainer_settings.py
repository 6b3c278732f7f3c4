"""What the trainers ask DeepSpeed for on each device, without starting anything: which AdamW (the
device module's choice, and the class DeepSpeed builds from it), the ZeRO offload sections, when
states leave the GPU while vLLM generates, and the combinations the config refuses."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from deepspeed.runtime.engine import DeepSpeedEngine

from rlhf.config import ConfigError, load_config
from rlhf.training.deepspeed_config import zero3_config
from tests.conftest import compose

COMMON = dict(micro_batch=1, accumulation=1, world_size=8, lr=1e-6, weight_decay=0.0, grad_clip=1.0, dtype="bfloat16")


def adam_class(config: dict, optimizer_on_host: bool):
    """The optimizer class DeepSpeed's own code picks for this config (its engine's method, on a
    stand-in for the engine's settings; the class is only named, not built)."""
    engine = SimpleNamespace(
        zero_use_cpu_optimizer=lambda: optimizer_on_host, bf16_optimizer_states=lambda: False, zenflow=False
    )
    params = dict(config["optimizer"]["params"])
    cls, _ = DeepSpeedEngine.get_optimizer_configuration(engine, params, adam_w_mode=True)
    return cls.__name__


def test_fused_adam_on_gpus_torch_adamw_on_cpus():
    gpu, cpu = zero3_config(**COMMON, device_type="gpu"), zero3_config(**COMMON, device_type="cpu")
    assert adam_class(gpu, optimizer_on_host=False) == "FusedAdam"
    assert adam_class(gpu, optimizer_on_host=True) == "DeepSpeedCPUAdam"  # device.zero.offload_optimizer
    assert adam_class(cpu, optimizer_on_host=False) == "AdamW"
    assert adam_class(cpu, optimizer_on_host=True) == "AdamW"
    # torch's AdamW may step offloaded state on a CPU machine (DeepSpeed would insist on its CPU Adam)
    assert cpu["zero_force_ds_cpu_optimizer"] is False and "zero_force_ds_cpu_optimizer" not in gpu
    assert gpu["optimizer"]["params"]["betas"] == [0.9, 0.95] == cpu["optimizer"]["params"]["betas"]


def test_cpus_step_with_torchs_fused_adamw_unless_turned_off():
    """DeepSpeed passes the optimizer params on to torch.optim.AdamW (its torch_adam path): built the
    same way here, the default is the fused kernel, and it steps a float32 shard on the CPU."""
    import torch

    def built(config):
        params = dict(config["optimizer"]["params"])
        engine = SimpleNamespace(zero_use_cpu_optimizer=lambda: False, bf16_optimizer_states=lambda: False,
                                 zenflow=False)
        cls, kwargs = DeepSpeedEngine.get_optimizer_configuration(engine, params, adam_w_mode=True)
        shard = torch.nn.Parameter(torch.ones(1000))
        return cls([shard], **params, **kwargs), shard

    fused, shard = built(zero3_config(**COMMON, device_type="cpu"))
    assert fused.defaults["fused"] is True
    shard.grad = torch.full_like(shard, 0.5)
    fused.step()
    assert torch.all(shard < 1)  # the fused step ran and moved the weights
    per_operation, _ = built(zero3_config(**COMMON, device_type="cpu", zero={"fused_optimizer": False}))
    assert not per_operation.defaults["fused"]
    assert load_config(compose([])).device.zero.fused_optimizer is True


def test_gradients_reach_their_shards_by_all_reduce_on_a_cpu_and_reduce_scatter_on_gpus():
    cpu, gpu = load_config(compose([])), load_config(compose(["device=gpu", "cluster=gpu_2x8", "model=llama3_8b"]))
    assert cpu.device.zero.reduce_scatter is False and gpu.device.zero.reduce_scatter is True
    assert zero3_config(**COMMON, zero=vars(cpu.device.zero))["zero_optimization"]["reduce_scatter"] is False
    assert zero3_config(**COMMON, device_type="gpu")["zero_optimization"]["reduce_scatter"] is True


@pytest.mark.parametrize("device_type, pinned", [("gpu", True), ("cpu", False)])
def test_offload_sections(device_type, pinned):
    zero = {"offload_optimizer": True, "offload_param": True}
    train = zero3_config(**COMMON, device_type=device_type, zero=zero)["zero_optimization"]
    frozen = zero3_config(**COMMON, device_type=device_type, zero=zero, train=False)["zero_optimization"]
    assert train["offload_optimizer"] == {"device": "cpu", "pin_memory": pinned}
    assert train["offload_param"] == frozen["offload_param"] == {"device": "cpu", "pin_memory": pinned}
    assert "offload_optimizer" not in frozen  # the DPO reference has no optimizer
    plain = zero3_config(**COMMON, device_type=device_type)["zero_optimization"]
    assert "offload_optimizer" not in plain and "offload_param" not in plain


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["device=gpu", "cluster=gpu_1x8", "model=llama3_8b"], True),  # colocated: null means on
        (["device=gpu", "cluster=gpu_2x8", "model=llama3_8b"], False),
        (["device=gpu", "cluster=gpu_1x8", "model=llama3_8b", "device.zero.offload_states=false"], False),
        ([], False),
        (["device.zero.offload_states=true"], True),  # a CPU run takes the same path (tests)
    ],
)
def test_when_trainer_states_leave_the_gpu_during_generation(overrides, expected):
    assert load_config(compose(overrides)).offload_trainer_states is expected


def test_attention_kernel_is_sdpa_unless_set():
    assert load_config(compose([])).model.attention == "sdpa"
    assert load_config(compose(["model.attention=eager"])).model.attention == "eager"
    with pytest.raises(ConfigError, match="model.attention"):
        load_config(compose(["model.attention=flash"]))


def test_gpu_defaults_differ_from_the_cpu_ones():
    gpu = load_config(compose(["device=gpu", "cluster=gpu_2x8", "model=llama3_8b"])).device.zero
    cpu = load_config(compose([])).device.zero
    assert gpu.overlap_comm and gpu.param_persistence_threshold == 100_000
    # a CPU trains small models: every parameter whole on each rank, no gathers (conf/device/cpu.yaml)
    assert not cpu.overlap_comm and cpu.param_persistence_threshold == 1_000_000_000
    assert not (gpu.offload_optimizer or gpu.offload_param or cpu.offload_optimizer or cpu.offload_param)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["device.zero.offload_states=true", "device.zero.offload_optimizer=true"],
            "device.zero.offload_states=true moves states DeepSpeed already keeps in host memory",
        ),
        (["online.save_state_every=0"], "online.save_state_every=0 must be >= 1"),
        (["online.speech_source=everything"], "online.speech_source='everything' must be one of"),
    ],
)
def test_refused_settings(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(compose(overrides))
