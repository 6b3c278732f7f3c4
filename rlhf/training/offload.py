"""Trainer states out of device memory between training phases (device.zero.offload_states).

On a colocated layout a trainer rank shares its GPU with a vLLM worker and a reward actor. vLLM
sleeps while the trainers step, but while it generates (and the reward actors score), a rank has
no use for its AdamW moments, fp32 master weights or gradient buffers: 14 of the 16 bytes per
parameter it holds. `offload` moves them to host memory, `reload` brings them back before the
next step, as OpenRLHF (DeepSpeed's `offload_states`) and verl (its FSDP optimizer offload) do
around generation. The bf16 parameter shards stay: the weight sync gathers them.

DeepSpeed's own `offload_states` moves optimizer state only for its FusedAdam; ours moves the
state of whatever optimizer the device module chose (torch's AdamW on CPUs), so a CPU run takes
the same path as a GPU run. While offloaded, the optimizer's tensors are empty, so a step taken
without `reload` fails at once instead of computing on stale or host-resident state. The gradient
buffers (which do not depend on the optimizer) go through DeepSpeed's `offload_states`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from rlhf import device


@dataclass
class Parked:
    """What one rank moved to host memory: (owner, key or None for a tensor's data, host copy,
    the device it came from)."""

    moved: list = field(default_factory=list)
    bytes: int = 0


def _empty_like(tensor: torch.Tensor) -> torch.Tensor:
    return torch.empty(0, dtype=tensor.dtype, device=tensor.device)


def offload(engine, device_type: str) -> Parked:
    """Move the optimizer state, the fp32 master weights and the gradient buffers of a ZeRO-3
    training engine to host memory. Returns what `reload` needs."""
    from deepspeed.runtime.zero.offload_config import OffloadDeviceEnum, OffloadStateTypeEnum

    zero = engine.optimizer  # DeepSpeed's ZeRO-3 optimizer around the torch one
    parked = Parked()
    for state in zero.optimizer.state.values():  # AdamW moments (and a step count) per flat shard
        for key, value in list(state.items()):
            if torch.is_tensor(value):
                parked.moved.append((state, key, device.host_copy(device_type, value), value.device))
                parked.bytes += value.numel() * value.element_size()
                state[key] = _empty_like(value)
    for flat in zero.fp32_partitioned_groups_flat:  # fp32 master weights; the optimizer's parameters
        if any(flat is own for own in zero.fp16_partitioned_groups_flat):
            continue  # a float32 model has no separate master copy: these are its weights, which stay
        parked.moved.append((flat, None, device.host_copy(device_type, flat.data), flat.device))
        parked.bytes += flat.numel() * flat.element_size()
        flat.data = _empty_like(flat)
    zero.offload_states(
        include=[OffloadStateTypeEnum.lp_grads, OffloadStateTypeEnum.contiguous_grad_buffer],
        device=OffloadDeviceEnum.cpu,
        pin_memory=device.pin_host_memory(device_type),
        non_blocking=False,
    )
    device.empty_cache(device_type)  # the freed blocks back to the GPU, for vLLM's allocator
    return parked


def reload(engine, parked: Parked, device_type: str) -> None:
    """Put back what `offload` moved, each tensor on the device it came from."""
    for owner, key, host, where in parked.moved:
        if key is None:
            owner.data = host.to(where)
        else:
            owner[key] = host.to(where)
    engine.optimizer.reload_states(non_blocking=False)
    device.synchronize(device_type)
